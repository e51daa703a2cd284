package firewall

import (
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the generated rules")

// golden compares got with testdata/name, as Tailscale's runner tests
// compare generated rules with fakes: a rule changes only where a golden
// file changes with it.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -run %s -update writes it)", err, t.Name())
	}
	if got != string(want) {
		t.Errorf("generated rules differ from %s (-update rewrites it):\n%s", path, got)
	}
}

var goldenNets = []Network{withHostServices(net0), hostOnly, withForwards(net1)}

// withHostServices gives n the administrator's ssh and tftp.
func withHostServices(n Network) Network {
	n.HostServices = []Service{{Proto: "tcp", Port: 22}, {Proto: "udp", Port: 69}}
	return n
}

func withForwards(n Network) Network {
	n.Forwards = []Forward{
		{Proto: "tcp", HostPort: 8080, Guest: netip.MustParseAddr("10.97.1.5"), GuestPort: 80},
		{Proto: "udp", HostPort: 5353, Address: netip.MustParseAddr("198.51.100.1"), Guest: netip.MustParseAddr("10.97.1.5"), GuestPort: 53},
	}
	return n
}

func TestIPTablesRulesGolden(t *testing.T) {
	var script strings.Builder
	for _, fam := range families {
		fmt.Fprintf(&script, "# %s-restore --noflush\n%s", iptablesCommands[fam], restoreScript(ruleset{}, wantedChains(fam, goldenNets)))
	}
	golden(t, "iptables.golden", script.String())
}

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func TestGuestsAreValidated(t *testing.T) {
	for _, g := range []Guest{
		{Tap: "ngtap0+", MAC: mustMAC("52:54:00:12:34:56")},
		{Tap: "ngtap0", MAC: mustMAC("53:54:00:12:34:56")},
		{Tap: "ngtap0", MAC: mustMAC("52:54:00:12:34:56"), IPv4: net0.Gateway},
		{Tap: "ngtap0", MAC: mustMAC("52:54:00:12:34:56"), IPv4: netip.MustParseAddr("10.97.1.5")},
	} {
		n := net0
		n.Guests = []Guest{g}
		if err := validateAll([]Network{n}); err == nil {
			t.Errorf("guest %+v accepted", g)
		}
	}
	a, b := net0, net1
	a.Guests = []Guest{{Tap: "ngtap0", MAC: mustMAC("52:54:00:12:34:56")}}
	b.Guests = a.Guests
	if err := validateAll([]Network{a, b}); err == nil {
		t.Error("one tap on two networks accepted")
	}
}

func mustMAC(s string) net.HardwareAddr {
	mac, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return mac
}

func TestRestoreScriptTouchesOnlyWhatDiffers(t *testing.T) {
	// As the kernel holds net0's and net1's rules beside Docker's chain.
	installed := wantedChains(ipv4, []Network{net0, net1})
	installed["filter"]["INPUT"] = []string{"-j NETGRANT-TAPS-IN", "-j NETGRANT-INPUT"}
	installed["filter"]["FORWARD"] = []string{"-j NETGRANT-TAPS-FWD", "-j NETGRANT-FORWARD", "-j DOCKER-USER"}
	installed["filter"]["DOCKER-USER"] = []string{"-j RETURN"}
	installed["nat"]["POSTROUTING"] = []string{"-j NETGRANT-POSTROUTING"}
	installed["nat"]["PREROUTING"] = []string{"-j NETGRANT-PREROUTING"}
	installed["nat"]["OUTPUT"] = []string{"-j NETGRANT-OUTPUT"}
	if script := restoreScript(installed, wantedChains(ipv4, []Network{net0, net1})); script != "" {
		t.Errorf("rules as wanted still give a script:\n%s", script)
	}
	script := restoreScript(installed, wantedChains(ipv4, []Network{net1}))
	for _, want := range []string{":NG-ngbr0-IN - [0:0]", "-X NG-ngbr0-IN", ":NETGRANT-FORWARD - [0:0]", "-X NG-ngbr0-NAT"} {
		if !strings.Contains(script, want+"\n") {
			t.Errorf("removing ngbr0: script lacks %q:\n%s", want, script)
		}
	}
	if strings.Contains(script, ":NG-ngbr1") || strings.Contains(script, "DOCKER-USER") {
		t.Errorf("removing ngbr0 touches what stays or is not netgrant's:\n%s", script)
	}

	// A jump from a built-in chain counted twice (by another tool's
	// restore, say) is deleted down to one.
	doubled := parseSave("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -j NETGRANT-INPUT\n-A INPUT -j NETGRANT-INPUT\n")
	if script := restoreScript(doubled, wantedChains(ipv4, []Network{net0})); !strings.Contains(script, "-D INPUT -j NETGRANT-INPUT\n") ||
		strings.Contains(script, "-I INPUT 1 -j NETGRANT-INPUT") {
		t.Errorf("a doubled jump is not cut back to one:\n%s", script)
	}
}

