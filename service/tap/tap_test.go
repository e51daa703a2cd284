package tap

import (
	"bytes"
	"net"
	"testing"
)

func TestIsTapName(t *testing.T) {
	for name, want := range map[string]bool{
		"ngtap0":           true,
		"ngtap17":          true,
		"ngtap1234567890":  true,
		"ngtap":            false,
		"ngtap01":          false,
		"ngtap-1":          false,
		"ngtap1a":          false,
		"ngtap12345678901": false, // longer than IFNAMSIZ allows
		"tap0":             false,
		"eth0":             false,
		"xngtap0":          false,
	} {
		if got := IsTapName(name); got != want {
			t.Errorf("IsTapName(%q) = %v, want %v", name, got, want)
		}
	}
	if !IsTapName(tapName(42)) {
		t.Errorf("IsTapName rejects generated name %q", tapName(42))
	}
}

func TestGuestMAC(t *testing.T) {
	const draws = 1000
	seen := map[string]bool{}
	for range draws {
		mac := GuestMAC()
		if len(mac) != 6 || !bytes.Equal(mac[:3], []byte{0x52, 0x54, 0x00}) {
			t.Fatalf("GuestMAC() = %s, want 52:54:00:xx:xx:xx", mac)
		}
		if mac[0]&1 != 0 {
			t.Fatalf("GuestMAC() = %s is multicast", mac)
		}
		if mac[3]|mac[4]|mac[5] == 0 {
			t.Fatalf("GuestMAC() = %s has an all-zero tail", mac)
		}
		seen[mac.String()] = true
	}
	// 24 random bits make a handful of collisions in 1000 draws unlikely
	// and more than ten practically impossible.
	if len(seen) < draws-10 {
		t.Fatalf("GuestMAC gave only %d distinct addresses in %d draws", len(seen), draws)
	}
}

func TestLinkMAC(t *testing.T) {
	guest := net.HardwareAddr{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}
	link := LinkMAC(guest)
	if want := "fe:54:00:ab:cd:ef"; link.String() != want {
		t.Fatalf("LinkMAC(%s) = %s, want %s", guest, link, want)
	}
	if guest[0] != 0x52 {
		t.Fatalf("LinkMAC changed the guest MAC to %s", guest)
	}
}
