package service

import (
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/netgrant/netgrant/service/dnsmasq"
)

// What a network sees of its guests: their DHCP leases (from dnsmasq) and
// the IPv6 addresses they use (from the host's neighbour table on the
// bridge, see neigh). From both come the guests' names in DNS,
// <hostname>.<domain>, the addresses of their taps, and, registered with
// systemd-resolved, the host's way to the names.

// guestsView is a network's knowledge of its guests.
type guestsView struct {
	mu     sync.Mutex
	leases []dnsmasq.Lease
	// names says which guest has which hostname: the first to ask keeps it.
	names *dnsmasq.Names
	// named is the hostname each MAC holds, as last decided from leases.
	named map[string]string
	// addrs6 are the IPv6 addresses inside the network's /64 each MAC was
	// seen using, at most neigh.MaxPerMAC each.
	addrs6 map[string][]netip.Addr

	// writeMu keeps the names files in step with the view: a write holds
	// it from reading the view to the last file, so the latest view is
	// the one written last.
	writeMu sync.Mutex
}

func (g *guestsView) currentLeases() []dnsmasq.Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.leases
}

func (g *guestsView) leaseIPv4(mac string) string {
	for _, l := range g.currentLeases() {
		if l.MAC == mac {
			return l.IP
		}
	}
	return ""
}

// ipv6 lists the IPv6 addresses mac was seen using.
func (g *guestsView) ipv6(mac string) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []string
	for _, a := range g.addrs6[mac] {
		out = append(out, a.String())
	}
	return out
}

// published are the leases as clients see them, each with the hostname
// its guest holds: the one DNS answers for it.
func (g *guestsView) published() []Lease {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := []Lease{}
	for _, l := range g.leases {
		out = append(out, Lease{MAC: l.MAC, IPv4: l.IP, Hostname: g.named[l.MAC]})
	}
	return out
}

// setLeases takes dnsmasq's news and hands out the names it asks for.
func (g *guestsView) setLeases(leases []dnsmasq.Lease) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.names == nil {
		g.names = &dnsmasq.Names{}
	}
	g.leases = leases
	g.named = g.names.Assign(leases)
}

// setAddrs6 takes what the neighbour table says of the network's /64 and
// reports whether that is news.
func (g *guestsView) setAddrs6(addrs map[string][]netip.Addr) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if maps.EqualFunc(g.addrs6, addrs, slices.Equal) {
		return false
	}
	g.addrs6 = addrs
	return true
}

// namedGuests lists the guests with a name and every address dnsmasq answers
// for them: the lease's IPv4 and the IPv6 they were seen using.
func (g *guestsView) namedGuests() []dnsmasq.Named {
	g.mu.Lock()
	defer g.mu.Unlock()
	var out []dnsmasq.Named
	for _, l := range g.leases {
		name := g.named[l.MAC]
		if name == "" {
			continue
		}
		guest := dnsmasq.Named{MAC: l.MAC, Name: name}
		if ip, err := netip.ParseAddr(l.IP); err == nil {
			guest.Addrs = append(guest.Addrs, ip)
		}
		guest.Addrs = append(guest.Addrs, g.addrs6[l.MAC]...)
		out = append(out, guest)
	}
	return out
}

// networkDomain is the DNS domain of network name's guests. DNS ignores
// case, so networks whose names differ only in case cannot both exist.
func (m *Manager) networkDomain(name string) string {
	return strings.ToLower(name) + "." + m.opts.Config.Domain
}

// leasesChanged runs on dnsmasq's goroutine, which teardown may be waiting
// for with the manager locked: so it only stores the leases, and writes
// the names and publishes from a goroutine of its own.
func (m *Manager) leasesChanged(n *netRes, leases []dnsmasq.Lease) {
	n.guests.setLeases(leases)
	go m.guestsChanged(n)
}

