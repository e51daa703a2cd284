package firewall

import (
	"net/netip"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/nstest"
)

func TestMain(m *testing.M) { nstest.Main(m) }

var (
	net0 = Network{
		Bridge:   "ngbr0",
		Subnet:   netip.MustParsePrefix("10.97.0.0/24"),
		Gateway:  netip.MustParseAddr("10.97.0.1"),
		Outbound: true,
		Subnet6:  netip.MustParsePrefix("fd00:97::/64"),
		Gateway6: netip.MustParseAddr("fd00:97::1"),
		// As netgrant's bridges have it.
		GatewayLinkLocal6: netip.MustParseAddr("fe80::1"),
	}
	net1 = Network{
		Bridge:   "ngbr1",
		Subnet:   netip.MustParsePrefix("10.97.1.0/24"),
		Gateway:  netip.MustParseAddr("10.97.1.1"),
		Outbound: true,
	}
	hostOnly = Network{
		Bridge:            "ngbr2",
		Subnet:            netip.MustParsePrefix("10.97.2.0/28"),
		Gateway:           netip.MustParseAddr("10.97.2.1"),
		Subnet6:           netip.MustParsePrefix("fd00:97:2::/64"),
		Gateway6:          netip.MustParseAddr("fd00:97:2::1"),
		GatewayLinkLocal6: netip.MustParseAddr("fe80::1"),
	}
)

