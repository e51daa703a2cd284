package service

import (
	"net"
	"net/netip"
	"os"

	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/subnet"
	"github.com/netgrant/netgrant/service/tap"
)

// Recover takes back what a previous daemon left in the state directory:
// networks that a live holder (alive says which are) or the persistent flag
// still keeps, and taps whose device still exists, are adopted — objects
// back, holders watched, taps tracked, dnsmasq restarted on its lease file;
// everything else, including the half-done work of a call the previous
// daemon died in, is undone. The firewall is then made to match exactly
// the adopted networks. Call it once, before serving.
func (m *Manager) Recover(alive func(holder string) bool) {
	records := m.loadRecords(m.log)
	// Networks that stay are adopted before any other is unwound: each
	// unwind rewrites the firewall for the networks known by then.
	var leftovers []*record
	for _, r := range records {
		if r.Kind == "network" && !m.adoptNetwork(r, alive) {
			leftovers = append(leftovers, r)
		}
	}
	for _, r := range leftovers {
		m.unwind(r)
	}
	for _, r := range records {
		if r.Kind == "tap" {
			m.adoptTap(r)
		}
	}
	m.RestoreFirewall()
}

// adoptNetwork takes over r's network if it is to stay, and reports
// whether it did; one that is not must be unwound.
func (m *Manager) adoptNetwork(r *record, alive func(string) bool) bool {
	s := r.Network
	if !r.Complete || s == nil {
		m.log.Info("removing a network whose setup never finished", "network", r.Name)
		return false
	}
	holders := map[string]bool{}
	for _, h := range s.Holders {
		if name, index, isTap := heldByTap(h); isTap && m.tapExists(name, index) || !isTap && alive(h) {
			holders[h] = true
		}
	}
	if len(holders) == 0 && !s.Persistent {
		m.log.Info("removing a network whose holders left while netgrantd was away", "network", r.Name)
		return false
	}
	prefix, err := netip.ParsePrefix(s.Subnet)
	var prefix6 netip.Prefix
	if s.Subnet6 != "" && err == nil {
		prefix6, err = netip.ParsePrefix(s.Subnet6)
	}
	isBridge, _ := m.kernel.Bridges.IsBridge(s.Bridge)
	if err != nil || !isBridge {
		m.log.Warn("removing a network whose bridge is gone", "network", r.Name, "bridge", s.Bridge)
		return false
	}
	n := &netRes{
		name: r.Name, owner: s.Owner, bridge: s.Bridge, plan: subnet.NewPlan(prefix).WithIPv6(prefix6),
		dhcp: s.DHCP, dns: s.DNS, outbound: s.Outbound, mtu: s.MTU, persistent: s.Persistent,
		holders: holders, taps: map[string]bool{}, reserved: map[netip.Addr]string{}, rec: r,
		heldPorts: map[PortForward]*os.File{}, hostServices: m.hostServices(), dnsmasqID: s.Dnsmasq, state: ready, settled: make(chan struct{}),
		domain: m.networkDomain(r.Name),
	}
	if n.bridgeIndex, err = m.kernel.Bridges.Index(n.bridge); err != nil {
		m.log.Warn("removing a network whose bridge is gone", "network", r.Name, "bridge", s.Bridge)
		return false
	}
	// The names given out before stay with their guests.
	n.guests.names = dnsmasq.ReadNames(m.dnsmasqDir(n))
	m.refreshAddrs6(n)
	if (n.dhcp || n.dns) && !m.opts.DnsmasqUnits && n.dnsmasqID == (dnsmasq.Identity{}) {
		// Recorded by a netgrantd that ran every dnsmasq as one account.
		if err := m.giveDnsmasqIdentity(n); err != nil {
			m.log.Warn("removing a network whose dnsmasq has no identity to run under", "network", n.name, "err", err)
			return false
		}
	}
	if n.dhcp || n.dns {
		// A child dnsmasq of the previous daemon is replaced; a unit goes
		// on serving as it is.
		if !m.opts.DnsmasqUnits {
			if err := m.kernel.Dnsmasqs.StopOrphan(m.dnsmasqDir(n)); err != nil {
				m.log.Warn("stopping the previous dnsmasq", "network", n.name, "err", err)
			}
		}
		if err := m.startDnsmasq(n); err != nil {
			m.log.Warn("removing a network whose dnsmasq would not start again", "network", n.name, "err", err)
			return false
		}
	}
	if n.dns && m.opts.Resolver != nil {
		if !n.rec.has(opUnregisterDNS) {
			if err := n.rec.push(unregisterDNSStep(n.bridge, n.bridgeIndex)); err != nil {
				m.log.Warn("recording an adopted network", "network", n.name, "err", err)
			}
		}
		m.registerDNS(n)
	}
	m.holdForwards(n, s.Forwards)
	if err := m.saveNetwork(n); err != nil {
		m.log.Warn("recording an adopted network", "network", n.name, "err", err)
	}
	n.fwGen = m.fw.track(n.firewall())
	m.mu.Lock()
	defer m.mu.Unlock()
	m.networks[n.name] = n
	m.log.Info("adopted network", "network", n.name, "holders", len(holders))
	m.opts.Observer.NetworkAdded(m.networkInfo(n))
	return true
}

