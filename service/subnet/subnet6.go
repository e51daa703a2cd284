package subnet

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
)

// A network's IPv6 is a /64 of unique local addresses (RFC 4193): inside
// fd00::/8, with a 40-bit global ID that, unless the caller names one, is
// derived from the machine and the network's name, so a network keeps its
// /64 across restarts and two machines' networks of one name differ.

var uniqueLocal = netip.MustParsePrefix("fd00::/8")

// Validate6 checks a caller-given IPv6 subnet: a /64 inside fd00::/8,
// host bits zero.
func Validate6(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is6() || p.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv6 CIDR like fd12:3456:789a:1::/64", s)
	case p.Bits() != 64:
		return netip.Prefix{}, fmt.Errorf("%s is not a /64, the only length SLAAC works with", p)
	case !uniqueLocal.Contains(p.Addr()):
		return netip.Prefix{}, fmt.Errorf("%s is not inside fd00::/8 (unique local addresses)", p)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", p, p.Masked())
	}
	return p, nil
}

// Derive6 is the attempt-th /64 for network name on the machine with
// machineID: attempt 0 is its own, later ones are for when that one is
// taken.
func Derive6(machineID, name string, attempt int) netip.Prefix {
	sum := sha256.Sum256(fmt.Appendf(nil, "netgrant\x00%s\x00%s\x00%d", machineID, name, attempt))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:8], sum[:7])
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// Gateway6 is the bridge's address in p: the first after the subnet's.
func Gateway6(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// Pick6 returns name's /64 on this machine, or the next derived one that
// overlaps none of uses.
func Pick6(machineID, name string, uses []Use) (netip.Prefix, error) {
	const attempts = 16
	for attempt := range attempts {
		p := Derive6(machineID, name, attempt)
		if _, used := Conflict(p, uses); !used {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("the first %d IPv6 /64s derived for %q are all taken", attempts, name)
}
