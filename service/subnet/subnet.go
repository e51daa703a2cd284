// Package subnet chooses and checks the IPv4 subnet of a NAT network, so
// that a network never shadows an address or route the host already uses.
package subnet

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Plan is the addressing of one network.
type Plan struct {
	Prefix    netip.Prefix // masked, e.g. 10.97.3.0/24
	Gateway   netip.Addr   // first host address: the bridge's
	DHCPStart netip.Addr   // first address after the gateway
	DHCPEnd   netip.Addr   // last address before the broadcast address
	// Prefix6 is the network's IPv6 /64 and Gateway6 the bridge's
	// address in it; both invalid without IPv6 (see WithIPv6).
	Prefix6  netip.Prefix
	Gateway6 netip.Addr
}

// WithIPv6 is p with the IPv6 /64 p6 (none if p6 is invalid).
func (p Plan) WithIPv6(p6 netip.Prefix) Plan {
	p.Prefix6, p.Gateway6 = netip.Prefix{}, netip.Addr{}
	if p6.IsValid() {
		p.Prefix6, p.Gateway6 = p6.Masked(), Gateway6(p6)
	}
	return p
}

// NewPlan lays out p, an IPv4 prefix of a length Validate accepts.
func NewPlan(p netip.Prefix) Plan {
	p = p.Masked()
	gateway := p.Addr().Next()
	return Plan{
		Prefix:    p,
		Gateway:   gateway,
		DHCPStart: gateway.Next(),
		DHCPEnd:   lastAddr(p).Prev(),
	}
}

// SmallestPrefix is the longest prefix a network may have: /29 leaves the
// gateway and five guests.
const SmallestPrefix = 29

// Private reports whether p lies wholly inside 10.0.0.0/8, 172.16.0.0/12
// or 192.168.0.0/16.
func Private(p netip.Prefix) bool {
	for _, r := range privateRanges {
		if r.Bits() <= p.Bits() && r.Contains(p.Addr()) {
			return true
		}
	}
	return false
}

var privateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
}

// Validate checks a caller-given subnet: an IPv4 CIDR from /largest to
// /29, wholly inside one of the pools the administrator configured — so a
// user can never claim addresses the host reaches elsewhere (through its
// default route, say), nor a range so large it crowds out everyone else's
// networks. Host bits must be zero: 10.1.2.3/24 is rejected rather than
// silently masked, because a caller who wrote it may have meant a
// different network.
func Validate(s string, pools []netip.Prefix, largest int) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv4 CIDR subnet such as 10.97.3.0/24", s)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("%q is not IPv4; only IPv4 subnets are supported", s)
	}
	if p.Bits() < largest || p.Bits() > SmallestPrefix {
		return netip.Prefix{}, fmt.Errorf("%s: prefix length /%d is outside /%d../%d ([Networks] LargestPrefix=%d)", p, p.Bits(), largest, SmallestPrefix, largest)
	}
	if masked := p.Masked(); masked != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s", p, masked)
	}
	for _, pool := range pools {
		if pool.Bits() <= p.Bits() && pool.Contains(p.Addr()) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s is not inside the subnet pools the administrator allows (%s); omit subnet to get a free one", p, joinPrefixes(pools))
}

func joinPrefixes(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, " ")
}

// Use is something a subnet must not overlap, with a description for the
// error message, such as "address 10.0.0.5/24 on eth0".
type Use struct {
	Prefix netip.Prefix
	What   string
}

// Conflict returns the first use overlapping p, if any.
func Conflict(p netip.Prefix, uses []Use) (Use, bool) {
	for _, u := range uses {
		if u.Prefix.Overlaps(p) {
			return u, true
		}
	}
	return Use{}, false
}

// Pick returns the first /24, in the pools' order, that overlaps none of
// uses.
func Pick(pools []netip.Prefix, uses []Use) (netip.Prefix, error) {
	for _, pool := range pools {
		if !pool.Addr().Is4() || pool.Bits() > 24 {
			return netip.Prefix{}, fmt.Errorf("subnet pool %s is not an IPv4 range of /24 or more", pool)
		}
		first := toUint32(pool.Masked().Addr())
		for i := range uint32(1) << (24 - pool.Bits()) {
			candidate := netip.PrefixFrom(fromUint32(first+i<<8), 24)
			if _, used := Conflict(candidate, uses); !used {
				return candidate, nil
			}
		}
	}
	return netip.Prefix{}, errors.New("no free /24 left in the subnet pools " + joinPrefixes(pools))
}

func lastAddr(p netip.Prefix) netip.Addr {
	return fromUint32(toUint32(p.Addr()) | ^uint32(0)>>p.Bits())
}

func toUint32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromUint32(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}
