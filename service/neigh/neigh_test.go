package neigh

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
)

func addr(i int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd00:1::%x", i)) }

func TestAddressesByMACInTheOrderFirstSeen(t *testing.T) {
	tb := newTable()
	tb.set(7, addr(3), "52:54:00:00:00:01")
	tb.set(7, addr(1), "52:54:00:00:00:01")
	tb.set(7, addr(2), "52:54:00:00:00:02")
	tb.set(8, addr(9), "52:54:00:00:00:01")
	got := tb.byMAC(7)
	if want := []netip.Addr{addr(3), addr(1)}; !slices.Equal(got["52:54:00:00:00:01"], want) {
		t.Errorf("MAC 1 on link 7: got %v, want %v", got["52:54:00:00:00:01"], want)
	}
	if want := []netip.Addr{addr(2)}; !slices.Equal(got["52:54:00:00:00:02"], want) {
		t.Errorf("MAC 2 on link 7: got %v, want %v", got["52:54:00:00:00:02"], want)
	}
	if tb.set(7, addr(3), "52:54:00:00:00:01") {
		t.Error("seeing an entry again reported a change")
	}
	if !tb.set(7, addr(3), "") || len(tb.byMAC(7)["52:54:00:00:00:01"]) != 1 {
		t.Errorf("a removed entry stays: %v", tb.byMAC(7))
	}
	if !tb.set(7, addr(1), "52:54:00:00:00:02") {
		t.Error("an address moving to another MAC reported no change")
	}
	if got := tb.byMAC(7); len(got["52:54:00:00:00:01"]) != 0 || len(got["52:54:00:00:00:02"]) != 2 {
		t.Errorf("after addr 1 moved to MAC 2: %v", got)
	}
}

// A guest that makes up addresses by the thousand is known by the first
// MaxPerMAC it used, and cannot push another guest's out.
func TestAddressesPerMACAreBounded(t *testing.T) {
	tb := newTable()
	tb.set(7, addr(0xffff), "52:54:00:00:00:02")
	for i := range 1000 {
		tb.set(7, addr(i), "52:54:00:00:00:01")
	}
	got := tb.byMAC(7)
	if len(got["52:54:00:00:00:01"]) != MaxPerMAC || got["52:54:00:00:00:01"][0] != addr(0) {
		t.Errorf("flooding MAC: got %d addresses starting %v, want the first %d", len(got["52:54:00:00:00:01"]), got["52:54:00:00:00:01"][0], MaxPerMAC)
	}
	if want := []netip.Addr{addr(0xffff)}; !slices.Equal(got["52:54:00:00:00:02"], want) {
		t.Errorf("the other guest: got %v, want %v", got["52:54:00:00:00:02"], want)
	}
}

func TestReplaceKeepsOrderAndReportsChangedLinks(t *testing.T) {
	tb := newTable()
	tb.set(7, addr(2), "52:54:00:00:00:01")
	tb.set(7, addr(1), "52:54:00:00:00:01")
	tb.set(8, addr(5), "52:54:00:00:00:03")
	changed := tb.replace(map[int]map[netip.Addr]string{
		7: {addr(1): "52:54:00:00:00:01", addr(2): "52:54:00:00:00:01"},
		9: {addr(6): "52:54:00:00:00:04"},
	})
	slices.Sort(changed)
	if want := []int{8, 9}; !slices.Equal(changed, want) {
		t.Errorf("changed links: got %v, want %v", changed, want)
	}
	if want := []netip.Addr{addr(2), addr(1)}; !slices.Equal(tb.byMAC(7)["52:54:00:00:00:01"], want) {
		t.Errorf("link 7 after the dump: got %v, want %v (the order first seen)", tb.byMAC(7)["52:54:00:00:00:01"], want)
	}
	if len(tb.byMAC(8)) != 0 {
		t.Errorf("link 8, absent from the dump, still has %v", tb.byMAC(8))
	}
}
