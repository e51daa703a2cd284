package subnet

import (
	"net/netip"
	"testing"
)

func TestValidate6(t *testing.T) {
	for s, ok := range map[string]bool{
		"fd12:3456:789a:1::/64":  true,
		"fd00::/64":              true,
		"fd12:3456:789a:1::/48":  false,
		"fc00::/64":              false,
		"2001:db8::/64":          false,
		"fd12:3456:789a:1::1/64": false,
		"10.97.0.0/24":           false,
		"::ffff:10.0.0.0/120":    false,
		"nonsense":               false,
	} {
		if _, err := Validate6(s); (err == nil) != ok {
			t.Errorf("Validate6(%q) = %v, want ok %v", s, err, ok)
		}
	}
}

func TestDerive6(t *testing.T) {
	a := Derive6("0123456789abcdef0123456789abcdef", "demo", 0)
	if _, err := Validate6(a.String()); err != nil {
		t.Errorf("derived %s: %v", a, err)
	}
	if again := Derive6("0123456789abcdef0123456789abcdef", "demo", 0); again != a {
		t.Errorf("derived %s, then %s", a, again)
	}
	for _, other := range []netip.Prefix{
		Derive6("0123456789abcdef0123456789abcdef", "demo2", 0),
		Derive6("fedcba9876543210fedcba9876543210", "demo", 0),
		Derive6("0123456789abcdef0123456789abcdef", "demo", 1),
	} {
		if other == a {
			t.Errorf("another machine, name or attempt derived the same %s", a)
		}
	}
	if g := Gateway6(a); !a.Contains(g) || g == a.Addr() {
		t.Errorf("gateway %s of %s", g, a)
	}
}

func TestPick6SkipsWhatIsTaken(t *testing.T) {
	own := Derive6("m", "demo", 0)
	p, err := Pick6("m", "demo", uses(own.String()))
	if err != nil || p != Derive6("m", "demo", 1) {
		t.Errorf("Pick6 with the first taken: %v %v", p, err)
	}
	if _, err := Pick6("m", "demo", uses("fd00::/8")); err == nil {
		t.Error("Pick6 found a /64 in a fully used fd00::/8")
	}
}
