// Package network_test checks NAT networks end to end: the real netgrantd,
// polkitd, iptables and dnsmasq, clients as test users, and a real guest.
package network_test

import (
	"net/netip"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) {
	guest.PrepareBeforeSandbox()
	harness.Main(m)
}

func TestCreateNetworkBuildsEverything(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	before := harness.FirewallRules(t)
	alice := env.Client(t, harness.UserAlice)
	path, info := mustCreateNetwork(t, alice, "lab", nil)

	if path != "/org/netgrant/NetGrant1/network/lab" {
		t.Fatalf("path %s", path)
	}
	want := map[string]any{
		"name": "lab", "bridge": "ng-lab", "subnet": "10.97.0.0/24", "gateway": "10.97.0.1",
		"dhcp_start": "10.97.0.2", "dhcp_end": "10.97.0.254", "dns": true, "outbound": true, "persistent": false,
		"domain": "lab.netgrant.internal",
	}
	for k, w := range want {
		if info[k].Value() != w {
			t.Errorf("info %s = %v, want %v", k, info[k].Value(), w)
		}
	}
	if len(info) != len(want)+2 {
		t.Errorf("info has keys %v, want exactly %d", info, len(want)+2)
	}
	// IPv6 by default: a ULA /64, the gateway its first address.
	subnet6, gateway6 := info["subnet6"].Value().(string), info["gateway6"].Value().(string)
	if !strings.HasPrefix(subnet6, "fd") || !strings.HasSuffix(subnet6, "::/64") || gateway6 != strings.TrimSuffix(subnet6, "/64")+"1" {
		t.Errorf("info subnet6 %q gateway6 %q, want a ULA /64 and its ::1", subnet6, gateway6)
	}

	// The bridge: gateway addresses, pinned MAC, no STP delay, no IPv6
	// but the fixed link-local address and the gateway's.
	if out := run(t, "ip", "-4", "-o", "addr", "show", "dev", "ng-lab"); !strings.Contains(out, "10.97.0.1/24") {
		t.Errorf("ng-lab lacks the gateway address: %s", out)
	}
	if sysfs(t, "ng-lab", "addr_assign_type") != "3" {
		t.Errorf("ng-lab's MAC is not pinned (addr_assign_type %s)", sysfs(t, "ng-lab", "addr_assign_type"))
	}
	if sysfs(t, "ng-lab", "bridge", "stp_state") != "0" || sysfs(t, "ng-lab", "bridge", "forward_delay") != "0" {
		t.Errorf("ng-lab STP %s forward delay %s, want 0 and 0", sysfs(t, "ng-lab", "bridge", "stp_state"), sysfs(t, "ng-lab", "bridge", "forward_delay"))
	}
	if out := run(t, "ip", "-6", "-o", "addr", "show", "dev", "ng-lab"); strings.Count(out, "inet6") != 2 ||
		!strings.Contains(out, gateway6+"/64") || !strings.Contains(out, "fe80::1/64") {
		t.Errorf("ng-lab's IPv6 addresses: %s, want %s/64 and fe80::1/64 only", out, gateway6)
	}
	for _, forwarding := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if b, _ := os.ReadFile(forwarding); strings.TrimSpace(string(b)) != "1" {
			t.Errorf("%s is off for an outbound network", forwarding)
		}
	}

	// Firewall: our chains, jumped to first, or our table.
	rules := harness.FirewallRules(t)
	wantRules := []string{"-A INPUT -j NETGRANT-INPUT", "-A FORWARD -j NETGRANT-FORWARD", "-A POSTROUTING -j NETGRANT-POSTROUTING", "--to-ports 1024-65535"}
	if harness.FirewallBackend() == "nftables" {
		wantRules = []string{`iifname "ng-lab" jump ng-lab-in`, `oifname "ng-lab" jump ng-lab-to`, "masquerade to :1024-65535"}
	}
	for _, w := range wantRules {
		if !strings.Contains(rules, w) {
			t.Errorf("the firewall lacks %q:\n%s", w, rules)
		}
	}

	// dnsmasq serves DNS on the gateway addresses only (and the bridge's
	// link-local address, which the firewall does not open for DNS).
	if pids := harness.ProcessesNamed("dnsmasq"); len(pids) != 1 {
		t.Fatalf("%d dnsmasq processes, want 1", len(pids))
	}
	for _, line := range strings.Split(run(t, "ss", "-Hlntu"), "\n") {
		if strings.Contains(line, ":53 ") && !strings.Contains(line, "10.97.0.1:53") &&
			!strings.Contains(line, "["+gateway6+"]:53") && !strings.Contains(line, "[fe80::1]%ng-lab:53") {
			t.Errorf("something listens on port 53 beyond the gateway: %s", line)
		}
	}
	if out := run(t, "ss", "-Hlnu"); !strings.Contains(out, "10.97.0.1:53") || !strings.Contains(out, "["+gateway6+"]:53") {
		t.Errorf("nothing serves DNS on the gateway addresses:\n%s", out)
	}

	for name, want := range map[string]any{
		"Name": "lab", "Bridge": "ng-lab", "Subnet": "10.97.0.0/24", "Gateway": "10.97.0.1", "DHCP": true,
		"Subnet6": subnet6, "Gateway6": gateway6,
		"DNS": true, "Outbound": true, "Persistent": false, "Owner": uint32(4001), "Holders": uint32(1),
	} {
		if got := env.Property(path, networkIface, name); got != want {
			t.Errorf("property %s = %v, want %v", name, got, want)
		}
	}
	var got dbus.ObjectPath
	if err := alice.Call("GetNetwork", "lab").Store(&got); err != nil || got != path {
		t.Errorf("GetNetwork(lab) = %s, %v", got, err)
	}
	if r := alice.Call("GetNetwork", "nope"); r.ErrorName != errPrefix+"NotFound" {
		t.Errorf("GetNetwork(nope) answered %q", r.ErrorName)
	}

	if r := callOn(alice, path, networkIface, "Release"); r.Err() != nil {
		t.Fatalf("Release: %v", r.Err())
	}
	assertNothingLeft(t, env, before)
}

