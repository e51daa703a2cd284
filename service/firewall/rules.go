package firewall

import (
	"net/netip"
	"slices"

	"github.com/netgrant/netgrant/service/tap"
)

// The rules of a network are written once, in this small model, and each
// backend renders them in its own terms: iptables rule specs in chains of
// the filter and nat tables, or nftables expressions in netgrant's table.

// hook is where a chain is entered from.
type hook int

const (
	// What arrives on a tap's own stack, before anything else sees it
	// (see tapPortRules): first, so that the iptables backend, which
	// inserts its jumps at the head of the built-in chains in reverse,
	// puts them ahead of the others.
	hookTapInput hook = iota
	hookTapForward
	hookInput       // guest to host
	hookForward     // through the host
	hookPostrouting // leaving the host (masquerade)
	hookPrerouting  // arriving at the host (port forwards)
	hookOutput      // the host's own connections (port forwards)
)

// role is what a per-network chain does; its name derives from the bridge
// and the role.
type role int

const (
	roleIn   role = iota // guest to host
	roleTo               // forwarded into the bridge
	roleFrom             // forwarded out of the bridge
	roleNAT              // masquerade
	roleDNAT             // port forwards to guests
)

var roleHooks = [...]hook{roleIn: hookInput, roleTo: hookForward, roleFrom: hookForward, roleNAT: hookPostrouting, roleDNAT: hookPrerouting}

// verdict ends a rule.
type verdict int

const (
	accept verdict = iota
	returnVerdict
	jumpVerdict
	masquerade // to ports 1024-65535 for tcp and udp, as is for others
	drop
	rejectPortUnreachable
	rejectTCPReset
	rejectHostProhibited
	dnat // to dnatTo
	// ICMPv6's rejections (RFC 4443), for IPv6 chains.
	rejectPortUnreachable6
	rejectAdminProhibited6
)

// family is the IP version a set of chains filters: each has its own
// table in nftables and its own iptables (ip6tables for IPv6).
type family int

const (
	ipv4 family = iota
	ipv6
)

var families = [...]family{ipv4, ipv6}

// rule matches every field that is set.
type rule struct {
	iif, oif string
	// iifPrefix matches every interface whose name starts with it.
	iifPrefix   string
	src, dst    netip.Prefix
	notDst      bool
	proto       string // "tcp", "udp", "icmp" or "icmpv6"
	dport       uint16
	established bool // conntrack RELATED or ESTABLISHED
	localDst    bool // to an address of the host
	ctDNAT      bool // of a connection that was port-forwarded
	verdict     verdict
	dnatTo      netip.AddrPort // with dnat
	jumpTo      role           // with jumpVerdict: the chain of the same network
	toPorts     bool           // with masquerade: map ports into 1024-65535
}

// netChain is one per-network chain.
type netChain struct {
	role  role
	rules []rule
}

// networkChains returns the chains of n in fam: none in IPv6 for a network
// without it.
func networkChains(fam family, n Network) []netChain {
	if fam == ipv6 {
		return networkChains6(n)
	}
	return networkChains4(n)
}