// neighboursChanged takes the news of the IPv6 addresses used on link,
// by MAC, to the network whose bridge it is.
func (m *Manager) neighboursChanged(link int, byMAC map[string][]netip.Addr) {
	m.mu.Lock()
	var n *netRes
	for _, candidate := range m.networks {
		if candidate.bridgeIndex == link && candidate.state == ready {
			n = candidate
		}
	}
	m.mu.Unlock()
	if n == nil || !n.plan.Prefix6.IsValid() {
		return
	}
	if n.guests.setAddrs6(inPrefix(byMAC, n.plan.Prefix6)) {
		m.guestsChanged(n)
	}
}

// inPrefix keeps the addresses inside p: a guest's name never points
// outside its network, whatever it made the host's neighbour table say.
func inPrefix(byMAC map[string][]netip.Addr, p netip.Prefix) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	for mac, addrs := range byMAC {
		for _, a := range addrs {
			if p.Contains(a) {
				out[mac] = append(out[mac], a)
			}
		}
	}
	return out
}

// refreshAddrs6 reads what the neighbour table knows of n's bridge now,
// for a network adopted after the table was first read.
func (m *Manager) refreshAddrs6(n *netRes) {
	if m.neigh != nil && n.plan.Prefix6.IsValid() {
		n.guests.setAddrs6(inPrefix(m.neigh.Addrs(n.bridgeIndex), n.plan.Prefix6))
	}
}

// guestsChanged writes the guests' names for dnsmasq and tells clients of
// the network's leases and its taps' addresses.
func (m *Manager) guestsChanged(n *netRes) {
	m.writeNames(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.networks[n.name] != n || n.state != ready {
		return
	}
	m.opts.Observer.NetworkChanged(m.networkInfo(n))
	for name := range n.taps {
		if t, ok := m.taps[name]; ok {
			m.opts.Observer.TapChanged(m.tapInfo(t))
		}
	}
}

// writeNames makes n's dnsmasq answer for its guests as the view says.
func (m *Manager) writeNames(n *netRes) {
	if !n.dns {
		return
	}
	n.guests.writeMu.Lock()
	defer n.guests.writeMu.Unlock()
	m.mu.Lock()
	gone := m.networks[n.name] != n || n.state == removing
	m.mu.Unlock()
	if gone {
		return
	}
	if err := dnsmasq.WriteNames(m.dnsmasqDir(n), n.domain, n.guests.namedGuests()); err != nil {
		m.log.Warn("writing the guests' names for dnsmasq", "network", n.name, "err", err)
	}
}

// registerDNS tells the host's resolver that n's gateway answers for n's
// domain. A failure costs the host its way to the guests' names, nothing
// else: it is logged.
func (m *Manager) registerDNS(n *netRes) {
	servers := []netip.Addr{n.plan.Gateway}
	if n.plan.Gateway6.IsValid() {
		servers = append(servers, n.plan.Gateway6)
	}
	if err := m.opts.Resolver.Register(n.bridgeIndex, servers, n.domain); err != nil {
		m.log.Warn("registering the network's domain with the host's resolver: the host cannot resolve its guests by name; query the gateway instead",
			"network", n.name, "domain", n.domain, "gateway", n.plan.Gateway, "err", err)
	}
}

// unregisterDNS undoes registerDNS, unless the link went (and the
// resolver forgot it) or is another now.
func (m *Manager) unregisterDNS(link linkRef) error {
	if m.opts.Resolver == nil {
		return nil
	}
	if index, err := m.kernel.Bridges.Index(link.Name); err != nil || index != link.Index {
		return nil
	}
	return m.opts.Resolver.Revert(link.Index)
}

// RestoreDNS registers every network's domain again, for a resolver that
// (re)started and knows none.
func (m *Manager) RestoreDNS() {
	if m.opts.Resolver == nil {
		return
	}
	m.mu.Lock()
	var nets []*netRes
	for _, n := range m.networks {
		if n.state == ready && n.dns {
			nets = append(nets, n)
		}
	}
	m.mu.Unlock()
	for _, n := range nets {
		m.registerDNS(n)
	}
}
