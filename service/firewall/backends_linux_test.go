package firewall

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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

// forEachBackend runs test on each backend, on a clean firewall, and
// removes what it left.
func forEachBackend(t *testing.T, test func(*testing.T, Firewall)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			nstest.Require(t)
			clean(t)
			fw := b.new(t)
			t.Cleanup(func() { fw.Apply(nil) })
			test(t, fw)
		})
	}
}

// nftList is nft's listing of netgrant's IPv4 and IPv6 tables, "" when
// there are none.
func nftList(t testing.TB) string { return nftListTable(t, "ip") + nftListTable(t, "ip6") }

// nftListBridge is nft's listing of netgrant's bridge table.
func nftListBridge(t testing.TB) string { return nftListTable(t, "bridge") }

func nftListTable(t testing.TB, family string) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", family, nftTable).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No such file or directory") {
			return ""
		}
		t.Fatalf("nft list table %s: %v: %s", family, err, out)
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

func TestNFTablesRestorePutsBackAFlushedTable(t *testing.T) {
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
		if err := fw.Restore([]Network{net0, net1}); err != nil {
			t.Fatal(err)
		}
		if got := nftList(t); got != want {
			t.Errorf("after nft %s and Restore:\n%s\nwant:\n%s", strings.Join(wipe, " "), got, want)
		}
	}
	mustApply(t, fw)
}

// Networks come and go one by one; what that leaves must be what a
// rebuild makes, and a table someone removed is built again by Apply.
func TestNFTablesApplyChangesEqualRebuild(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newNFTables(t)
	t.Cleanup(func() { fw.Apply(nil) })
	changedNet1 := net1
	changedNet1.Outbound = false
	mustApply(t, fw, net0, net1)
	mustApply(t, fw, net0, hostOnly, changedNet1)
	mustApply(t, fw, hostOnly, changedNet1)
	changed := nftList(t)
	if err := fw.Restore([]Network{hostOnly, changedNet1}); err != nil {
		t.Fatal(err)
	}
	// Jumps added one by one may be listed in another order.
	if rebuilt := nftList(t); sortedLines(changed) != sortedLines(rebuilt) {
		t.Errorf("after changes:\n%s\nafter a rebuild:\n%s", changed, rebuilt)
	}
	if strings.Contains(changed, "ngbr0") || strings.Contains(changed, "ngbr1-nat") {
		t.Errorf("removed or changed networks left rules:\n%s", changed)
	}
	// nft(8) reads the mark by which a network's jumps are found again.
	if !strings.Contains(changed, `jump ngbr2-in comment "ngbr2"`) {
		t.Errorf("the jumps carry no comment naming their network:\n%s", changed)
	}
	nftRun(t, "delete", "table", "ip", nftTable)
	mustApply(t, fw, hostOnly, changedNet1, net0)
	if got := nftList(t); !strings.Contains(got, "ngbr0-in") || !strings.Contains(got, "ngbr2-in") {
		t.Errorf("Apply after the table was removed did not build it whole:\n%s", got)
	}
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

// A network full of guests is one transaction of thousands of rules; the
// kernel's replies to it must not overrun the socket (ENOBUFS).
func TestManyGuestsInOneTransaction(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fw Firewall) {
		big := Network{Bridge: "ngbr9", Subnet: netip.MustParsePrefix("10.97.8.0/22"), Gateway: netip.MustParseAddr("10.97.8.1"), Outbound: true}
		for i := 0; i < 500; i++ {
			big.Guests = append(big.Guests, Guest{
				Tap:  "ngtap" + strconv.Itoa(i),
				MAC:  net.HardwareAddr{0x52, 0x54, 0, 0, byte(i >> 8), byte(i)},
				IPv4: netip.AddrFrom4([4]byte{10, 97, byte(9 + i/250), byte(2 + i%250)}),
			})
		}
		if err := fw.Apply([]Network{big}); err != nil {
			t.Fatalf("applying a network of %d guests: %v", len(big.Guests), err)
		}
		out, err := exec.Command("nft", "list", "chain", "bridge", bridgeTable, "ngtap499-guest").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "52:54:00:00:01:f3") {
			t.Errorf("the last guest's chain: %v\n%s", err, out)
		}
		mustApply(t, fw)
	})
}