func TestDisconnectOfLastHolderTearsDown(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	before := harness.FirewallRules(t)
	signals := env.WatchSignals(t)
	first := env.Client(t, harness.UserAlice)
	second := env.Client(t, harness.UserAlice)
	path, info := mustCreateNetwork(t, first, "shared", opts{"subnet": v("10.97.7.0/24")})

	// Joining with no options, or the same ones, gives the same network.
	joined, joinedInfo := mustCreateNetwork(t, second, "shared", opts{"subnet": v("10.97.7.0/24"), "dhcp": v(true)})
	if joined != path || joinedInfo["bridge"] != info["bridge"] {
		t.Fatalf("join gave %s %v, want %s", joined, joinedInfo, path)
	}
	if h := env.Property(path, networkIface, "Holders"); h != uint32(2) {
		t.Fatalf("Holders = %v after a join, want 2", h)
	}
	if _, _, err := second.CreateNATNetwork("shared", opts{"outbound": v(false)}); harness.ErrorName(err) != errPrefix+"Exists" {
		t.Errorf("join with a different option: %v, want Exists", err)
	}
	bob := env.Client(t, harness.UserBob)
	if _, _, err := bob.CreateNATNetwork("shared", nil); harness.ErrorName(err) != errPrefix+"Exists" {
		t.Errorf("another user joining: %v, want Exists", err)
	}

	first.Kill()
	harness.WaitFor(t, "the first holder's hold to drop", func() bool {
		return env.Property(path, networkIface, "Holders") == uint32(1)
	})
	if len(harness.Links(t, "ng-")) != 1 || len(harness.ProcessesNamed("dnsmasq")) != 1 {
		t.Fatal("the network did not outlive its first holder")
	}

	second.Kill()
	signals.Next(t, "org.freedesktop.DBus.ObjectManager.InterfacesRemoved", path)
	assertNothingLeft(t, env, before)
}

func TestReleaseAndDelete(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	before := harness.FirewallRules(t)
	alice := env.Client(t, harness.UserAlice)
	other := env.Client(t, harness.UserAlice)
	mallory := env.Client(t, harness.UserMallory)
	bob := env.Client(t, harness.UserBob)
	path, _ := mustCreateNetwork(t, alice, "lab", nil)

	if r := callOn(other, path, networkIface, "Release"); r.ErrorName != errPrefix+"NotFound" {
		t.Errorf("Release by a connection that holds nothing answered %q", r.ErrorName)
	}
	if r := callOn(mallory, path, networkIface, "Delete"); r.ErrorName != errPrefix+"NotOwner" {
		t.Errorf("Delete by ngmallory answered %q %q", r.ErrorName, r.ErrorMessage)
	}
	if r := callOn(bob, path, networkIface, "Delete"); r.ErrorName != errPrefix+"NotOwner" {
		t.Errorf("Delete by ngbob answered %q", r.ErrorName)
	}
	if len(harness.Links(t, "ng-")) != 1 {
		t.Fatal("a refused Delete took the network down")
	}
	// The owner may delete from any connection, holder or not.
	if r := callOn(other, path, networkIface, "Delete"); r.Err() != nil {
		t.Fatalf("owner's Delete: %v", r.Err())
	}
	assertNothingLeft(t, env, before)
}