// The batch google/nftables builds for a masquerade to ports leaves out
// the flag the kernel needs; masqPortsFix adds it and nothing else.
func TestMasqPortsFixAddsTheRangeFlag(t *testing.T) {
	var sent []netlink.Message
	conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		sent = append(sent, req...)
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	table := conn.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable})
	chain := conn.AddChain(&nftables.Chain{Table: table, Name: "c"})
	conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: nftVerdict("b", rule{verdict: masquerade, toPorts: true})})
	conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: nftVerdict("b", rule{verdict: masquerade})})
	conn.Flush()
	var rules []netlink.Message
	for _, m := range sent {
		if m.Header.Type == newRuleMsg {
			rules = append(rules, m)
		}
	}
	if len(rules) != 2 {
		t.Fatalf("captured %d rules, want 2", len(rules))
	}
	plain := string(rules[1].Data)
	masqPortsFix(rules)
	flag := string([]byte{8, 0, unix.NFTA_MASQ_FLAGS, 0, 0, 0, 0, unix.NF_NAT_RANGE_PROTO_SPECIFIED})
	if !strings.Contains(string(rules[0].Data), flag) || rules[0].Header.Length != 0 {
		t.Errorf("the masquerade to ports lacks NF_NAT_RANGE_PROTO_SPECIFIED or keeps its old length: %x", rules[0].Data)
	}
	if string(rules[1].Data) != plain {
		t.Errorf("the plain masquerade changed")
	}
}

func TestForwardsAreValidated(t *testing.T) {
	guest := netip.MustParseAddr("10.97.0.5")
	for _, tc := range []struct {
		net Network
		f   Forward
	}{
		{hostOnly, Forward{Proto: "tcp", HostPort: 80, Guest: netip.MustParseAddr("10.97.2.5"), GuestPort: 80}},
		{net0, Forward{Proto: "sctp", HostPort: 80, Guest: guest, GuestPort: 80}},
		{net0, Forward{Proto: "tcp", HostPort: 0, Guest: guest, GuestPort: 80}},
		{net0, Forward{Proto: "tcp", HostPort: 80, Guest: guest, GuestPort: 0}},
		{net0, Forward{Proto: "tcp", HostPort: 80, Guest: net0.Gateway, GuestPort: 80}},
		{net0, Forward{Proto: "tcp", HostPort: 80, Guest: netip.MustParseAddr("10.97.1.5"), GuestPort: 80}},
		{net0, Forward{Proto: "tcp", HostPort: 80, Address: netip.MustParseAddr("2001:db8::1"), Guest: guest, GuestPort: 80}},
	} {
		n := tc.net
		n.Forwards = []Forward{tc.f}
		if err := validateAll([]Network{n}); err == nil {
			t.Errorf("forward %+v on %s accepted", tc.f, n.Bridge)
		}
	}
}

func TestIPv6IsValidated(t *testing.T) {
	for _, change := range []func(*Network){
		func(n *Network) { n.GatewayLinkLocal6 = netip.Addr{} },
		func(n *Network) { n.GatewayLinkLocal6 = n.Gateway6 },
		func(n *Network) { n.Gateway6 = netip.MustParseAddr("fd00:98::1") },
		func(n *Network) { n.Subnet6 = netip.MustParsePrefix("fd00:97::/48") },
	} {
		n := net0
		change(&n)
		if err := validateAll([]Network{n}); err == nil {
			t.Errorf("IPv6 %s, gateway %s, link-local %s accepted", n.Subnet6, n.Gateway6, n.GatewayLinkLocal6)
		}
	}
}
