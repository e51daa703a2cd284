package service

import (
	"bytes"
	"net"
	"strconv"
	"strings"

	"github.com/netgrant/netgrant/service/dnsmasq"
)

// A tap created with learn_mac has no guest MAC until its guest's first
// frame says (firewall.Learner): the frame's source MAC becomes the
// guest's, unless another guest of the network has it, and the guest's
// filter and DHCP reservation follow. A tap created with hold is a holder
// of its network, as a connection is, for as long as it is on it.

// macLearned makes mac the guest's of the learning tap that is bridge
// port ifindex. A MAC another guest of the network has, or the bridge's,
// teaches nothing: the tap goes on learning.
func (m *Manager) macLearned(ifindex int, mac net.HardwareAddr) {
	m.mu.Lock()
	t := m.tapByIndex(ifindex)
	m.mu.Unlock()
	if t == nil {
		return
	}
	// One change of where a tap is, or what its guest is, at a time.
	t.attachMu.Lock()
	defer t.attachMu.Unlock()
	m.mu.Lock()
	n, ok := m.networks[t.network]
	if m.taps[t.name] != t || !t.learning || !ok || n.state != ready || !m.guestMACFree(n, mac) {
		m.mu.Unlock()
		return
	}
	done, working := m.startWorkLocked()
	if !working {
		m.mu.Unlock()
		return
	}
	defer done()
	t.mac, t.learning = mac, false
	if err := m.saveTapLocked(t); err != nil {
		m.log.Warn("recording a tap's learnt MAC", "tap", t.name, "err", err)
	}
	dir, ip, key := "", t.ipv4, reservationName(t.name, t.index)
	if n.dhcp {
		dir = m.dnsmasqDir(n)
	}
	m.mu.Unlock()
	m.log.Info("learnt a guest's MAC from its first frame", "tap", t.name, "network", n.name, "mac", mac.String())

	if dir != "" && ip.IsValid() {
		if err := dnsmasq.Reserve(dir, key, mac, ip); err != nil {
			m.log.Warn("reserving the guest's address for its learnt MAC", "tap", t.name, "err", err)
		}
		// A tap forgotten meanwhile had its reservation removed before
		// this one was written: remove it again.
		m.mu.Lock()
		gone := m.taps[t.name] != t
		m.mu.Unlock()
		if gone {
			dnsmasq.Unreserve(dir, key)
		}
	}
	m.fw.learnt(t.name, t.index, mac)
	if err := m.fw.syncGuests(); err != nil {
		m.log.Warn("filtering a guest by its learnt MAC", "tap", t.name, "err", err)
	}
	// Clients hear of the MAC once the guest's frames from it pass.
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.taps[t.name] == t {
		m.opts.Observer.TapChanged(m.tapInfo(t))
	}
}

// tapByIndex is the tap whose device has ifindex, under the lock.
func (m *Manager) tapByIndex(ifindex int) *tapRes {
	for _, t := range m.taps {
		if t.index == ifindex {
			return t
		}
	}
	return nil
}

// guestMACFree tells, under the lock, whether mac may be a guest's of n:
// a unicast address no other tap of n has, and not n's bridge's.
func (m *Manager) guestMACFree(n *netRes, mac net.HardwareAddr) bool {
	if _, err := parseGuestMAC(mac.String()); err != nil || bytes.Equal(mac, n.bridgeMAC()) {
		return false
	}
	for name := range n.taps {
		if t, ok := m.taps[name]; ok && bytes.Equal(t.mac, mac) {
			return false
		}
	}
	return true
}

// tapHolder names the hold of the tap name of ifindex index on its
// network.
func tapHolder(name string, index int) string { return "tap:" + name + "/" + strconv.Itoa(index) }

// heldByTap reads a tapHolder.
func heldByTap(holder string) (name string, index int, ok bool) {
	rest, ok := strings.CutPrefix(holder, "tap:")
	if !ok {
		return "", 0, false
	}
	name, num, ok := strings.Cut(rest, "/")
	index, err := strconv.Atoi(num)
	return name, index, ok && err == nil
}

// releaseTapHold drops t's hold on its network n, under the lock, if it
// has one, and returns n if that was the last hold: the caller finishes
// its teardown without the lock.
func (m *Manager) releaseTapHold(t *tapRes, n *netRes) *netRes {
	if !t.holds {
		return nil
	}
	t.holds = false
	if n == nil || n.state != ready || !n.holders[tapHolder(t.name, t.index)] {
		return nil
	}
	if m.dropHold(n, tapHolder(t.name, t.index)) {
		return n
	}
	return nil
}