func TestPersistentNetworkOutlivesItsCreator(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	before := harness.FirewallRules(t)
	alice := env.Client(t, harness.UserAlice)
	path, info := mustCreateNetwork(t, alice, "keep", opts{"persistent": v(true)})
	if info["persistent"].Value() != true {
		t.Fatalf("info persistent = %v", info["persistent"])
	}
	alice.Exit()
	harness.WaitFor(t, "the creator's hold to drop", func() bool {
		return env.Property(path, networkIface, "Holders") == uint32(0)
	})
	if len(harness.Links(t, "ng-")) != 1 || env.Property(path, networkIface, "Persistent") != true {
		t.Fatal("the persistent network went with its creator")
	}

	bob := env.Client(t, harness.UserBob)
	_, _, err := bob.CreateNATNetwork("bobs", opts{"persistent": v(true)})
	if harness.ErrorName(err) != "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" || !strings.Contains(err.Error(), "org.netgrant.persist") {
		t.Errorf("persistent network without org.netgrant.persist: %v", err)
	}
	if len(harness.Links(t, "ng-")) != 1 {
		t.Error("a refused persistent network was created")
	}

	again := env.Client(t, harness.UserAlice)
	if r := callOn(again, path, networkIface, "Delete"); r.Err() != nil {
		t.Fatal(r.Err())
	}
	assertNothingLeft(t, env, before)
}

func TestNetworkQuota(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Limits]\nNetworksPerUser=1\n"})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "one", nil)
	if _, _, err := alice.CreateNATNetwork("two", nil); harness.ErrorName(err) != errPrefix+"QuotaExceeded" {
		t.Fatalf("second network with NetworksPerUser=1: %v", err)
	}
	// Joining is not creating.
	mustCreateNetwork(t, env.Client(t, harness.UserAlice), "one", nil)
	if n := len(harness.Links(t, "ng-")); n != 1 {
		t.Fatalf("%d bridges, want 1", n)
	}
}

func TestSubnetsAreFreeAndChecked(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Networks]\nSubnetPool=10.98.0.0/16 10.30.0.0/16\n"})
	alice := env.Client(t, harness.UserAlice)
	run(t, "ip", "link", "add", "hostlan", "type", "bridge")
	t.Cleanup(func() { runQuietly("ip", "link", "del", "hostlan") })
	run(t, "ip", "addr", "add", "10.98.0.1/24", "dev", "hostlan")
	run(t, "ip", "link", "set", "hostlan", "up")
	run(t, "ip", "route", "add", "10.30.0.0/16", "dev", "hostlan")

	_, a := mustCreateNetwork(t, alice, "a", nil)
	if a["subnet"].Value() != "10.98.1.0/24" {
		t.Errorf("first default subnet %v, want 10.98.1.0/24 (10.98.0.0/24 is the host's)", a["subnet"].Value())
	}
	_, b := mustCreateNetwork(t, alice, "b", nil)
	if b["subnet"].Value() != "10.98.2.0/24" {
		t.Errorf("second default subnet %v, want 10.98.2.0/24", b["subnet"].Value())
	}
	for subnet, mention := range map[string]string{
		"10.98.1.0/25": `network "a"`,
		"10.98.0.0/24": "hostlan",
		// A network is named before the host's address on its bridge.
		"10.98.0.0/22":  `network "a"`,
		"10.30.4.0/24":  "route",
		"10.98.0.64/26": "10.98.0.1",
	} {
		_, _, err := alice.CreateNATNetwork("c", opts{"subnet": v(subnet)})
		if harness.ErrorName(err) != errPrefix+"SubnetConflict" || !strings.Contains(err.Error(), mention) {
			t.Errorf("subnet %s: %v, want SubnetConflict naming %s", subnet, err, mention)
		}
	}
	if n := len(harness.Links(t, "ng-")); n != 2 {
		t.Fatalf("%d bridges after refused calls, want 2", n)
	}
}

