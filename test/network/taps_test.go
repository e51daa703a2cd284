package network_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

func TestTapsOnANetwork(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	netPath, info := mustCreateNetwork(t, alice, "lab", opts{"mtu": v(uint32(1400))})
	br := info["bridge"].Value().(string)

	tapPath, fds, tapInfo, err := alice.CreateTap(opts{"network": v("lab")})
	if err != nil {
		t.Fatal(err)
	}
	ifname := tapInfo["ifname"].Value().(string)
	if tapInfo["network"].Value() != "lab" || tapInfo["bridge"].Value() != br || tapInfo["mtu"].Value() != uint32(1400) {
		t.Errorf("tap info %v, want network lab on %s with the bridge's MTU 1400", tapInfo, br)
	}
	if master(ifname) != br || sysfs(t, ifname, "mtu") != "1400" {
		t.Errorf("%s: master %q MTU %s, want %s and 1400", ifname, master(ifname), sysfs(t, ifname, "mtu"), br)
	}
	if got := env.Property(tapPath, tapIface, "Network"); got != netPath {
		t.Errorf("Tap.Network = %v, want %s", got, netPath)
	}
	if got := env.Property(netPath, networkIface, "Taps"); len(got.([]dbus.ObjectPath)) != 1 || got.([]dbus.ObjectPath)[0] != tapPath {
		t.Errorf("Network.Taps = %v, want [%s]", got, tapPath)
	}

	// A tap given "mtu" keeps it; naming the bridge is naming the network.
	_, _, second, err := alice.CreateTap(opts{"bridge": v(br), "mtu": v(uint32(1300))})
	if err != nil {
		t.Fatal(err)
	}
	if second["network"].Value() != "lab" || sysfs(t, second["ifname"].Value().(string), "mtu") != "1300" {
		t.Errorf("tap on the network's bridge with mtu 1300: %v", second)
	}
	if sysfs(t, br, "mtu") != "1400" {
		t.Errorf("a port's smaller MTU changed the bridge's to %s", sysfs(t, br, "mtu"))
	}

	// Another user's network needs manage; without it, it is not theirs.
	mallory := env.Client(t, harness.UserMallory)
	if _, _, _, err := mallory.CreateTap(opts{"network": v("lab")}); harness.ErrorName(err) != errPrefix+"NotOwner" {
		t.Errorf("ngmallory on ngalice's network: %v", err)
	}
	if _, _, _, err := mallory.CreateTap(nil); harness.ErrorName(err) != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Errorf("ngmallory's own tap after a polkit no: %v", err)
	}
	bob := env.Client(t, harness.UserBob)
	if _, _, _, err := bob.CreateTap(opts{"network": v("lab")}); harness.ErrorName(err) != errPrefix+"NotOwner" {
		t.Errorf("ngbob on ngalice's network without manage: %v", err)
	}
	if _, _, _, err := alice.CreateTap(opts{"network": v("nope")}); harness.ErrorName(err) != errPrefix+"NotFound" {
		t.Errorf("tap on a missing network: %v", err)
	}
	if n := len(harness.Links(t, "ngtap")); n != 2 {
		t.Errorf("%d taps after refused calls, want 2", n)
	}

	// When the network goes, its taps stay, detached, fds still working.
	signals := env.WatchSignals(t)
	if r := callOn(alice, netPath, networkIface, "Release"); r.Err() != nil {
		t.Fatal(r.Err())
	}
	signals.Next(t, "org.freedesktop.DBus.Properties.PropertiesChanged", tapPath)
	harness.WaitFor(t, "the network to go", func() bool { return len(harness.Links(t, "ng-")) == 0 })
	if master(ifname) != "" || len(harness.Links(t, ifname)) != 1 {
		t.Errorf("%s after its network went: master %q", ifname, master(ifname))
	}
	if got := env.Property(tapPath, tapIface, "Network"); got != dbus.ObjectPath("/") {
		t.Errorf("Tap.Network = %v after the network went, want /", got)
	}
	if _, flags := alice.TunGetIff(fds[0]); flags == 0 {
		t.Error("the tap fd stopped working when its network went")
	}
}

