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
		"ng-lab":           true,
		"ng-user-1000":     true,
		"ng-a_b-C9":        true,
		"ng-thirtee-3adc":  true, // 15 bytes, IFNAMSIZ-1
		"ng-thirteen-char": false,
		"ng-":              false,
		"ng-a.b":           false,
		"ng-a+b":           false,
		"ng-a b":           false,
		// Earlier versions' names, which their journals may still hold.
		"ngbr0":            true,
		"ngbr42":           true,
		"ngbr12345678901":  true,
		"ngbr123456789012": false,
		"ngbr":             false,
		"ngbr01":           false,
		"ngbr-1":           false,
		"ngbr1a":           false,
		"ngtap0":           false,
		"br0":              false,
		"NG-lab":           false,
	}
	for name, want := range tests {
		if got := IsBridgeName(name); got != want {
			t.Errorf("IsBridgeName(%q) = %v, want %v", name, got, want)
		}
	}
}
