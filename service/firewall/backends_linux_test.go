package firewall

import (
	"net/netip"
	"os/exec"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/nstest"
)

// backend is one Firewall implementation the shared tests run against.
type backend struct {
	name string
	new  func(testing.TB) Firewall
}

var backends = []backend{
	{"iptables", func(t testing.TB) Firewall { return newFirewall(t) }},
	{"nftables", func(t testing.TB) Firewall {
		t.Helper()
		fw, err := NewNFTables()
		if err != nil {
			t.Fatal(err)
		}
		return fw
	}},
}

// nftList is nft's listing of netgrant's table, "" when there is none.
func nftList(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", nftTable).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return ""
		}
		t.Fatalf("nft list table: %v: %s", err, out)
	}
	return string(out)
}

func nftRun(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command("nft", args...).CombinedOutput(); err != nil {
		t.Fatalf("nft %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newNFTables(t testing.TB) *NFTables {
	t.Helper()
	fw, err := NewNFTables()
	if err != nil {
		t.Fatal(err)
	}
	if err := fw.Apply(nil); err != nil {
		t.Fatal(err)
	}
	return fw
}

func TestNFTablesApplyBuildsOneTableAndRemovesIt(t *testing.T) {
	nstest.Require(t)
	baseline := clean(t)
	// A table of another tool's, which netgrant must leave alone.
	nftRun(t, "add", "table", "inet", "foreign")
	nftRun(t, "add", "chain", "inet", "foreign", "input", "{ type filter hook input priority 0; policy accept; }")
	nftRun(t, "add", "rule", "inet", "foreign", "input", "iifname", "eth9", "counter", "accept")
	t.Cleanup(func() { exec.Command("nft", "delete", "table", "inet", "foreign").Run() })
	foreign := func() string {
		out, _ := exec.Command("nft", "list", "table", "inet", "foreign").CombinedOutput()
		return string(out)
	}
	foreignBefore := foreign()

	fw := newNFTables(t)
	mustApply(t, fw, net0, hostOnly, net1)
	listed := nftList(t)
	for _, want := range []string{
		"chain input {\n\t\ttype filter hook input priority filter; policy accept;\n\t\tiifname \"ngbr0\" jump ngbr0-in",
		"oifname \"ngbr2\" jump ngbr2-to",
		"chain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;",
		"ip saddr 10.97.0.0/24 jump ngbr0-nat",
		"ip daddr 10.97.0.1 udp dport 53 accept",
		"ip daddr != 10.97.0.0/24 meta l4proto tcp masquerade to :1024-65535",
		"reject with icmp host-prohibited",
	} {
		if !strings.Contains(listed, want) {
			t.Errorf("nft list table ip netgrant lacks %q:\n%s", want, listed)
		}
	}
	if strings.Contains(listed, "ngbr2-nat") {
		t.Errorf("the host-only network has a nat chain:\n%s", listed)
	}
	// Every "to" jump precedes every "from" jump in forward.
	fwd := listed[strings.Index(listed, "chain forward"):]
	fwd = fwd[:strings.Index(fwd, "}")]
	if strings.LastIndex(fwd, "-to") > strings.Index(fwd, "-from") {
		t.Errorf("forward checks traffic out of a bridge before traffic into another:\n%s", fwd)
	}

	mustApply(t, fw, hostOnly, net1)
	if listed := nftList(t); strings.Contains(listed, "ngbr0") || !strings.Contains(listed, "ngbr1-in") {
		t.Errorf("after removing ngbr0:\n%s", listed)
	}
	mustApply(t, fw)
	if listed := nftList(t); listed != "" {
		t.Errorf("the table stays with no network:\n%s", listed)
	}
	if got := foreign(); got != foreignBefore {
		t.Errorf("the foreign table changed:\n%s\nwas:\n%s", got, foreignBefore)
	}
	if got := save(t); got != baseline {
		t.Errorf("iptables changed:\n%s\nwas:\n%s", got, baseline)
	}
}

func TestNFTablesApplyRestoresAFlushedTable(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newNFTables(t)
	mustApply(t, fw, net0, net1)
	want := nftList(t)
	for _, wipe := range [][]string{
		{"flush", "table", "ip", nftTable},
		{"delete", "table", "ip", nftTable},
		{"delete", "chain", "ip", nftTable, "ngbr1-from"},
		{"flush", "ruleset"},
	} {
		if wipe[1] == "chain" {
			nftRun(t, "flush", "chain", "ip", nftTable, "forward")
		}
		nftRun(t, wipe...)
		mustApply(t, fw, net0, net1)
		if got := nftList(t); got != want {
			t.Errorf("after nft %s and Apply:\n%s\nwant:\n%s", strings.Join(wipe, " "), got, want)
		}
	}
	mustApply(t, fw)
}

func TestNFTablesRejectsInvalidNetworks(t *testing.T) {
	nstest.Require(t)
	fw := newNFTables(t)
	for _, nets := range [][]Network{
		{{Bridge: "ngbr+", Subnet: net0.Subnet, Gateway: net0.Gateway}},
		{{Bridge: "ngbr0", Subnet: netip.MustParsePrefix("fd00::/64"), Gateway: netip.MustParseAddr("fd00::1")}},
		{net0, net0},
	} {
		if err := fw.Apply(nets); err == nil {
			t.Errorf("Apply(%v) succeeded", nets)
		}
	}
	if listed := nftList(t); listed != "" {
		t.Errorf("failed calls left a table:\n%s", listed)
	}
}

func BenchmarkNFTablesAddRemoveNetwork(b *testing.B) {
	nstest.Require(b)
	fw := newNFTables(b)
	b.Cleanup(func() { fw.Apply(nil) })
	mustApply(b, fw, net1)
	b.ResetTimer()
	for range b.N {
		mustApply(b, fw, net1, net0)
		mustApply(b, fw, net1)
	}
}