// networkChains4 returns the IPv4 chains of n, mirroring libvirt's NAT
// networks except that guests may reach only DHCP, DNS and ICMP on the
// gateway.
func networkChains4(n Network) []netChain {
	subnet := n.Subnet.Masked()
	gateway := netip.PrefixFrom(n.Gateway, 32)
	broadcast := netip.MustParsePrefix("255.255.255.255/32")
	// Only from the subnet and only to the gateway: a query with a forged
	// outside source would have its answer sent outside, and the host's
	// other addresses are none of a guest's business.
	in := netChain{roleIn, []rule{
		{established: true, verdict: accept}, // replies to the host's own connections, e.g. ssh into a guest
		// A client without an address asks from 0.0.0.0, by broadcast.
		{src: netip.MustParsePrefix("0.0.0.0/32"), dst: broadcast, proto: "udp", dport: 67, verdict: accept},
		{src: subnet, dst: broadcast, proto: "udp", dport: 67, verdict: accept},
		{src: subnet, dst: gateway, proto: "udp", dport: 67, verdict: accept},
		{src: subnet, dst: gateway, proto: "udp", dport: 53, verdict: accept},
		{src: subnet, dst: gateway, proto: "tcp", dport: 53, verdict: accept},
		{src: subnet, dst: gateway, proto: "icmp", verdict: accept},
	}}
	in.rules = append(in.rules, hostServices(subnet, gateway, n.HostServices)...)
	in.rules = append(in.rules,
		// Refuse rather than drop, so a guest fails fast instead of hanging.
		rule{proto: "udp", verdict: rejectPortUnreachable},
		rule{proto: "tcp", verdict: rejectTCPReset},
		rule{verdict: rejectHostProhibited},
	)
	to := netChain{roleTo, []rule{
		{dst: subnet, established: true, verdict: accept},
		{iif: n.Bridge, verdict: accept},
		{verdict: rejectPortUnreachable},
	}}
	// Forwarded connections into their guest, before the refusal.
	for _, f := range n.Forwards {
		to.rules = slices.Insert(to.rules, len(to.rules)-1,
			rule{dst: netip.PrefixFrom(f.Guest, 32), proto: f.Proto, dport: f.GuestPort, ctDNAT: true, verdict: accept})
	}
	from := netChain{roleFrom, []rule{{verdict: rejectPortUnreachable}}}
	if !n.Outbound {
		return []netChain{in, to, from}
	}
	// Only the subnet's own addresses go out; anything else is spoofed.
	from.rules = append([]rule{{src: subnet, verdict: accept}}, from.rules...)
	nat := netChain{roleNAT, []rule{
		{dst: netip.MustParsePrefix("224.0.0.0/24"), verdict: returnVerdict},
		{dst: netip.MustParsePrefix("255.255.255.255/32"), verdict: returnVerdict},
		// A guest must never appear to come from a privileged port.
		{dst: subnet, notDst: true, proto: "tcp", verdict: masquerade, toPorts: true},
		{dst: subnet, notDst: true, proto: "udp", verdict: masquerade, toPorts: true},
		{dst: subnet, notDst: true, verdict: masquerade},
	}}
	if len(n.Forwards) > 0 {
		// A guest reaching a forward into its own network through a host
		// address: its peer must answer through the host, not straight.
		nat.rules = slices.Insert(nat.rules, 2, rule{dst: subnet, ctDNAT: true, verdict: masquerade})
	}
	chains := []netChain{in, to, from, nat}
	if len(n.Forwards) > 0 {
		var forwards []rule
		for _, f := range n.Forwards {
			r := rule{localDst: true, proto: f.Proto, dport: f.HostPort, verdict: dnat, dnatTo: netip.AddrPortFrom(f.Guest, f.GuestPort)}
			if f.Address.IsValid() {
				r.dst = netip.PrefixFrom(f.Address, 32)
			}
			forwards = append(forwards, r)
		}
		chains = append(chains, netChain{roleDNAT, forwards})
	}
	return chains
}

// hostServices admit the guests of subnet to the administrator's services
// on their gateway, and on no other address of the host's.
func hostServices(subnet, gateway netip.Prefix, services []Service) []rule {
	var rules []rule
	for _, svc := range services {
		rules = append(rules, rule{src: subnet, dst: gateway, proto: svc.Proto, dport: svc.Port, verdict: accept})
	}
	return rules
}

// Addresses of IPv6 a guest's link needs (RFC 4291, RFC 8415).
var (
	linkLocal6     = netip.MustParsePrefix("fe80::/10")
	linkMulticast6 = netip.MustParsePrefix("ff02::/16")
	// All_DHCP_Relay_Agents_and_Servers, where stateless DHCPv6 asks.
	dhcp6Servers = netip.MustParsePrefix("ff02::1:2/128")
)

// networkChains6 returns the IPv6 twins of networkChains4's chains. Beyond
// DNS on the gateway, guests reach the host only with what an IPv6 link
// needs: neighbour discovery, router solicitations and MLD (ICMPv6 to the
// link's own addresses and multicast groups) and stateless DHCPv6.
func networkChains6(n Network) []netChain {
	if !n.Subnet6.IsValid() {
		return nil
	}
	subnet := n.Subnet6.Masked()
	gateway := netip.PrefixFrom(n.Gateway6, 128)
	in := netChain{roleIn, []rule{
		{established: true, verdict: accept},
		{dst: linkLocal6, proto: "icmpv6", verdict: accept},
		{dst: linkMulticast6, proto: "icmpv6", verdict: accept},
		{src: subnet, dst: gateway, proto: "icmpv6", verdict: accept},
		{src: linkLocal6, dst: dhcp6Servers, proto: "udp", dport: 547, verdict: accept},
		{src: subnet, dst: gateway, proto: "udp", dport: 53, verdict: accept},
		{src: subnet, dst: gateway, proto: "tcp", dport: 53, verdict: accept},
	}}
	in.rules = append(in.rules, hostServices(subnet, gateway, n.HostServices)...)
	in.rules = append(in.rules,
		rule{proto: "udp", verdict: rejectPortUnreachable6},
		rule{proto: "tcp", verdict: rejectTCPReset},
		rule{verdict: rejectAdminProhibited6},
	)
	to := netChain{roleTo, []rule{
		{dst: subnet, established: true, verdict: accept},
		{iif: n.Bridge, verdict: accept},
		{verdict: rejectPortUnreachable6},
	}}
	from := netChain{roleFrom, []rule{{verdict: rejectPortUnreachable6}}}
	if !n.Outbound {
		return []netChain{in, to, from}
	}
	from.rules = append([]rule{{src: subnet, verdict: accept}}, from.rules...)
	nat := netChain{roleNAT, []rule{
		{dst: subnet, notDst: true, proto: "tcp", verdict: masquerade, toPorts: true},
		{dst: subnet, notDst: true, proto: "udp", verdict: masquerade, toPorts: true},
		{dst: subnet, notDst: true, verdict: masquerade},
	}}
	return []netChain{in, to, from, nat}
}

