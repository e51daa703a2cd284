package service

import (
	"strings"
	"testing"
)

func TestNetworkNames(t *testing.T) {
	for name, valid := range map[string]bool{
		"lab": true, "my-net": true, "a_b": true, "0": true, strings.Repeat("n", 32): true,
		"": false, "-lead": false, "_lead": false, "my net": false, "a\nb": false, "café": false,
		strings.Repeat("n", 33): false, "a/b": false, "a.b": false,
	} {
		if got := ValidNetworkName(name); got != valid {
			t.Errorf("ValidNetworkName(%q) = %v, want %v", name, got, valid)
		}
	}
}

func TestGuestMACs(t *testing.T) {
	for s, ok := range map[string]bool{
		"52:54:00:12:34:56": true, "02:00:00:00:00:01": true,
		"01:00:5e:00:00:01": false, "00:00:00:00:00:00": false, "52:54:00:12:34": false,
		"52-54-00-12-34-56": false, "5254.0012.3456": false, "00:00:00:00:00:00:00:01": false,
	} {
		if _, err := parseGuestMAC(s); (err == nil) != ok {
			t.Errorf("parseGuestMAC(%q) = %v, want ok=%v", s, err, ok)
		}
	}
}

func TestTapRequests(t *testing.T) {
	good := TapRequest{Queues: 1, VnetHdr: true}
	if err := good.validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		req     TapRequest
		mention string
	}{
		{TapRequest{Queues: 0}, "queues"},
		{TapRequest{Queues: 17}, "queues"},
		{TapRequest{Queues: 1, MTU: 67}, "mtu"},
		{TapRequest{Queues: 1, MTU: 65536}, "mtu"},
		{TapRequest{Queues: 1, MAC: "ff:ff:ff:ff:ff:ff"}, "mac"},
		{TapRequest{Queues: 1, Network: "a b"}, "network"},
		{TapRequest{Queues: 1, Bridge: "br0/x"}, "bridge"},
		{TapRequest{Queues: 1, Bridge: strings.Repeat("b", 16)}, "bridge"},
		{TapRequest{Queues: 1, Network: "lab", Bridge: "br0"}, "network and bridge"},
	} {
		err := tc.req.validate()
		if KindOf(err) != InvalidArgument || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%+v: %v, want InvalidArgument naming %s", tc.req, err, tc.mention)
		}
	}
}

func TestJoinNeedsEveryGivenOptionToMatch(t *testing.T) {
	existing := &netRes{dhcp: true, dns: true, outbound: false, mtu: 1400}
	existing.plan.Prefix = mustPrefix(t, "10.97.3.0/24")
	yes, no := true, false
	subnet, other := "10.97.3.0/24", "10.97.4.0/24"
	mtu, otherMTU := uint32(1400), uint32(1500)
	for _, tc := range []struct {
		req  NetworkRequest
		same bool
	}{
		{NetworkRequest{}, true},
		{NetworkRequest{Subnet: &subnet, DHCP: &yes, Outbound: &no, MTU: &mtu}, true},
		{NetworkRequest{Subnet: &other}, false},
		{NetworkRequest{Outbound: &yes}, false},
		{NetworkRequest{MTU: &otherMTU}, false},
		{NetworkRequest{Persistent: &yes}, false},
	} {
		if _, same := tc.req.sameAs(existing); same != tc.same {
			t.Errorf("%+v joins %v, want %v", tc.req, same, tc.same)
		}
	}
}

func TestDefaultNetworkNamesAreReserved(t *testing.T) {
	for _, tc := range []struct {
		uid  uint32
		name string
		ok   bool
	}{
		{1000, "user-1000", true},
		{1000, "user-1001", false},
		{0, "user-0", true},
		{1000, "user-01000", false},
		{1000, "user-4294967296", false},
		{1000, "user-", true},
		{1000, "user-x", true},
		{1000, "users-1001", true},
		{1000, "lab", true},
	} {
		err := checkDefaultNetworkName(tc.uid, tc.name)
		if (err == nil) != tc.ok || err != nil && KindOf(err) != NotOwner {
			t.Errorf("uid %d creating %q: %v, want allowed=%v", tc.uid, tc.name, err, tc.ok)
		}
	}
}
