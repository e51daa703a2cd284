package service

import (
	"maps"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/netgrant/netgrant/service/firewall"
)

// fwState is what netgrant's firewall is to hold — every network's rules,
// with the guests filtered on its bridge — and hands it to the firewall,
// one change at a time and in order.
//
// Lock order: Manager.mu, then applyMu, then mu. Manager.mu is never
// taken while either is held.
type fwState struct {
	fw firewall.Firewall

	// applyMu is held through every change of the firewall, so changes
	// reach it in the order of the states they carry; guests' changes
	// made while one is under way go together in the next.
	applyMu sync.Mutex
	// applied is the guests' version the firewall holds.
	applied uint64

	// mu guards what the firewall is to hold; never held for long.
	mu sync.Mutex
	// networks are the networks whose rules the firewall holds, by
	// bridge: what a restore puts back.
	networks map[string]fwNetwork
	// gen tells a network from an earlier one that had its bridge name.
	gen uint64
	// guests are the guests filtered on those networks' bridges, by tap.
	guests map[string]fwGuest
	// version counts the changes of guests.
	version uint64
}

// fwNetwork is a network whose rules the firewall holds.
type fwNetwork struct {
	net firewall.Network
	gen uint64
}

// fwGuest is a guest the firewall filters, by tap name.
type fwGuest struct {
	index  int // the tap device's, telling it from a later one of that name
	bridge string
	gen    uint64 // its network's: a later network on the bridge is not its
	guest  firewall.Guest
}

func newFWState(fw firewall.Firewall) *fwState {
	return &fwState{fw: fw, networks: map[string]fwNetwork{}, guests: map[string]fwGuest{}}
}

// add installs net's rules beside the other networks' and returns the
// generation the network's guests and changes go by.
func (s *fwState) add(net firewall.Network) (uint64, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	nets, version := s.snapshot()
	if err := s.fw.Apply(append(nets, net)); err != nil {
		return 0, err
	}
	s.applied = version
	return s.track(net), nil
}

// track records net as held by the firewall (as an adopted network's
// rules are, until the restore that follows adoption) and returns its
// generation.
func (s *fwState) track(net firewall.Network) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	s.networks[net.Bridge] = fwNetwork{net, s.gen}
	return s.gen
}

// update replaces the rules of the network of generation gen (its
// forwards changed); apply then writes them. A network gone meanwhile is
// left alone.
func (s *fwState) update(gen uint64, net firewall.Network) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.networks[net.Bridge]; ok && held.gen == gen {
		s.networks[net.Bridge] = fwNetwork{net, gen}
	}
}

// remove takes the network on bridge, and its guests, out of the firewall.
func (s *fwState) remove(bridge string) error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.mu.Lock()
	delete(s.networks, bridge)
	for name, g := range s.guests {
		if g.bridge == bridge {
			delete(s.guests, name)
		}
	}
	s.version++
	s.mu.Unlock()
	return s.write(s.fw.Apply)
}

// apply makes the firewall hold the state as it is now.
func (s *fwState) apply() error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	return s.write(s.fw.Apply)
}

// restore puts the state back into a firewall that lost it, and returns
// the networks it holds.
func (s *fwState) restore() ([]firewall.Network, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	nets, _ := s.snapshot()
	return nets, s.write(s.fw.Restore)
}

// write hands the whole state to one of the firewall's writers; applyMu
// must be held.
func (s *fwState) write(writer func([]firewall.Network) error) error {
	nets, version := s.snapshot()
	if err := writer(nets); err != nil {
		return err
	}
	s.applied = version
	return nil
}

// admit filters guest g of tap name from now on, unless its network is
// gone (false); syncGuests then writes it.
func (s *fwState) admit(name string, g fwGuest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.networks[g.bridge].gen != g.gen {
		return false
	}
	s.guests[name] = g
	s.version++
	return true
}

// learnt makes the guest of tap name (device index) be filtered by mac.
func (s *fwState) learnt(name string, index int, mac net.HardwareAddr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if g, ok := s.guests[name]; ok && g.index == index {
		g.guest.MAC = mac
		s.guests[name] = g
		s.version++
	}
}

// drop stops filtering the guest of tap name (device index) and reports
// whether there was one; syncGuests then writes it.
func (s *fwState) drop(name string, index int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guests[name]
	if !ok || g.index != index {
		return false
	}
	delete(s.guests, name)
	s.version++
	return true
}

// syncGuests returns once the firewall filters the guests as the state
// says now: a change under way that already carries it is waited for,
// else one change carries it along with every other guest's made
// meanwhile.
func (s *fwState) syncGuests() error {
	s.mu.Lock()
	want := s.version
	s.mu.Unlock()
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if s.applied >= want {
		return nil
	}
	return s.write(s.fw.UpdateGuests)
}

// snapshot is what the firewall is to hold now, networks in the order
// of their bridges (so each write lists them alike) with their guests,
// and the guests' version.
func (s *fwState) snapshot() ([]firewall.Network, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nets := make([]firewall.Network, 0, len(s.networks)+1)
	for _, bridge := range slices.Sorted(maps.Keys(s.networks)) {
		n := s.networks[bridge]
		n.net.Guests = s.guestsOn(bridge, n.gen)
		nets = append(nets, n.net)
	}
	return nets, s.version
}

// guestsOn lists the guests of the network of generation gen on bridge,
// in the order of their taps; mu must be held.
func (s *fwState) guestsOn(bridge string, gen uint64) []firewall.Guest {
	var guests []firewall.Guest
	for _, g := range s.guests {
		if g.bridge == bridge && g.gen == gen {
			guests = append(guests, g.guest)
		}
	}
	slices.SortFunc(guests, func(a, b firewall.Guest) int { return strings.Compare(a.Tap, b.Tap) })
	return guests
}