// ipv6 and subnet6: a network without IPv6 has none, anywhere; a /64 given
// is used, and taken only once; an MTU too small for IPv6 leaves it out
// unless it was asked for; joining compares IPv6 like any option.
func TestIPv6Options(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Networks]\nSubnetPool6=fd00:97::/32\n"})
	alice := env.Client(t, harness.UserAlice)
	path, info := mustCreateNetwork(t, alice, "v4only", opts{"ipv6": v(false)})
	bridge := info["bridge"].Value().(string)
	if info["subnet6"].Value() != "" || info["gateway6"].Value() != "" || env.Property(path, networkIface, "Subnet6") != "" {
		t.Errorf("a network with ipv6 false has IPv6: %v", info)
	}
	if out := run(t, "ip", "-6", "-o", "addr", "show", "dev", bridge); strings.TrimSpace(out) != "" {
		t.Errorf("%s of a network without IPv6 has IPv6 addresses: %s", bridge, out)
	}
	if _, _, err := alice.CreateNATNetwork("v4only", opts{"ipv6": v(true)}); harness.ErrorName(err) != errPrefix+"Exists" || !strings.Contains(err.Error(), "ipv6") {
		t.Errorf("joining without IPv6 asking for it: %v, want Exists naming ipv6", err)
	}

	_, info = mustCreateNetwork(t, alice, "given6", opts{"subnet6": v("fd00:97:5::/64")})
	if info["subnet6"].Value() != "fd00:97:5::/64" || info["gateway6"].Value() != "fd00:97:5::1" {
		t.Errorf("subnet6 given: info %v", info)
	}
	if _, _, err := alice.CreateNATNetwork("again6", opts{"subnet6": v("fd00:97:5::/64")}); harness.ErrorName(err) != errPrefix+"SubnetConflict" || !strings.Contains(err.Error(), "given6") {
		t.Errorf("a /64 taken twice: %v, want SubnetConflict naming given6", err)
	}
	for _, spelling := range []string{"fd00:97:5::/64", "FD00:0097:0005:0000::/64"} {
		if _, _, err := alice.CreateNATNetwork("given6", opts{"subnet6": v(spelling)}); err != nil {
			t.Errorf("joining with the same subnet6, spelled %s: %v", spelling, err)
		}
	}
	// A default /64 comes from the pool too.
	if _, info = mustCreateNetwork(t, alice, "derived6", nil); !netip.MustParsePrefix("fd00:97::/32").Contains(netip.MustParsePrefix(info["subnet6"].Value().(string)).Addr()) {
		t.Errorf("a derived /64 outside the pool: %v", info["subnet6"])
	}

	_, info = mustCreateNetwork(t, alice, "small", opts{"mtu": v(uint32(1000))})
	if info["subnet6"].Value() != "" {
		t.Errorf("a network of MTU 1000 has IPv6 %v", info["subnet6"])
	}
}

// subnet6 could be any /64 of fd00::/8, and what the host reaches through
// its default route did not count: an ordinary user claimed the /64 of a
// site resolver the host reaches that way, and his guest received the
// host's DNS queries. Now a subnet6 lies in the administrator's IPv6
// pools (by default the machine's own /48), and one holding a resolver's
// address or a route's gateway, the default route's included, is refused.
func TestSubnet6CannotCaptureHostTraffic(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Networks]\nSubnetPool6=fd00:97::/32 fd00:98::/32\n"})
	// The site: the host's LAN, its default route through fd00:98:1::1
	// (given on-link), and a resolver on the far side of it.
	up := harness.AddUpstream(t, harness.UpstreamOptions{Name: "site", HostAddr: "192.0.2.1/24", PeerAddr: "192.0.2.2/24"})
	run(t, "ip", "-6", "addr", "add", "fd00:97:1::5/64", "dev", up.Link, "nodad")
	run(t, "ip", "-6", "route", "add", "default", "via", "fd00:98:1::1", "dev", up.Link, "onlink")
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver fd00:97:53::53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount("/etc/resolv.conf", 0)

	alice := env.Client(t, harness.UserAlice)
	for subnet6, mention := range map[string]string{
		"fd00:97:53::/64": "resolver fd00:97:53::53",
		"fd00:98:1::/64":  "gateway fd00:98:1::1 of route default",
		"fd00:97:1::/64":  "address fd00:97:1::5/64",
	} {
		if _, _, err := alice.CreateNATNetwork("capture", opts{"subnet6": v(subnet6)}); harness.ErrorName(err) != errPrefix+"SubnetConflict" || !strings.Contains(err.Error(), mention) {
			t.Errorf("subnet6 %s: %v, want SubnetConflict naming %s", subnet6, err, mention)
		}
	}
	// Outside the pools: any other /64 of fd00::/8.
	if _, _, err := alice.CreateNATNetwork("capture", opts{"subnet6": v("fd12:3456:789a::/64")}); harness.ErrorName(err) != errPrefix+"InvalidArgument" || !strings.Contains(err.Error(), "pools") {
		t.Errorf("subnet6 outside the pools: %v, want InvalidArgument naming the pools", err)
	}
	if n := len(harness.Links(t, "ng-")); n != 0 {
		t.Errorf("%d bridges after the refused calls", n)
	}
	mustCreateNetwork(t, alice, "fine", opts{"subnet6": v("fd00:97:2::/64")})
}