// networkJumps returns the rules that lead from the hooks into n's
// chains of fam. In the forward hook every network's check of traffic
// into its bridge must come before any network's accept of traffic out of
// its bridge, or one network could reach another through its outbound
// accept: jumps with first set go before all others of their hook.
func networkJumps(fam family, n Network) []jump {
	subnet := n.Subnet
	if fam == ipv6 {
		if !n.Subnet6.IsValid() {
			return nil
		}
		subnet = n.Subnet6
	}
	jumps := []jump{
		{hookInput, rule{iif: n.Bridge, verdict: jumpVerdict, jumpTo: roleIn}, false},
		{hookForward, rule{oif: n.Bridge, verdict: jumpVerdict, jumpTo: roleTo}, true},
		{hookForward, rule{iif: n.Bridge, verdict: jumpVerdict, jumpTo: roleFrom}, false},
	}
	if fam == ipv4 {
		// What guests send their gateway (DHCP, DNS) is the gateway's,
		// whatever port any network forwards on every address.
		jumps = append(jumps, jump{hookPrerouting, rule{dst: netip.PrefixFrom(n.Gateway, 32), verdict: returnVerdict}, true})
	}
	if n.Outbound {
		jumps = append(jumps, jump{hookPostrouting, rule{src: subnet.Masked(), verdict: jumpVerdict, jumpTo: roleNAT}, false})
	}
	// Port forwards are IPv4's.
	if fam == ipv4 && n.Outbound && len(n.Forwards) > 0 {
		jumps = append(jumps,
			jump{hookPrerouting, rule{verdict: jumpVerdict, jumpTo: roleDNAT}, false},
			// The host's own connections, but to loopback, which a guest
			// must never be reached by.
			jump{hookOutput, rule{dst: netip.MustParsePrefix("127.0.0.0/8"), notDst: true, verdict: jumpVerdict, jumpTo: roleDNAT}, false})
	}
	return jumps
}

// withFamily are the networks of nets that have chains in fam.
func withFamily(fam family, nets []Network) []Network {
	if fam == ipv4 {
		return nets
	}
	var out []Network
	for _, n := range nets {
		if n.Subnet6.IsValid() {
			out = append(out, n)
		}
	}
	return out
}

type jump struct {
	hook  hook
	rule  rule
	first bool
}

// tapPorts names the rules of tapPortRules where a backend keeps a name
// with each rule (nftables' comments).
const tapPorts = "taps"

// tapPortRules drop whatever arrives on a tap's own stack, at the host's
// input and forward hooks, in chains of their own that come before all
// others: a tap is a guest's port on a bridge, never a host interface,
// and a frame only reaches its stack by going around the bridge's hooks,
// where the guests' filters hang. A bridge hands a frame to an IEEE
// link-local group address (01:80:c2:00:00:0X) that it does not forward up
// the port's own stack; one to 01:80:c2:00:00:0e passes no bridge hook at
// all. The taps' strict reverse-path filter (rp_filter 1) drops such
// packets too; this holds whatever the host's sysctls say.
func tapPortRules(tapPrefix string) []jump {
	ports := rule{iifPrefix: tapPrefix, verdict: drop}
	return []jump{{hookTapInput, ports, true}, {hookTapForward, ports, true}}
}

// hookRules lists, per hook, the rules of nets in fam, the taps' and the
// jumps into each network's chains, in the order they must be evaluated,
// each with its owner: its network's bridge, or tapPorts.
func hookRules(fam family, nets []Network) map[hook][]networkRule {
	out := map[hook][]networkRule{}
	if len(nets) == 0 {
		return out
	}
	for _, j := range tapPortRules(tap.NamePrefix) {
		out[j.hook] = append(out[j.hook], networkRule{owner: tapPorts, rule: j.rule})
	}
	for _, first := range []bool{true, false} {
		for _, n := range nets {
			for _, j := range networkJumps(fam, n) {
				if j.first == first {
					out[j.hook] = append(out[j.hook], networkRule{owner: n.Bridge, rule: j.rule})
				}
			}
		}
	}
	return out
}

// networkRule is a rule of a hook's chain: owner is the bridge of the
// network whose chains it jumps to, or tapPorts.
type networkRule struct {
	owner string
	rule  rule
}

// sameNetwork tells whether two networks get the same rules.
func sameNetwork(a, b Network) bool {
	return a.Bridge == b.Bridge && a.Subnet == b.Subnet && a.Gateway == b.Gateway && a.Outbound == b.Outbound &&
		a.Subnet6 == b.Subnet6 && a.Gateway6 == b.Gateway6 && a.GatewayLinkLocal6 == b.GatewayLinkLocal6 &&
		slices.Equal(a.Forwards, b.Forwards) && slices.Equal(a.HostServices, b.HostServices)
}
