package firewall

import (
	"fmt"
	"net"
	"net/netip"
)

// Guests are kept honest on the bridge, before a frame is switched to
// another port or handed to the host: an nftables table of the bridge
// family, bridge netgrant, with a chain per tap, as libvirt's clean-traffic
// filter does it. Both backends keep it; ebtables-nft would write the same
// kernel objects, and ebtables is not installed on most hosts.
const bridgeTable = "netgrant"

// Guest is a tap on a network, whose guest may send only as itself.
type Guest struct {
	Tap string
	// MAC is the guest's; nil while it is to be learnt (see
	// learn_linux.go): then the tap lets nothing through.
	MAC net.HardwareAddr
	// IPv4 is the address DHCP gives the guest (its reservation); without
	// DHCP it is invalid and the guest may use any address of the subnet
	// but the gateway's.
	IPv4 netip.Addr
}

// Ethernet types the guests may send (IEEE 802 numbers); anything else,
// VLAN tags included, is dropped.
const (
	etherIPv4 = 0x0800
	etherARP  = 0x0806
	etherIPv6 = 0x86dd
)

// frameRule matches every field that is set; it drops or, if pass is set,
// returns (lets the frame on); with learn it hands the frame to netgrantd
// (LearnGroup) before it drops it.
type frameRule struct {
	notSrcMAC net.HardwareAddr
	etherType uint16
	// arpFrom matches an Ethernet/IPv4 ARP packet sent as arpMAC (any,
	// if nil) from an address in arpIP.
	arpFrom bool
	arpMAC  net.HardwareAddr
	arpIP   netip.Prefix
	ipSrc   netip.Prefix
	proto   string // "udp" or "icmpv6"
	sport   uint16
	dport   uint16
	// notChaddr matches a DHCP message about another client than this MAC.
	notChaddr net.HardwareAddr
	icmp6Type uint8
	// ndTarget matches a neighbour advertisement about this address.
	ndTarget netip.Addr
	pass     bool
	learn    bool
}

// ICMPv6 messages of neighbour discovery (RFC 4861) and the DHCP ports
// (RFC 2131, RFC 8415).
const (
	icmp6RouterSolicit  = 133
	icmp6RouterAdvert   = 134
	icmp6NeighborAdvert = 136
	icmp6Redirect       = 137
	dhcpServerPort      = 67
	dhcpClientPort      = 68
	dhcp6ServerPort     = 547
)

// unspecified4 and unspecified6 are where a guest without an address
// sends from.
var (
	unspecified4 = netip.MustParsePrefix("0.0.0.0/32")
	unspecified6 = netip.MustParsePrefix("::/128")
)

// learningRules hand netgrantd the frames a booting guest sends first — a
// DHCP request, an ARP probe, IPv6 duplicate address detection and router
// solicitation — and drop everything: until its MAC is learnt, nothing of
// the guest's reaches anyone.
func learningRules() []frameRule {
	return []frameRule{
		{etherType: etherIPv4, ipSrc: unspecified4, proto: "udp", sport: dhcpClientPort, dport: dhcpServerPort, learn: true},
		{etherType: etherARP, arpFrom: true, arpIP: unspecified4, learn: true},
		{etherType: etherIPv6, ipSrc: unspecified6, learn: true},
		{etherType: etherIPv6, proto: "icmpv6", icmp6Type: icmp6RouterSolicit, learn: true},
		{},
	}
}