// [Networks] IPv6=no: every network is IPv4 only, asking for IPv6 is
// refused, and host-wide IPv6 forwarding is never switched on.
func TestIPv6Off(t *testing.T) {
	forwarding := "/proc/sys/net/ipv6/conf/all/forwarding"
	if err := os.WriteFile(forwarding, []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Networks]\nIPv6=no\n"})
	alice := env.Client(t, harness.UserAlice)
	_, info := mustCreateNetwork(t, alice, "v4", nil)
	if info["subnet6"].Value() != "" {
		t.Errorf("a network has IPv6 %v with IPv6=no", info["subnet6"])
	}
	if out := run(t, "ip", "-6", "-o", "addr", "show", "dev", info["bridge"].Value().(string)); strings.TrimSpace(out) != "" {
		t.Errorf("the bridge has IPv6 with IPv6=no: %s", out)
	}
	for _, o := range []opts{{"ipv6": v(true)}, {"subnet6": v("fd00:97:5::/64")}} {
		if _, _, err := alice.CreateNATNetwork("v6", o); harness.ErrorName(err) != errPrefix+"Unsupported" || !strings.Contains(err.Error(), "IPv6=no") {
			t.Errorf("asking for IPv6 with %v: %v, want Unsupported naming IPv6=no", o, err)
		}
	}
	if got, err := os.ReadFile(forwarding); err != nil || strings.TrimSpace(string(got)) != "0" {
		t.Errorf("IPv6 forwarding is %q (%v) with IPv6=no", got, err)
	}
}

func TestBadInputCreatesNothing(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	before := harness.FirewallRules(t)
	alice := env.Client(t, harness.UserAlice)
	invalid := errPrefix + "InvalidArgument"
	for _, name := range []string{"my net", "a\nb", "-lead", "café", strings.Repeat("n", 33), "", "a/b", "_x"} {
		if _, _, err := alice.CreateNATNetwork(name, nil); harness.ErrorName(err) != invalid {
			t.Errorf("name %q: %v, want InvalidArgument", name, err)
		}
	}
	for _, tc := range []struct {
		o       opts
		want    string
		mention string
	}{
		{opts{"subnet": v("0.0.0.0/0")}, invalid, "subnet"},
		{opts{"subnet": v("10.0.0.0/8")}, invalid, "subnet"},
		{opts{"subnet": v("10.97.0.0/30")}, invalid, "subnet"},
		{opts{"subnet": v("198.51.100.0/24")}, invalid, "subnet"},
		{opts{"subnet": v("fd00::/64")}, invalid, "subnet"},
		{opts{"subnet": v("10.97.0.1/24")}, invalid, "subnet"},
		{opts{"subnet": v("lab")}, invalid, "subnet"},
		{opts{"subnet": v(uint32(24))}, invalid, "subnet"},
		{opts{"dhcp": v("yes")}, invalid, "dhcp"},
		{opts{"dns": v(uint32(1))}, invalid, "dns"},
		{opts{"outbound": v(int32(1))}, invalid, "outbound"},
		{opts{"mtu": v("1500")}, invalid, "mtu"},
		{opts{"mtu": v(uint32(67))}, invalid, "mtu"},
		{opts{"mtu": v(uint32(65536))}, invalid, "mtu"},
		{opts{"persistent": v(uint32(1))}, invalid, "persistent"},
		{opts{"bridge": v("br0")}, invalid, "bridge"},
		{opts{"ipv6": v("yes")}, invalid, "ipv6"},
		{opts{"subnet6": v("fd00::/48")}, invalid, "subnet6"},
		{opts{"subnet6": v("2001:db8::/64")}, invalid, "subnet6"},
		{opts{"subnet6": v("fd00::1/64")}, invalid, "subnet6"},
		{opts{"subnet6": v("10.97.0.0/24")}, invalid, "subnet6"},
		{opts{"subnet6": v("fd00:1::/64"), "ipv6": v(false)}, invalid, "subnet6"},
		{opts{"ipv6": v(true), "mtu": v(uint32(1000))}, invalid, "mtu"},
	} {
		if _, _, err := alice.CreateNATNetwork("bad", tc.o); harness.ErrorName(err) != tc.want || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("options %v: %v, want %s naming %s", tc.o, err, tc.want, tc.mention)
		}
	}
	mustCreateNetwork(t, alice, "good", opts{"subnet": v("10.97.9.0/24")})
	if _, _, err := alice.CreateNATNetwork("overlap", opts{"subnet": v("10.97.9.128/25")}); harness.ErrorName(err) != errPrefix+"SubnetConflict" {
		t.Errorf("overlapping subnet: %v, want SubnetConflict", err)
	}
	if links := harness.Links(t, "ng-"); len(links) != 1 {
		t.Errorf("bad calls left bridges: %v", links)
	}
	callOn(alice, "/org/netgrant/NetGrant1/network/good", networkIface, "Delete")
	assertNothingLeft(t, env, before)
}