func iptablesRun(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("iptables", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

// save returns iptables-save's and ip6tables-save's output without
// comments and counters.
func save(t testing.TB) string {
	t.Helper()
	var out []byte
	for _, command := range iptablesCommands {
		saved, err := exec.Command(command + "-save").Output()
		if err != nil {
			t.Fatalf("%s-save: %v", command, err)
		}
		out = append(out, saved...)
	}
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.HasPrefix(line, "#") {
			lines = append(lines, counters.ReplaceAllString(line, ""))
		}
	}
	return strings.Join(lines, "\n")
}

// addForeignRules writes rules as other tools (Docker, an admin) would.
func addForeignRules(t testing.TB) {
	t.Helper()
	// As Docker leaves them.
	iptablesRun(t, "-P", "FORWARD", "DROP")
	iptablesRun(t, "-N", "DOCKER-USER")
	iptablesRun(t, "-A", "DOCKER-USER", "-j", "RETURN")
	iptablesRun(t, "-I", "FORWARD", "-j", "DOCKER-USER")
	iptablesRun(t, "-A", "INPUT", "-s", "198.51.100.7", "-j", "DROP")
	iptablesRun(t, "-N", "FOREIGN-FORWARD")
	iptablesRun(t, "-A", "FORWARD", "-j", "FOREIGN-FORWARD")
	iptablesRun(t, "-A", "FOREIGN-FORWARD", "-i", "eth9", "-m", "comment", "--comment", "not ours", "-j", "ACCEPT")
	iptablesRun(t, "-t", "nat", "-A", "POSTROUTING", "-o", "eth9", "-j", "MASQUERADE")
}

// removeDockerUser undoes what addForeignRules did as Docker.
func removeDockerUser(t testing.TB) {
	t.Helper()
	iptablesRun(t, "-D", "FORWARD", "-j", "DOCKER-USER")
	iptablesRun(t, "-F", "DOCKER-USER")
	iptablesRun(t, "-X", "DOCKER-USER")
}

// clean empties the tables of the test's namespace, adds foreign rules
// and returns the baseline everything of netgrant's must go back to.
func clean(t testing.TB) string {
	t.Helper()
	// A chain made and removed leaves its table with the built-in chains,
	// as netgrant's removed chains do: the baseline lists every table.
	for _, table := range []string{"filter", "nat"} {
		for _, command := range iptablesCommands {
			for _, args := range [][]string{{"-F"}, {"-X"}, {"-N", "NG-BASELINE"}, {"-X", "NG-BASELINE"}} {
				if out, err := exec.Command(command, append([]string{"-t", table}, args...)...).CombinedOutput(); err != nil {
					t.Fatalf("%s -t %s %v: %v: %s", command, table, args, err, out)
				}
			}
		}
	}
	iptablesRun(t, "-P", "FORWARD", "ACCEPT")
	addForeignRules(t)
	return save(t)
}

func newFirewall(t testing.TB) *IPTables {
	t.Helper()
	fw, err := NewIPTables()
	if err != nil {
		t.Fatal(err)
	}
	return fw
}

// lines returns `iptables -S` of one chain.
func lines(t testing.TB, table, chain string) []string {
	t.Helper()
	return strings.Split(strings.TrimSpace(iptablesRun(t, "-t", table, "-S", chain)), "\n")
}

func mustApply(t testing.TB, fw Firewall, nets ...Network) {
	t.Helper()
	if err := fw.Apply(nets); err != nil {
		t.Fatalf("applying %v: %v", nets, err)
	}
}

func TestApplyInstallsRules(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, net0)

	// What taps' own stacks send is dropped first of all; then netgrant's
	// rules come before anyone else's.
	for _, c := range []struct {
		table, builtin string
		jumps          []string
	}{
		{"filter", "INPUT", []string{"NETGRANT-TAPS-IN", "NETGRANT-INPUT"}},
		{"filter", "FORWARD", []string{"NETGRANT-TAPS-FWD", "NETGRANT-FORWARD"}},
		{"nat", "POSTROUTING", []string{"NETGRANT-POSTROUTING"}},
	} {
		got := lines(t, c.table, c.builtin)
		for i, jump := range c.jumps {
			if want := "-A " + c.builtin + " -j " + jump; len(got) < 2+i || got[1+i] != want {
				t.Errorf("%s starts with %q, want %q at %d", c.builtin, got, want, i+1)
			}
		}
	}
	all := save(t)
	for _, want := range []string{
		"-A INPUT -s 198.51.100.7/32 -j DROP",
		":FORWARD DROP ",
		"-A NETGRANT-INPUT -i ngbr0 -j NG-ngbr0-IN",
		"-A NETGRANT-FORWARD -o ngbr0 -j NG-ngbr0-TO",
		"-A NETGRANT-FORWARD -i ngbr0 -j NG-ngbr0-FROM",
		"-A NETGRANT-POSTROUTING -s 10.97.0.0/24 -j NG-ngbr0-NAT",
		"-A NG-ngbr0-IN -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A NG-ngbr0-IN -s 0.0.0.0/32 -d 255.255.255.255/32 -p udp -m udp --dport 67 -j ACCEPT",
		"-A NG-ngbr0-IN -s 10.97.0.0/24 -d 10.97.0.1/32 -p udp -m udp --dport 67 -j ACCEPT",
		"-A NG-ngbr0-IN -s 10.97.0.0/24 -d 10.97.0.1/32 -p udp -m udp --dport 53 -j ACCEPT",
		"-A NG-ngbr0-IN -s 10.97.0.0/24 -d 10.97.0.1/32 -p tcp -m tcp --dport 53 -j ACCEPT",
		"-A NG-ngbr0-IN -s 10.97.0.0/24 -d 10.97.0.1/32 -p icmp -j ACCEPT",
		"-A NG-ngbr0-IN -p tcp -j REJECT --reject-with tcp-reset",
		"-A NG-ngbr0-IN -j REJECT --reject-with icmp-host-prohibited",
		"-A NG-ngbr0-TO -d 10.97.0.0/24 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A NG-ngbr0-TO -i ngbr0 -j ACCEPT",
		"-A NG-ngbr0-TO -j REJECT --reject-with icmp-port-unreachable",
		"-A NG-ngbr0-FROM -s 10.97.0.0/24 -j ACCEPT",
		"-A NG-ngbr0-FROM -j REJECT --reject-with icmp-port-unreachable",
		"-A NG-ngbr0-NAT -d 224.0.0.0/24 -j RETURN",
		"-A NG-ngbr0-NAT -d 255.255.255.255/32 -j RETURN",
		"-A NG-ngbr0-NAT ! -d 10.97.0.0/24 -p tcp -j MASQUERADE --to-ports 1024-65535",
		"-A NG-ngbr0-NAT ! -d 10.97.0.0/24 -p udp -j MASQUERADE --to-ports 1024-65535",
		"-A NG-ngbr0-NAT ! -d 10.97.0.0/24 -j MASQUERADE",
	} {
		if !strings.Contains(all, want+"\n") {
			t.Errorf("iptables-save lacks %q:\n%s", want, all)
		}
	}
}

func TestHostOnlyNetworkNeitherForwardsOutNorMasquerades(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, hostOnly)

	if got, want := lines(t, "filter", "NG-ngbr2-FROM"), []string{
		"-N NG-ngbr2-FROM",
		"-A NG-ngbr2-FROM -j REJECT --reject-with icmp-port-unreachable",
	}; !slices.Equal(got, want) {
		t.Errorf("NG-ngbr2-FROM = %q, want %q", got, want)
	}
	// Only the rule that keeps the gateway's traffic from forwards.
	if nat := iptablesRun(t, "-t", "nat", "-S"); strings.Contains(nat, "NG-") || strings.Contains(nat, "-A NETGRANT-POSTROUTING") ||
		strings.Count(nat, "10.97.2.") != 1 || !strings.Contains(nat, "-A NETGRANT-PREROUTING -d 10.97.2.1/32 -j RETURN") {
		t.Errorf("host-only network has nat rules:\n%s", nat)
	}
	if in := lines(t, "filter", "NG-ngbr2-IN"); !slices.Contains(in, "-A NG-ngbr2-IN -s 10.97.2.0/28 -d 10.97.2.1/32 -p udp -m udp --dport 53 -j ACCEPT") {
		t.Errorf("host-only network does not let guests reach DNS: %q", in)
	}
}

