package bridge

import (
	"bytes"
	"testing"
)

func TestMACFor(t *testing.T) {
	mac := MACFor("lab")
	if len(mac) != 6 {
		t.Fatalf("MACFor(lab) = %v, want 6 bytes", mac)
	}
	if mac[0]&0x01 != 0 || mac[0]&0x02 == 0 {
		t.Errorf("MACFor(lab) = %v, want a locally administered unicast address", mac)
	}
	if again := MACFor("lab"); !bytes.Equal(again, mac) {
		t.Errorf("MACFor(lab) changed from %v to %v", mac, again)
	}
	if other := MACFor("lab2"); bytes.Equal(other, mac) {
		t.Errorf("MACFor(lab2) = MACFor(lab) = %v", mac)
	}
}

func TestIsBridgeName(t *testing.T) {
	tests := map[string]bool{
		"ngbr0":            true,
		"ngbr7":            true,
		"ngbr42":           true,
		"ngbr12345678901":  true, // 15 bytes, IFNAMSIZ-1
		"ngbr123456789012": false,
		"ngbr":             false,
		"ngbr01":           false,
		"ngbr-1":           false,
		"ngbr+1":           false,
		"ngbr1a":           false,
		"ngtap0":           false,
		"br0":              false,
		"NGBR0":            false,
	}
	for name, want := range tests {
		if got := IsBridgeName(name); got != want {
			t.Errorf("IsBridgeName(%q) = %v, want %v", name, got, want)
		}
	}
}