func TestHostOnlyNetworkWithoutDHCPRunsNoDnsmasq(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	_, info := mustCreateNetwork(t, alice, "quiet", opts{"dhcp": v(false), "dns": v(false), "outbound": v(false)})
	if info["dhcp_start"].Value() != "" || info["dhcp_end"].Value() != "" || info["dns"].Value() != false {
		t.Errorf("info %v", info)
	}
	if pids := harness.ProcessesNamed("dnsmasq"); len(pids) != 0 {
		t.Errorf("dnsmasq runs for a network without DHCP and DNS: %v", pids)
	}
	if strings.Contains(strings.ToLower(harness.FirewallRules(t)), "masquerade") {
		t.Error("a host-only network masquerades")
	}
}

func TestMissingDnsmasqIsUnsupported(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if _, err := os.Stat(dir + "/dnsmasq"); err == nil {
			if err := unix.Mount("/dev/null", dir+"/dnsmasq", "", unix.MS_BIND, ""); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { unix.Unmount(dir+"/dnsmasq", 0) })
		}
	}
	_, _, err := alice.CreateNATNetwork("lab", nil)
	if harness.ErrorName(err) != errPrefix+"Unsupported" || !strings.Contains(err.Error(), "dnsmasq-base") {
		t.Fatalf("network without dnsmasq installed: %v, want Unsupported saying to install dnsmasq-base", err)
	}
	if len(harness.Links(t, "ng-")) != 0 {
		t.Fatal("an unsupported call left a bridge")
	}
	mustCreateNetwork(t, alice, "bare", opts{"dhcp": v(false), "dns": v(false)})
}

func runQuietly(name string, args ...string) { _ = osexec.Command(name, args...).Run() }

// Without iptables the iptables backend can make no NAT network, but taps
// still work.
func TestMissingIptablesIsUnsupported(t *testing.T) {
	harness.Require(t)
	path, err := osexec.LookPath("iptables")
	if err != nil {
		t.Fatal(err)
	}
	if path, err = filepath.EvalSymlinks(path); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("/dev/null", path, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(path, 0) })
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Firewall]\nBackend=iptables\n"})
	alice := env.Client(t, harness.UserAlice)
	_, _, err = alice.CreateNATNetwork("lab", nil)
	if harness.ErrorName(err) != errPrefix+"Unsupported" || !strings.Contains(err.Error(), "install the iptables package") {
		t.Fatalf("network without iptables installed: %v, want Unsupported saying to install iptables", err)
	}
	if len(harness.Links(t, "ng-")) != 0 {
		t.Fatal("an unsupported call left a bridge")
	}
	if _, _, _, err := alice.CreateTap(nil); err != nil {
		t.Fatalf("a tap without iptables installed: %v", err)
	}
}

// BenchmarkCreateNATNetwork measures a network's whole life as a user sees
// it: CreateNATNetwork (bridge, firewall, dnsmasq ready) and Release
// (everything torn down before the reply).
func BenchmarkCreateNATNetwork(b *testing.B) {
	env := harness.Start(b, harness.Options{Rules: rules})
	alice := env.Client(b, harness.UserAlice)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		path, _, err := alice.CreateNATNetwork("bench", nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := alice.Do(harness.Call{Path: path, Interface: networkIface, Method: "Release"}).Err(); err != nil {
			b.Fatal(err)
		}
	}
}