func TestHostBridgesAndAttachBridge(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Bridges]\nAllow=hostbr0 gone0\n"})
	for _, br := range []string{"hostbr0", "hostbr1"} {
		run(t, "ip", "link", "add", br, "type", "bridge")
		br := br
		t.Cleanup(func() { runQuietly("ip", "link", "del", br) })
	}
	run(t, "ip", "link", "set", "hostbr0", "mtu", "1450")
	alice := env.Client(t, harness.UserAlice)

	_, _, info, err := alice.CreateTap(opts{"bridge": v("hostbr0")})
	if err != nil {
		t.Fatal(err)
	}
	onHost := info["ifname"].Value().(string)
	if master(onHost) != "hostbr0" || info["network"].Value() != "" || info["mtu"].Value() != uint32(1450) {
		t.Errorf("tap on allowed host bridge: master %q info %v", master(onHost), info)
	}
	if _, _, _, err := alice.CreateTap(opts{"bridge": v("hostbr1")}); harness.ErrorName(err) != errPrefix+"BridgeNotAllowed" || !strings.Contains(err.Error(), "Allow") {
		t.Errorf("tap on a bridge the configuration does not list: %v", err)
	}
	if _, _, _, err := alice.CreateTap(opts{"bridge": v("gone0")}); harness.ErrorName(err) != errPrefix+"NotFound" {
		t.Errorf("tap on an allowed bridge that does not exist: %v", err)
	}
	mallory := env.Client(t, harness.UserMallory)
	if _, _, _, err := mallory.CreateTap(opts{"bridge": v("hostbr0")}); harness.ErrorName(err) != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Errorf("ngmallory on an allowed bridge: %v", err)
	}

	// AttachBridge moves a tap between bridges.
	_, _, plain, err := alice.CreateTap(nil)
	if err != nil {
		t.Fatal(err)
	}
	ifname := plain["ifname"].Value().(string)
	attach := func(c *harness.Client, ifname, br string, o opts) error {
		if o == nil {
			o = opts{}
		}
		return c.Call("AttachBridge", ifname, br, o).Err()
	}
	if err := attach(alice, ifname, "hostbr0", nil); err != nil || master(ifname) != "hostbr0" {
		t.Fatalf("AttachBridge to hostbr0: %v, master %q", err, master(ifname))
	}
	mustCreateNetwork(t, alice, "lab", nil)
	if err := attach(alice, ifname, "ng-lab", nil); err != nil || master(ifname) != "ng-lab" {
		t.Fatalf("AttachBridge to the network's bridge: %v, master %q", err, master(ifname))
	}
	tapPath := dbus.ObjectPath("/org/netgrant/NetGrant1/tap/" + ifname)
	if got := env.Property(tapPath, tapIface, "Network"); got != dbus.ObjectPath("/org/netgrant/NetGrant1/network/lab") {
		t.Errorf("after attaching to ng-lab, Tap.Network = %v", got)
	}
	if err := attach(alice, ifname, "hostbr0", opts{"force": v(true)}); harness.ErrorName(err) != errPrefix+"InvalidArgument" || !strings.Contains(err.Error(), "force") {
		t.Errorf("AttachBridge with an option: %v", err)
	}
	if err := attach(alice, ifname, "hostbr1", nil); harness.ErrorName(err) != errPrefix+"BridgeNotAllowed" {
		t.Errorf("AttachBridge to a bridge not allowed: %v", err)
	}
	if err := attach(mallory, ifname, "hostbr0", nil); harness.ErrorName(err) != errPrefix+"NotOwner" {
		t.Errorf("AttachBridge of ngalice's tap by ngmallory: %v", err)
	}
	if err := attach(alice, "eth0", "hostbr0", nil); harness.ErrorName(err) != errPrefix+"NotFound" {
		t.Errorf("AttachBridge of a link that is no netgrant tap: %v", err)
	}
	if master(ifname) != "ng-lab" {
		t.Errorf("refused calls moved the tap to %q", master(ifname))
	}
}

// A tap's ipv4 option fixes its guest's address: shown at once, kept from
// other taps, refused by name where the network cannot give it, and
// reserved without restarting the network's dnsmasq.
func TestFixedGuestAddress(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "fixed", opts{"subnet": v("10.97.7.0/24")})
	dnsmasqBefore := harness.ProcessesNamed("dnsmasq")

	tapPath, _, info, err := alice.CreateTap(opts{"network": v("fixed"), "ipv4": v("10.97.7.50")})
	if err != nil {
		t.Fatal(err)
	}
	if info["ipv4"].Value() != "10.97.7.50" || env.Property(tapPath, tapIface, "IPv4") != "10.97.7.50" {
		t.Errorf("info ipv4 %v, Tap.IPv4 %v, want 10.97.7.50", info["ipv4"], env.Property(tapPath, tapIface, "IPv4"))
	}
	hosts, err := os.ReadDir(filepath.Join(env.StateDir, "dnsmasq-ng-fixed", "hosts"))
	if err != nil || len(hosts) != 1 {
		t.Fatalf("dnsmasq's reservations: %v, %v", hosts, err)
	}
	line, _ := os.ReadFile(filepath.Join(env.StateDir, "dnsmasq-ng-fixed", "hosts", hosts[0].Name()))
	if want := info["mac"].Value().(string) + ",10.97.7.50\n"; string(line) != want {
		t.Errorf("reservation %q, want %q", line, want)
	}
	if now := harness.ProcessesNamed("dnsmasq"); !slices.Equal(now, dnsmasqBefore) {
		t.Errorf("dnsmasq was restarted: pids %v, before %v", now, dnsmasqBefore)
	}

	for _, tc := range []struct {
		opts opts
		want string
	}{
		{opts{"network": v("fixed"), "ipv4": v("10.97.7.50")}, "Exists"},
		{opts{"network": v("fixed"), "ipv4": v("10.97.7.1")}, "InvalidArgument"},
		{opts{"network": v("fixed"), "ipv4": v("10.97.7.255")}, "InvalidArgument"},
		{opts{"network": v("fixed"), "ipv4": v("10.97.8.5")}, "InvalidArgument"},
		{opts{"network": v("fixed"), "ipv4": v("fixed")}, "InvalidArgument"},
		{opts{"ipv4": v("10.97.7.51")}, "InvalidArgument"},
	} {
		if _, _, _, err := alice.CreateTap(tc.opts); harness.ErrorName(err) != errPrefix+tc.want {
			t.Errorf("CreateTap(%v): %v, want %s", tc.opts, err, tc.want)
		}
	}
	if n := len(harness.Links(t, "ngtap")); n != 1 {
		t.Errorf("%d taps after refused calls, want 1", n)
	}
}