// holdForwards takes the ports of an adopted network's forwards again. A
// port a program on the host took while netgrantd was away is the
// program's now: that forward goes, rather than shadow it.
func (m *Manager) holdForwards(n *netRes, forwards []PortForward) {
	for _, f := range forwards {
		sock, err := holdPort(f)
		if err != nil {
			m.log.Warn("dropping a port forward whose port a program took while netgrantd was away", "network", n.name,
				"protocol", f.Protocol, "host_port", f.HostPort, "err", err)
			continue
		}
		n.forwards = append(n.forwards, f)
		n.heldPorts[f] = sock
	}
}

// unwindAdoptedTap removes a tap that still exists but is not adopted,
// and its hold on its network, which adoptNetwork counted while the tap
// existed.
func (m *Manager) unwindAdoptedTap(r *record) {
	m.unwind(r)
	m.mu.Lock()
	n, ok := m.networks[r.Tap.Network]
	var released *netRes
	if ok && r.Tap.Holds && n.holders[tapHolder(r.Name, r.Tap.Index)] && n.state == ready {
		if m.dropHold(n, tapHolder(r.Name, r.Tap.Index)) {
			released = n
		}
	}
	m.mu.Unlock()
	if released != nil {
		m.finishTeardown(released)
	}
}

// giveDnsmasqIdentity gives an adopted network's dnsmasq an identity of
// its own.
func (m *Manager) giveDnsmasqIdentity(n *netRes) error {
	ids, err := m.kernel.Dnsmasqs.DelegatedIDs()
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n.dnsmasqID, err = m.freeDnsmasqIdentity(ids)
	return err
}

func (m *Manager) adoptTap(r *record) {
	s := r.Tap
	var state tap.State
	exists := false
	if r.Complete && s != nil {
		state, exists = m.kernel.Taps.Inspect(r.Name, s.Index)
	}
	if !exists {
		m.log.Info("removing a tap that is gone or was never handed out", "tap", r.Name)
		m.unwind(r)
		return
	}
	if tampered(state, s.Owner) {
		m.log.Warn("removing a tap its holder made persistent or gave to another user", "tap", r.Name, "persistent", state.Persistent, "owner", state.Owner)
		m.unwindAdoptedTap(r)
		return
	}
	var mac net.HardwareAddr
	if !s.Learning {
		var err error
		if mac, err = parseGuestMAC(s.MAC); err != nil {
			m.log.Warn("removing a tap with an unreadable record", "tap", r.Name, "err", err)
			m.unwindAdoptedTap(r)
			return
		}
	}
	t := &tapRes{
		name: r.Name, index: s.Index, owner: s.Owner, mac: mac, learning: s.Learning, holds: s.Holds, mtu: s.MTU, queues: s.Queues,
		vnetHdr: s.VnetHdr, bridge: s.Bridge, network: s.Network, ipv4: s.IPv4, rec: r,
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n, ok := m.networks[t.network]; ok && n.bridge == t.bridge {
		n.taps[t.name] = true
		if t.ipv4.IsValid() {
			n.reserved[t.ipv4] = reservationName(t.name, t.index)
		}
		// RestoreFirewall, once every tap is back, puts its filter in.
		m.fw.admit(t.name, fwGuest{t.index, n.bridge, n.fwGen, firewall.Guest{Tap: t.name, MAC: t.mac, IPv4: t.ipv4}})
	} else if t.network != "" {
		t.network, t.bridge, t.ipv4, t.holds = "", "", netip.Addr{}, false
	}
	m.taps[t.name] = t
	if err := m.saveTapLocked(t); err != nil {
		m.log.Warn("recording an adopted tap", "tap", t.name, "err", err)
	}
	m.log.Info("adopted tap", "tap", t.name)
	m.opts.Observer.TapAdded(m.tapInfo(t))
	if n, ok := m.networks[t.network]; ok {
		m.opts.Observer.NetworkChanged(m.networkInfo(n))
	}
}
