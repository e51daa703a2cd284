package dnsmasq

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	macA = "52:54:00:00:00:0a"
	macB = "52:54:00:00:00:0b"
)

func TestTheFirstGuestKeepsItsName(t *testing.T) {
	var n Names
	got := n.Assign([]Lease{{MAC: macA, IP: "10.0.0.10", Hostname: "alpha"}})
	if got[macA] != "alpha" {
		t.Fatalf("first claim: %v", got)
	}
	// dnsmasq strips the name from A's lease when B asks for it.
	got = n.Assign([]Lease{{MAC: macA, IP: "10.0.0.10"}, {MAC: macB, IP: "10.0.0.11", Hostname: "Alpha"}})
	if got[macA] != "alpha" || got[macB] != "" {
		t.Errorf("second claim, in another case: %v, want alpha with A and nothing for B", got)
	}
	got = n.Assign([]Lease{{MAC: macA, IP: "10.0.0.10", Hostname: "beta"}, {MAC: macB, IP: "10.0.0.11", Hostname: "alpha"}})
	if got[macA] != "beta" || got[macB] != "alpha" {
		t.Errorf("A renamed itself: %v, want beta for A and alpha free for B", got)
	}
	got = n.Assign([]Lease{{MAC: macB, IP: "10.0.0.11", Hostname: "beta"}})
	if got[macB] != "beta" || len(got) != 1 {
		t.Errorf("A's lease gone: %v, want beta for B", got)
	}
}

func TestNamesFilesAndRestart(t *testing.T) {
	dir := t.TempDir()
	if err := makeDirs(Config{Dir: dir, DNS: true, Domain: "lab.netgrant.internal"}); err != nil {
		t.Fatal(err)
	}
	guests := []Named{
		{MAC: macA, Name: "alpha", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.10"), netip.MustParseAddr("fd00:1::10")}},
		{MAC: macB, Name: "nothing-yet"},
	}
	if err := WriteNames(dir, "lab.netgrant.internal", guests); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(NamesDir(dir), "alpha"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# " + macA + "\n10.0.0.10 alpha.lab.netgrant.internal alpha\nfd00:1::10 alpha.lab.netgrant.internal alpha\n"
	if string(data) != want {
		t.Errorf("alpha's file:\n%s\nwant:\n%s", data, want)
	}
	entries, _ := os.ReadDir(NamesDir(dir))
	if len(entries) != 1 {
		t.Errorf("files: %v, want alpha's only (no addresses, no file; no temporary left)", entries)
	}
	// A netgrantd started again knows who holds alpha.
	n := ReadNames(dir)
	if got := n.Assign([]Lease{{MAC: macA, IP: "10.0.0.10"}, {MAC: macB, IP: "10.0.0.11", Hostname: "alpha"}}); got[macA] != "alpha" {
		t.Errorf("after a restart: %v, want alpha still A's", got)
	}
	if err := WriteNames(dir, "lab.netgrant.internal", nil); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(NamesDir(dir)); len(entries) != 0 {
		t.Errorf("after every guest left: %v", entries)
	}
}

func TestDomainArgs(t *testing.T) {
	c := Config{DNS: true, Domain: "lab.netgrant.internal", LocalDomain: "netgrant.internal", Dir: "/run/netgrant/dnsmasq-ng-lab"}
	args := strings.Join(c.args(), " ")
	for _, want := range []string{"--domain=lab.netgrant.internal", "--local=/netgrant.internal/", "--hostsdir=/run/netgrant/dnsmasq-ng-lab/names"} {
		if !strings.Contains(args, want) {
			t.Errorf("args %q lack %q", args, want)
		}
	}
}
