package subnet

import (
	"net/netip"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	pools := []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("192.168.7.0/24")}
	tests := []struct {
		in      string
		largest int
		want    string // accepted prefix, or "" when rejected
		errText string // part of the error message
	}{
		{in: "10.97.3.0/24", want: "10.97.3.0/24"},
		{in: "10.97.4.0/22", want: "10.97.4.0/22"},
		{in: "192.168.7.8/29", want: "192.168.7.8/29"},
		{in: "10.97.0.0/16", largest: 16, want: "10.97.0.0/16"},
		{in: "10.97.0.0/16", errText: "/16 is outside /22../29 ([Networks] LargestPrefix=22)"},
		{in: "10.97.0.0/21", errText: "/21 is outside /22../29"},
		{in: "10.0.0.0/30", errText: "/30 is outside /22../29"},
		{in: "0.0.0.0/0", errText: "/0 is outside"},
		{in: "10.1.2.0/24", errText: "not inside the subnet pools the administrator allows (10.97.0.0/16 192.168.7.0/24)"},
		{in: "192.168.6.0/24", errText: "not inside the subnet pools"},
		{in: "192.168.6.0/23", errText: "not inside the subnet pools"}, // contains a pool, is not inside one
		{in: "8.8.8.0/24", errText: "not inside the subnet pools"},
		{in: "fd00::/64", errText: "not IPv4"},
		{in: "::ffff:10.0.0.0/120", errText: "not IPv4"},
		{in: "garbage", errText: "not an IPv4 CIDR"},
		{in: "10.0.0.0", errText: "not an IPv4 CIDR"},
		{in: "", errText: "not an IPv4 CIDR"},
		{in: "10.97.2.3/24", errText: "did you mean 10.97.2.0/24"},
	}
	for _, tt := range tests {
		largest := tt.largest
		if largest == 0 {
			largest = 22
		}
		got, err := Validate(tt.in, pools, largest)
		if tt.want != "" {
			if err != nil || got.String() != tt.want {
				t.Errorf("Validate(%q) = %v, %v; want %s", tt.in, got, err, tt.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("Validate(%q) = %v, want an error", tt.in, got)
		} else if !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("Validate(%q) error %q does not say %q", tt.in, err, tt.errText)
		}
	}
}

func TestPrivate(t *testing.T) {
	for in, want := range map[string]bool{
		"10.0.0.0/8": true, "172.16.0.0/12": true, "192.168.7.0/24": true,
		"172.32.0.0/24": false, "100.64.0.0/16": false, "8.8.8.0/24": false, "172.0.0.0/8": false,
	} {
		if got := Private(netip.MustParsePrefix(in)); got != want {
			t.Errorf("Private(%s) = %v, want %v", in, got, want)
		}
	}
}

func TestNewPlan(t *testing.T) {
	tests := []struct {
		prefix                      string
		gateway, dhcpStart, dhcpEnd string
	}{
		{"10.97.3.0/24", "10.97.3.1", "10.97.3.2", "10.97.3.254"},
		{"192.168.7.8/29", "192.168.7.9", "192.168.7.10", "192.168.7.14"},
		{"10.1.0.0/16", "10.1.0.1", "10.1.0.2", "10.1.255.254"},
	}
	for _, tt := range tests {
		p := NewPlan(netip.MustParsePrefix(tt.prefix))
		if p.Prefix.String() != tt.prefix || p.Gateway.String() != tt.gateway ||
			p.DHCPStart.String() != tt.dhcpStart || p.DHCPEnd.String() != tt.dhcpEnd {
			t.Errorf("NewPlan(%s) = %+v, want gateway %s, DHCP %s..%s", tt.prefix, p, tt.gateway, tt.dhcpStart, tt.dhcpEnd)
		}
	}
}

func uses(prefixes ...string) []Use {
	var u []Use
	for _, p := range prefixes {
		u = append(u, Use{Prefix: netip.MustParsePrefix(p), What: "use " + p})
	}
	return u
}

func TestConflict(t *testing.T) {
	tests := []struct {
		subnet string
		uses   []Use
		want   string // What of the conflicting use, "" for none
	}{
		{"10.0.0.0/24", nil, ""},
		{"10.0.0.0/24", uses("10.0.1.0/24", "192.168.0.0/16"), ""},
		{"10.0.0.0/24", uses("10.0.1.0/24", "10.0.0.0/24"), "use 10.0.0.0/24"},
		{"10.0.0.0/24", uses("10.0.0.0/16"), "use 10.0.0.0/16"},                // inside a wider use
		{"10.0.0.0/16", uses("10.0.200.0/24"), "use 10.0.200.0/24"},            // a narrower use inside
		{"10.0.0.0/24", uses("10.0.0.77/32"), "use 10.0.0.77/32"},              // a single address
		{"10.0.0.0/24", uses("10.0.0.0/24", "10.0.0.0/16"), "use 10.0.0.0/24"}, // first wins
		{"10.0.0.0/24", uses("fd00::/8"), ""},
		{"10.0.0.8/29", uses("10.0.0.0/29", "10.0.0.16/29"), ""},
	}
	for _, tt := range tests {
		got, ok := Conflict(netip.MustParsePrefix(tt.subnet), tt.uses)
		if ok != (tt.want != "") || got.What != tt.want {
			t.Errorf("Conflict(%s, %v) = %q, %v; want %q", tt.subnet, tt.uses, got.What, ok, tt.want)
		}
	}
}

func TestPick(t *testing.T) {
	pool := []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16")}
	tests := []struct {
		uses []Use
		want string
	}{
		{nil, "10.97.0.0/24"},
		{uses("10.97.0.0/24", "10.97.1.5/32", "10.97.2.128/25"), "10.97.3.0/24"},
		{uses("10.97.0.0/23", "10.96.0.0/24"), "10.97.2.0/24"},
	}
	for _, tt := range tests {
		got, err := Pick(pool, tt.uses)
		if err != nil || got.String() != tt.want {
			t.Errorf("Pick(%s, %v) = %v, %v; want %s", pool, tt.uses, got, err, tt.want)
		}
	}
}

func TestPickLastOfPool(t *testing.T) {
	got, err := Pick([]netip.Prefix{netip.MustParsePrefix("192.168.0.0/22")}, uses("192.168.0.0/23", "192.168.2.0/24"))
	if err != nil || got.String() != "192.168.3.0/24" {
		t.Fatalf("Pick = %v, %v; want 192.168.3.0/24", got, err)
	}
}

func TestPickMovesToTheNextPool(t *testing.T) {
	pools := []netip.Prefix{netip.MustParsePrefix("10.97.0.0/23"), netip.MustParsePrefix("192.168.5.0/24")}
	got, err := Pick(pools, uses("10.97.0.0/24", "10.97.1.0/24"))
	if err != nil || got.String() != "192.168.5.0/24" {
		t.Fatalf("Pick = %v, %v; want 192.168.5.0/24 from the second pool", got, err)
	}
}

func TestPickExhausted(t *testing.T) {
	pool := []netip.Prefix{netip.MustParsePrefix("10.97.0.0/22")}
	_, err := Pick(pool, uses("10.97.0.0/23", "10.97.2.0/24", "10.97.3.1/32"))
	if err == nil || !strings.Contains(err.Error(), "10.97.0.0/22") {
		t.Fatalf("Pick from a full pool: error %v, want one naming the pool", err)
	}
	if _, err := Pick([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/25")}, nil); err == nil {
		t.Fatal("Pick from a pool smaller than a /24 succeeded")
	}
}