// UpdateGuests changes the bridge table guest by guest; what it leaves
// must be what a rebuild makes, and a table someone removed comes back.
func TestUpdateGuestsEqualsRebuild(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fw Firewall) {
		guest := func(i int, ip string) Guest {
			return Guest{Tap: "ngtap" + strconv.Itoa(i), MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, byte(i)}, IPv4: netip.MustParseAddr(ip)}
		}
		before, after := net0, net0
		before.Guests = []Guest{guest(1, "10.97.0.11"), guest(2, "10.97.0.12"), guest(3, "10.97.0.13")}
		after.Guests = []Guest{guest(1, "10.97.0.11"), guest(3, "10.97.0.23"), guest(4, "10.97.0.14")}
		mustApply(t, fw, before)
		if err := fw.UpdateGuests([]Network{after}); err != nil {
			t.Fatal(err)
		}
		updated := nftListBridge(t)
		mustApply(t, fw, after)
		// Chains are listed in the order they were made.
		if rebuilt := nftListBridge(t); sortedLines(updated) != sortedLines(rebuilt) {
			t.Errorf("after UpdateGuests:\n%s\nafter a rebuild:\n%s", updated, rebuilt)
		}
		if !strings.Contains(updated, "10.97.0.23") || strings.Contains(updated, "ngtap2") {
			t.Errorf("the update did not take:\n%s", updated)
		}

		// Restore, unlike UpdateGuests, trusts nothing: a guest's chain
		// someone emptied comes back.
		nftRun(t, "flush", "chain", "bridge", bridgeTable, "ngtap1-guest")
		if err := fw.Restore([]Network{after}); err != nil {
			t.Fatal(err)
		}
		if got := nftListBridge(t); sortedLines(got) != sortedLines(updated) {
			t.Errorf("after a flushed guest chain and Restore:\n%s\nwant:\n%s", got, updated)
		}

		nftRun(t, "delete", "table", "bridge", bridgeTable)
		if err := fw.UpdateGuests([]Network{before}); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(nftListBridge(t), "ngtap2-guest") {
			t.Errorf("after its table was removed, UpdateGuests did not build it again:\n%s", nftListBridge(t))
		}
		if err := fw.UpdateGuests([]Network{net0}); err != nil {
			t.Fatal(err)
		}
		if got := nftListBridge(t); got != "" {
			t.Errorf("without guests the bridge table stays:\n%s", got)
		}
	})
}

func sortedLines(s string) string {
	lines := strings.Split(s, "\n")
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

// After a switch of backend the other one's rules, which would still
// filter the bridges they name, are gone; foreign rules stay.
func TestRemoveLeftoversOfTheOtherBackend(t *testing.T) {
	nstest.Require(t)
	baseline := clean(t)
	ipt, nft := newFirewall(t), newNFTables(t)
	t.Cleanup(func() { ipt.Apply(nil); nft.Apply(nil) })
	withGuest := net0
	withGuest.Guests = []Guest{{Tap: "ngtap0", MAC: net.HardwareAddr{0x52, 0x54, 0, 0, 0, 1}, IPv4: netip.MustParseAddr("10.97.0.5")}}

	mustApply(t, ipt, withGuest)
	if err := RemoveLeftovers(nft); err != nil {
		t.Fatal(err)
	}
	if got := save(t); got != baseline {
		t.Errorf("iptables after switching to nftables:\n%s\nwant as before:\n%s", got, baseline)
	}
	// The guest stays filtered until the new backend restores its rules.
	if !strings.Contains(nftListBridge(t), "ngtap0-guest") {
		t.Errorf("switching to nftables dropped the guest's filter:\n%s", nftListBridge(t))
	}

	mustApply(t, nft, withGuest)
	if err := RemoveLeftovers(ipt); err != nil {
		t.Fatal(err)
	}
	if got := nftList(t); got != "" {
		t.Errorf("table ip netgrant after switching to iptables:\n%s", got)
	}
	if got := save(t); got != baseline {
		t.Errorf("switching to iptables changed iptables:\n%s", got)
	}
	if !strings.Contains(nftListBridge(t), "ngtap0-guest") {
		t.Errorf("switching to iptables dropped the guest's filter:\n%s", nftListBridge(t))
	}
}

// Only DOCKER-USER appearing in table ip or ip6 filter is news.
func TestWatchDockerSeesOnlyDockerUser(t *testing.T) {
	nstest.Require(t)
	clean(t)
	removeDockerUser(t)
	calls := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := WatchDocker(ctx, func() { calls <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	iptablesRun(t, "-N", "NOT-DOCKER")
	iptablesRun(t, "-t", "nat", "-N", "DOCKER-USER")
	iptablesRun(t, "-N", "DOCKER-USER")
	select {
	case <-calls:
	case <-time.After(30 * time.Second):
		t.Fatal("no word of DOCKER-USER being made")
	}
	// Events come in order: had another chain counted, its call came first.
	if n := len(calls); n != 0 {
		t.Errorf("%d calls besides the one for DOCKER-USER in table filter", n)
	}
	// Docker with ip6tables on makes its IPv6 twin.
	if out, err := exec.Command("ip6tables", "-N", "DOCKER-USER").CombinedOutput(); err != nil {
		t.Fatalf("ip6tables -N DOCKER-USER: %v: %s", err, out)
	}
	defer exec.Command("ip6tables", "-X", "DOCKER-USER").Run()
	select {
	case <-calls:
	case <-time.After(30 * time.Second):
		t.Fatal("no word of DOCKER-USER being made in ip6tables")
	}
	iptablesRun(t, "-t", "nat", "-X", "DOCKER-USER")
	iptablesRun(t, "-X", "NOT-DOCKER")
}
