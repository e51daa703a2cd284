package subnet

import (
	"net/netip"
	"testing"
)

var pools = []netip.Prefix{netip.MustParsePrefix("fd12:3456:789a::/48"), netip.MustParsePrefix("fd99::/64")}

func TestValidate6(t *testing.T) {
	for s, ok := range map[string]bool{
		"fd12:3456:789a:1::/64":  true,
		"fd99::/64":              true,
		"fd12:3456:789b:1::/64":  false, // a /64 of fd00::/8, but no pool's
		"fd00::/64":              false,
		"fd12:3456:789a:1::/48":  false,
		"2001:db8::/64":          false,
		"fd12:3456:789a:1::1/64": false,
		"10.97.0.0/24":           false,
		"::ffff:10.0.0.0/120":    false,
		"nonsense":               false,
	} {
		if _, err := Validate6(s, pools); (err == nil) != ok {
			t.Errorf("Validate6(%q) = %v, want ok %v", s, err, ok)
		}
	}
}

func TestValidPool6(t *testing.T) {
	for s, ok := range map[string]bool{
		"fd12:3456:789a::/48":  true,
		"2001:db8:5::/56":      true,
		"fd99::/64":            true,
		"fd00::/8":             false,
		"fd99::/65":            false,
		"fd12:3456:789a::1/48": false,
		"fe80::/64":            false,
		"ff02::/16":            false,
	} {
		if err := ValidPool6(netip.MustParsePrefix(s)); (err == nil) != ok {
			t.Errorf("ValidPool6(%s) = %v, want ok %v", s, err, ok)
		}
	}
}

// A machine's pool and each network's /64 in it are stable, differ by
// machine and name, and lie in the pool.
func TestDerive6(t *testing.T) {
	pool := DefaultPool6("0123456789abcdef0123456789abcdef")
	if err := ValidPool6(pool); err != nil || pool.Bits() != 48 || !netip.MustParsePrefix("fd00::/8").Contains(pool.Addr()) {
		t.Fatalf("default pool %s (%v) is not a /48 of fd00::/8", pool, err)
	}
	if other := DefaultPool6("fedcba9876543210fedcba9876543210"); other == pool {
		t.Errorf("two machines have the pool %s", pool)
	}
	a := Derive6(pool, "0123456789abcdef0123456789abcdef", "demo", 0)
	if _, err := Validate6(a.String(), []netip.Prefix{pool}); err != nil {
		t.Errorf("derived %s: %v", a, err)
	}
	if again := Derive6(pool, "0123456789abcdef0123456789abcdef", "demo", 0); again != a {
		t.Errorf("derived %s, then %s", a, again)
	}
	for _, other := range []netip.Prefix{
		Derive6(pool, "0123456789abcdef0123456789abcdef", "demo2", 0),
		Derive6(pool, "fedcba9876543210fedcba9876543210", "demo", 0),
		Derive6(pool, "0123456789abcdef0123456789abcdef", "demo", 1),
	} {
		if other == a {
			t.Errorf("another machine, name or attempt derived the same %s", a)
		}
	}
	if one := Derive6(pools[1], "m", "demo", 3); one != pools[1] {
		t.Errorf("the only /64 of %s is %s", pools[1], one)
	}
	if g := Gateway6(a); !a.Contains(g) || g == a.Addr() {
		t.Errorf("gateway %s of %s", g, a)
	}
}

func TestPick6SkipsWhatIsTaken(t *testing.T) {
	own := Derive6(pools[0], "m", "demo", 0)
	p, err := Pick6(pools, "m", "demo", uses(own.String()))
	if err != nil || p != Derive6(pools[0], "m", "demo", 1) {
		t.Errorf("Pick6 with the first taken: %v %v", p, err)
	}
	// The first pool full: the next pool's.
	if p, err := Pick6(pools, "m", "demo", uses(pools[0].String())); err != nil || p != pools[1] {
		t.Errorf("Pick6 with the first pool full: %v %v", p, err)
	}
	if _, err := Pick6(pools, "m", "demo", uses("fd00::/8")); err == nil {
		t.Error("Pick6 found a /64 in fully used pools")
	}
}