func TestApplyRemoveRestoresBaseline(t *testing.T) {
	nstest.Require(t)
	baseline := clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, net0)
	mustApply(t, fw)
	if got := save(t); got != baseline {
		t.Fatalf("after removing the network:\n%s\nwant the baseline:\n%s", got, baseline)
	}
	mustApply(t, fw)
	if got := save(t); got != baseline {
		t.Fatalf("after removing it again:\n%s\nwant the baseline:\n%s", got, baseline)
	}
}

// ours returns the lines of iptables-save that mention bridge.
func ours(all, bridge string) []string {
	var mine []string
	for _, line := range strings.Split(all, "\n") {
		if strings.Contains(line, bridge) {
			mine = append(mine, line)
		}
	}
	return mine
}

func TestApplyRemoveOneNetworkKeepsTheOthers(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, net0, hostOnly, net1)

	// Each network's check on traffic into its bridge must come before
	// any network's accept of traffic out of its own.
	fwd := lines(t, "filter", "NETGRANT-FORWARD")[1:]
	lastTo, firstFrom := -1, len(fwd)
	for i, l := range fwd {
		if strings.Contains(l, " -o ") {
			lastTo = i
		} else if firstFrom == len(fwd) {
			firstFrom = i
		}
	}
	if len(fwd) != 6 || lastTo > firstFrom {
		t.Fatalf("NETGRANT-FORWARD = %q, want the 3 -o jumps before the 3 -i jumps", fwd)
	}

	before := save(t)
	mustApply(t, fw, hostOnly, net1)
	after := save(t)
	if left := ours(after, "ngbr0"); len(left) > 0 {
		t.Errorf("removed network left %q", left)
	}
	for _, bridge := range []string{"ngbr1", "ngbr2"} {
		if got, want := ours(after, bridge), ours(before, bridge); !slices.Equal(got, want) {
			t.Errorf("%s after removing ngbr0:\n%q\nwant\n%q", bridge, got, want)
		}
	}
	if !strings.Contains(after, "-A FORWARD -j NETGRANT-FORWARD\n") {
		t.Errorf("top-level jump gone while networks remain:\n%s", after)
	}
}

func TestApplyRestoresFlushedRules(t *testing.T) {
	for _, tc := range []struct {
		name string
		wipe [][]string
	}{
		{"flush", [][]string{{"-F"}, {"-t", "nat", "-F"}}},
		{"flush and delete chains", [][]string{{"-F"}, {"-X"}, {"-t", "nat", "-F"}, {"-t", "nat", "-X"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nstest.Require(t)
			clean(t)
			fw := newFirewall(t)
			mustApply(t, fw, net0, hostOnly)
			want := save(t)

			for _, args := range tc.wipe {
				iptablesRun(t, args...)
			}
			if tc.name == "flush" {
				iptablesRun(t, "-X", "FOREIGN-FORWARD")
				iptablesRun(t, "-X", "DOCKER-USER")
			}
			// The other tools re-create their rules too, after ours.
			addForeignRules(t)
			if err := fw.Apply([]Network{net0, hostOnly}); err != nil {
				t.Fatal(err)
			}
			if got := save(t); got != want {
				t.Fatalf("after Apply:\n%s\nwant as before the wipe:\n%s", got, want)
			}
		})
	}
}

func TestApplyRepairsTamperedChains(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, net0, net1)
	want := save(t)

	// Out of order: ngbr1's check on traffic into its bridge now comes
	// after ngbr0's accept of its guests' outbound traffic.
	iptablesRun(t, "-D", "NETGRANT-FORWARD", "-o", "ngbr1", "-j", "NG-ngbr1-TO")
	iptablesRun(t, "-A", "NETGRANT-FORWARD", "-o", "ngbr1", "-j", "NG-ngbr1-TO")
	if err := fw.Apply([]Network{net0, net1}); err != nil {
		t.Fatal(err)
	}
	fwd := lines(t, "filter", "NETGRANT-FORWARD")
	if !strings.Contains(fwd[1], " -o ") || !strings.Contains(fwd[2], " -o ") {
		t.Errorf("NETGRANT-FORWARD after Apply = %q, want -o jumps first", fwd)
	}

	iptablesRun(t, "-I", "NETGRANT-FORWARD", "-j", "ACCEPT")
	iptablesRun(t, "-D", "NETGRANT-INPUT", "-i", "ngbr0", "-j", "NG-ngbr0-IN")
	iptablesRun(t, "-I", "NG-ngbr0-IN", "-j", "ACCEPT")
	iptablesRun(t, "-t", "nat", "-D", "NG-ngbr1-NAT", "-d", "224.0.0.0/24", "-j", "RETURN")
	iptablesRun(t, "-D", "INPUT", "-j", "NETGRANT-INPUT")
	if err := fw.Apply([]Network{net0, net1}); err != nil {
		t.Fatal(err)
	}
	got := save(t)
	if got != want {
		// The order of jumps within their group may differ from the first Apply's.
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("after Apply:\n%s\nwant:\n%s", got, want)
		}
	}
}

