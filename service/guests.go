package service

import (
	"net/netip"
	"strconv"

	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
)

// A tap on a network is a guest that may send only as itself: before it is
// plugged into the bridge it gets an address reserved for its MAC (with
// DHCP), and the firewall's filter on the bridge lets through only frames
// from that MAC and that address. Reserving rather than waiting for a lease
// means the filter is complete before the guest sends its first frame.

// guestRef is what undoing a guest's admission needs.
type guestRef struct {
	Tap     string     `json:"tap"`
	Index   int        `json:"index"`
	Network string     `json:"network"`
	IPv4    netip.Addr `json:"ipv4"`
	Dir     string     `json:"dir,omitempty"` // the dnsmasq directory holding the reservation
}

// reservationName names t's reservation file: unique per device, so a
// later tap of the same name never shares it.
func reservationName(tapName string, index int) string { return tapName + "-" + strconv.Itoa(index) }

// admitGuest lets t's guest onto n, with the address requested if valid,
// recording each side effect first.
func (m *Manager) admitGuest(t *tapRes, n *netRes, requested netip.Addr) error {
	ref := guestRef{Tap: t.name, Index: t.index, Network: n.name}
	if n.dhcp || requested.IsValid() {
		m.mu.Lock()
		ip, err := m.reserveAddress(n, t, requested)
		m.mu.Unlock()
		if err != nil {
			return err
		}
		ref.IPv4 = ip
	}
	if n.dhcp {
		ref.Dir = m.dnsmasqDir(n)
	}
	// A registered tap's record is written under the lock, which a
	// network's teardown detaching it holds.
	m.mu.Lock()
	err := t.rec.push(forgetGuestStep(ref))
	m.mu.Unlock()
	if err != nil {
		return Wrap(Failed, err, "recording the tap")
	}
	// A MAC being learnt is reserved once it is known (macLearned).
	if ref.Dir != "" && t.mac != nil {
		if err := dnsmasq.Reserve(ref.Dir, reservationName(t.name, t.index), t.mac, ref.IPv4); err != nil {
			if m.networkGone(n) {
				return Errorf(NotFound, "network %s was removed meanwhile", n.name)
			}
			return Wrap(Failed, err, "reserving the guest's address")
		}
	}
	m.mu.Lock()
	t.ipv4 = ref.IPv4
	m.mu.Unlock()
	if !m.fw.admit(t.name, fwGuest{t.index, n.bridge, n.fwGen, firewall.Guest{Tap: t.name, MAC: t.mac, IPv4: ref.IPv4}}) {
		return Errorf(NotFound, "network %s was removed meanwhile", n.name)
	}
	if err := m.fw.syncGuests(); err != nil {
		m.dropGuestFilter(t.name, t.index)
		return Wrap(Failed, err, "filtering the guest's traffic")
	}
	return nil
}

// networkGone tells whether n was torn down or is being torn down.
func (m *Manager) networkGone(n *netRes) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.networks[n.name] != n || n.state != ready
}

// reserveAddress picks t's address on n, under the lock: the one
// requested, else the one a lease already gives t's MAC (a guest that
// comes back keeps its address), else the first of the DHCP range that no
// other guest has reserved or leased.
func (m *Manager) reserveAddress(n *netRes, t *tapRes, requested netip.Addr) (netip.Addr, error) {
	key := reservationName(t.name, t.index)
	if requested.IsValid() {
		// Another tap may have taken it since the call was checked.
		if err := checkRequestedAddress(n, requested); err != nil {
			return netip.Addr{}, err
		}
		n.reserved[requested] = key
		return requested, nil
	}
	leased := map[netip.Addr]bool{}
	for _, l := range n.guests.currentLeases() {
		ip, err := netip.ParseAddr(l.IP)
		if err != nil {
			continue
		}
		if _, taken := n.reserved[ip]; l.MAC == t.mac.String() && !taken && ip.IsValid() {
			n.reserved[ip] = key
			return ip, nil
		}
		leased[ip] = true
	}
	for ip := n.plan.DHCPStart; ip.IsValid() && !n.plan.DHCPEnd.Less(ip); ip = ip.Next() {
		if _, taken := n.reserved[ip]; !taken && !leased[ip] {
			n.reserved[ip] = key
			return ip, nil
		}
	}
	return netip.Addr{}, Errorf(QuotaExceeded, "network %s has no free address left for another guest: close a guest's tap, or use a network with a larger subnet", n.name)
}

// forgetGuest undoes admitGuest.
func (m *Manager) forgetGuest(g guestRef) error {
	key := reservationName(g.Tap, g.Index)
	m.mu.Lock()
	if n, ok := m.networks[g.Network]; ok && n.reserved[g.IPv4] == key {
		delete(n.reserved, g.IPv4)
	}
	inst := m.dnsmasqs[g.Dir]
	m.mu.Unlock()
	m.dropGuestFilter(g.Tap, g.Index)
	if g.Dir == "" {
		return nil
	}
	if err := dnsmasq.Unreserve(g.Dir, key); err != nil {
		return err
	}
	if inst != nil {
		return inst.Reload()
	}
	return nil
}

// dropGuestFilter removes the filter of a tap that left its network.
func (m *Manager) dropGuestFilter(name string, index int) {
	if !m.fw.drop(name, index) {
		return
	}
	if err := m.fw.syncGuests(); err != nil {
		m.log.Warn("removing a guest's filter", "tap", name, "err", err)
	}
}