// guestRules are the checks of every frame g's tap brings to bridge n.
func guestRules(n Network, g Guest) []frameRule {
	if g.MAC == nil {
		return learningRules()
	}
	var allowed []netip.Prefix
	rules := []frameRule{{notSrcMAC: g.MAC}}
	gateway := netip.PrefixFrom(n.Gateway, 32)
	if g.IPv4.IsValid() {
		allowed = []netip.Prefix{netip.PrefixFrom(g.IPv4, 32)}
	} else {
		allowed = []netip.Prefix{n.Subnet.Masked()}
		rules = append(rules,
			frameRule{etherType: etherARP, arpFrom: true, arpMAC: g.MAC, arpIP: gateway},
			frameRule{etherType: etherIPv4, ipSrc: gateway})
	}
	// ARP probes (RFC 5227) come from 0.0.0.0.
	for _, p := range append([]netip.Prefix{unspecified4}, allowed...) {
		rules = append(rules, frameRule{etherType: etherARP, arpFrom: true, arpMAC: g.MAC, arpIP: p, pass: true})
	}
	rules = append(rules,
		frameRule{etherType: etherARP},
		frameRule{etherType: etherIPv4, proto: "udp", sport: dhcpServerPort},
		// A DHCP request for another MAC would move that guest's lease.
		frameRule{etherType: etherIPv4, proto: "udp", dport: dhcpServerPort, notChaddr: g.MAC},
		frameRule{etherType: etherIPv4, ipSrc: unspecified4, proto: "udp", sport: dhcpClientPort, dport: dhcpServerPort, pass: true},
	)
	for _, p := range allowed {
		rules = append(rules, frameRule{etherType: etherIPv4, ipSrc: p, pass: true})
	}
	rules = append(rules,
		frameRule{etherType: etherIPv4},
		frameRule{etherType: etherIPv6, proto: "icmpv6", icmp6Type: icmp6RouterAdvert},
		frameRule{etherType: etherIPv6, proto: "icmpv6", icmp6Type: icmp6Redirect},
		frameRule{etherType: etherIPv6, proto: "udp", sport: dhcp6ServerPort},
	)
	return append(append(rules, guestRules6(n)...), frameRule{})
}

// guestRules6 lets a guest send IPv6 from its link-local addresses, from
// the unspecified address (duplicate address detection) and from the
// network's /64, but never as the gateway, whose addresses it may not
// claim in neighbour advertisements either. Its addresses in the /64 are
// its own choice (SLAAC, privacy addresses), so the /64 is what is
// checked. On a network without IPv6 only the router's part is refused.
func guestRules6(n Network) []frameRule {
	if !n.Subnet6.IsValid() {
		return []frameRule{{etherType: etherIPv6, pass: true}}
	}
	var rules []frameRule
	for _, gw := range []netip.Addr{n.Gateway6, n.GatewayLinkLocal6} {
		rules = append(rules,
			frameRule{etherType: etherIPv6, ipSrc: netip.PrefixFrom(gw, 128)},
			frameRule{etherType: etherIPv6, proto: "icmpv6", icmp6Type: icmp6NeighborAdvert, ndTarget: gw})
	}
	for _, p := range []netip.Prefix{linkLocal6, unspecified6, n.Subnet6.Masked()} {
		rules = append(rules, frameRule{etherType: etherIPv6, ipSrc: p, pass: true})
	}
	return append(rules, frameRule{etherType: etherIPv6})
}

func guestChain(tap string) string { return tap + "-guest" }

// guestMapName is the bridge table's map from a tap to its guest's chain.
const guestMapName = "guests"

// allGuests lists every guest of nets with its network.
func allGuests(nets []Network) []networkGuest {
	var out []networkGuest
	for _, n := range nets {
		for _, g := range n.Guests {
			out = append(out, networkGuest{n, g})
		}
	}
	return out
}

type networkGuest struct {
	net   Network
	guest Guest
}

func guestsByTap(nets []Network) map[string]networkGuest {
	out := map[string]networkGuest{}
	for _, ng := range allGuests(nets) {
		out[ng.guest.Tap] = ng
	}
	return out
}

// sameGuest tells whether two guests get the same rules.
func sameGuest(a, b networkGuest) bool {
	return a.guest.IPv4 == b.guest.IPv4 && a.guest.MAC.String() == b.guest.MAC.String() &&
		a.net.Subnet == b.net.Subnet && a.net.Gateway == b.net.Gateway &&
		a.net.Subnet6 == b.net.Subnet6 && a.net.Gateway6 == b.net.Gateway6 && a.net.GatewayLinkLocal6 == b.net.GatewayLinkLocal6
}

func (g Guest) validate(n Network) error {
	if !validTap(g.Tap) {
		return fmt.Errorf("network %s: tap name %q is not a valid interface name", n.Bridge, g.Tap)
	}
	if g.MAC != nil && (len(g.MAC) != 6 || g.MAC[0]&1 != 0) {
		return fmt.Errorf("network %s: tap %s: %v is not a unicast Ethernet address", n.Bridge, g.Tap, g.MAC)
	}
	if g.IPv4.IsValid() && (!n.Subnet.Contains(g.IPv4) || g.IPv4 == n.Gateway) {
		return fmt.Errorf("network %s: tap %s: address %s is not a guest address of %s", n.Bridge, g.Tap, g.IPv4, n.Subnet)
	}
	return nil
}

func validTap(name string) bool { return validBridge(name) == nil }
