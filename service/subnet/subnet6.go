package subnet

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net/netip"
)

// A network's IPv6 is a /64 inside one of the IPv6 pools the administrator
// configured ([Networks] SubnetPool6=), by default a /48 of unique local
// addresses (RFC 4193) whose 40-bit global ID derives from the machine:
// no user can claim a /64 the host reaches elsewhere. Unless the caller
// names one, a network's /64 derives from the machine and its name, so it
// keeps its /64 across restarts and two machines' networks of one name
// differ.

// DefaultPool6 is the machine's own /48 of unique local addresses, the
// IPv6 pool when the configuration names none.
func DefaultPool6(machineID string) netip.Prefix {
	sum := sha256.Sum256(fmt.Appendf(nil, "netgrant-pool\x00%s", machineID))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:6], sum[:5])
	return netip.PrefixFrom(netip.AddrFrom16(a), 48)
}

// ValidPool6 checks an IPv6 pool: a network of unicast addresses in CIDR
// form, no longer than a /64 and no shorter than a /16, host bits zero.
func ValidPool6(p netip.Prefix) error {
	switch {
	case !p.IsValid() || !p.Addr().Is6() || p.Addr().Is4In6():
		return fmt.Errorf("%s is not an IPv6 network in CIDR notation", p)
	case p.Bits() > 64 || p.Bits() < 16:
		return fmt.Errorf("%s: its length is outside /16../64", p)
	case p.Masked() != p:
		return fmt.Errorf("%s has host bits set (the network is %s)", p, p.Masked())
	case p.Addr().IsMulticast() || p.Addr().IsLinkLocalUnicast() || p.Addr().IsLoopback():
		return fmt.Errorf("%s is not a range of unicast addresses a network may use", p)
	}
	return nil
}

// Validate6 checks a caller-given IPv6 subnet: a /64 inside one of pools,
// host bits zero.
func Validate6(s string, pools []netip.Prefix) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil || !p.Addr().Is6() || p.Addr().Is4In6():
		return netip.Prefix{}, fmt.Errorf("%q is not an IPv6 CIDR like fd12:3456:789a:1::/64", s)
	case p.Bits() != 64:
		return netip.Prefix{}, fmt.Errorf("%s is not a /64, the only length SLAAC works with", p)
	case p.Masked() != p:
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; did you mean %s?", p, p.Masked())
	}
	for _, pool := range pools {
		if pool.Contains(p.Addr()) {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("%s is not inside the IPv6 pools the administrator allows (%s); omit subnet6 to get a free one", p, joinPrefixes(pools))
}

// Derive6 is the attempt-th /64 of pool for network name on the machine
// with machineID: attempt 0 is its own, later ones are for when that one
// is taken.
func Derive6(pool netip.Prefix, machineID, name string, attempt int) netip.Prefix {
	sum := sha256.Sum256(fmt.Appendf(nil, "netgrant\x00%s\x00%s\x00%d", machineID, name, attempt))
	base := pool.Masked().Addr().As16()
	// The /64's number within the pool fills the bits between the pool's
	// length and 64.
	hi := binary.BigEndian.Uint64(base[:8])
	if free := 64 - pool.Bits(); free > 0 {
		hi |= binary.BigEndian.Uint64(sum[:8]) >> (64 - free)
	}
	var a [16]byte
	binary.BigEndian.PutUint64(a[:8], hi)
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// Gateway6 is the bridge's address in p: the first after the subnet's.
func Gateway6(p netip.Prefix) netip.Addr { return p.Masked().Addr().Next() }

// Pick6 returns name's /64 on this machine, in the first of pools, or the
// next derived one, in pool order, that overlaps none of uses.
func Pick6(pools []netip.Prefix, machineID, name string, uses []Use) (netip.Prefix, error) {
	const attempts = 16
	for _, pool := range pools {
		for attempt := range attempts {
			p := Derive6(pool, machineID, name, attempt)
			if _, used := Conflict(p, uses); !used {
				return p, nil
			}
		}
	}
	return netip.Prefix{}, fmt.Errorf("the first %d IPv6 /64s derived for %q in each of the pools %s are all taken", attempts, name, joinPrefixes(pools))
}