func sorted(s string) []string {
	l := strings.Split(s, "\n")
	slices.Sort(l)
	return l
}

func TestApplyRemovesStaleNetworks(t *testing.T) {
	nstest.Require(t)
	baseline := clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, net1)
	want := save(t)

	clean(t)
	mustApply(t, fw, net0, net1, hostOnly)
	if err := fw.Apply([]Network{net1}); err != nil {
		t.Fatal(err)
	}
	if got := save(t); got != want {
		t.Fatalf("after Apply with ngbr1 alone:\n%s\nwant:\n%s", got, want)
	}
	if err := fw.Apply(nil); err != nil {
		t.Fatal(err)
	}
	if got := save(t); got != baseline {
		t.Fatalf("after Apply with no networks:\n%s\nwant the baseline:\n%s", got, baseline)
	}
}

func TestApplyTakesOverLeftovers(t *testing.T) {
	nstest.Require(t)
	clean(t)
	fw := newFirewall(t)
	mustApply(t, fw, net0)
	want := save(t)

	// As if the removal of an earlier network on ngbr0 had failed halfway.
	iptablesRun(t, "-D", "NETGRANT-INPUT", "-i", "ngbr0", "-j", "NG-ngbr0-IN")
	iptablesRun(t, "-F", "NG-ngbr0-IN")
	iptablesRun(t, "-X", "NG-ngbr0-IN")
	iptablesRun(t, "-A", "NG-ngbr0-TO", "-j", "ACCEPT")
	mustApply(t, fw, net0)
	if got := save(t); got != want {
		t.Fatalf("after Apply over leftovers:\n%s\nwant:\n%s", got, want)
	}
}

func TestApplyRejectsInvalidNetworks(t *testing.T) {
	nstest.Require(t)
	baseline := clean(t)
	fw := newFirewall(t)
	for _, n := range []Network{
		{Bridge: "ngbr0123456789012", Subnet: net0.Subnet, Gateway: net0.Gateway},
		{Bridge: "ngbr+", Subnet: net0.Subnet, Gateway: net0.Gateway},
		{Bridge: "ng br", Subnet: net0.Subnet, Gateway: net0.Gateway},
		{Bridge: "ngbr0", Subnet: netip.MustParsePrefix("fd00::/64"), Gateway: netip.MustParseAddr("fd00::1")},
		{Bridge: "ngbr0", Subnet: net0.Subnet, Gateway: netip.MustParseAddr("10.98.0.1")},
		{Bridge: "ngbr0", Subnet: netip.MustParsePrefix("0.0.0.0/0"), Gateway: net0.Gateway},
	} {
		if err := fw.Apply([]Network{n}); err == nil {
			t.Errorf("Apply(%+v) succeeded", n)
		}
	}
	if err := fw.Apply([]Network{net0, net0}); err == nil {
		t.Error("Apply with a bridge listed twice succeeded")
	}
	if got := save(t); got != baseline {
		t.Fatalf("after failed calls:\n%s\nwant the baseline:\n%s", got, baseline)
	}
}

func BenchmarkAddRemoveNetwork(b *testing.B) {
	nstest.Require(b)
	clean(b)
	fw := newFirewall(b)
	mustApply(b, fw, net1) // the usual case: other networks exist
	b.ResetTimer()
	for range b.N {
		mustApply(b, fw, net1, net0)
		mustApply(b, fw, net1)
	}
}

func BenchmarkApplyIntact(b *testing.B) {
	nstest.Require(b)
	clean(b)
	fw := newFirewall(b)
	nets := []Network{net0, net1, hostOnly}
	mustApply(b, fw, nets...)
	b.ResetTimer()
	for range b.N {
		if err := fw.Apply(nets); err != nil {
			b.Fatal(err)
		}
	}
}
