// Package neigh follows the IPv6 addresses guests use, as the host's
// neighbour table on their bridges learns them (NDP): the only place a
// SLAAC address a guest picked for itself shows up on the host.
package neigh

import (
	"cmp"
	"net/netip"
	"slices"
	"sync"
)

// MaxPerMAC bounds the addresses reported for one MAC: a guest that sends
// from thousands of made-up addresses is known by the first it used.
const MaxPerMAC = 16

// table is what the neighbour events said so far, for every link: each
// IPv6 address's MAC, with the order the addresses were first seen in.
type table struct {
	mu      sync.Mutex
	entries map[int]map[netip.Addr]entry // by link index, then address
	seq     uint64                       // orders first sightings
}

type entry struct {
	mac string
	seq uint64
}

func newTable() *table { return &table{entries: map[int]map[netip.Addr]entry{}} }

// set records addr as at mac on link (mac "" forgets it) and reports
// whether that changed anything.
func (t *table) set(link int, addr netip.Addr, mac string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	old, known := t.entries[link][addr]
	switch {
	case mac == "" && !known:
		return false
	case mac == "":
		delete(t.entries[link], addr)
		if len(t.entries[link]) == 0 {
			delete(t.entries, link)
		}
		return true
	case known && old.mac == mac:
		return false
	}
	if t.entries[link] == nil {
		t.entries[link] = map[netip.Addr]entry{}
	}
	t.seq++
	t.entries[link][addr] = entry{mac: mac, seq: t.seq}
	return true
}

// replace makes link's entries exactly present (a fresh dump), keeping
// the order of the addresses already known, and reports the links whose
// entries changed.
func (t *table) replace(present map[int]map[netip.Addr]string) []int {
	t.mu.Lock()
	defer t.mu.Unlock()
	var changed []int
	for link, old := range t.entries {
		if _, ok := present[link]; !ok && len(old) > 0 {
			delete(t.entries, link)
			changed = append(changed, link)
		}
	}
	for link, addrs := range present {
		old := t.entries[link]
		next := make(map[netip.Addr]entry, len(addrs))
		differs := len(old) != len(addrs)
		for addr, mac := range addrs {
			if e, ok := old[addr]; ok && e.mac == mac {
				next[addr] = e
				continue
			}
			differs = true
			t.seq++
			next[addr] = entry{mac: mac, seq: t.seq}
		}
		t.entries[link] = next
		if differs {
			changed = append(changed, link)
		}
	}
	return changed
}

// byMAC lists link's addresses for each MAC, at most MaxPerMAC of them,
// the earliest seen first.
func (t *table) byMAC(link int) map[string][]netip.Addr {
	t.mu.Lock()
	type seen struct {
		addr netip.Addr
		entry
	}
	var all []seen
	for addr, e := range t.entries[link] {
		all = append(all, seen{addr, e})
	}
	t.mu.Unlock()
	slices.SortFunc(all, func(a, b seen) int { return cmp.Compare(a.seq, b.seq) })
	out := map[string][]netip.Addr{}
	for _, s := range all {
		if len(out[s.mac]) < MaxPerMAC {
			out[s.mac] = append(out[s.mac], s.addr)
		}
	}
	return out
}
