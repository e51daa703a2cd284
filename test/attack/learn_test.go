package attack_test

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/test/harness"
)

// learnRules let ngalice use her networks and create user-4001, but not
// use a network she has not just created (use-network): a tap that
// creates her user-<uid> is authorized by create-nat-network alone.
const learnRules = `
polkit.addRule(function(action, subject) {
	if (action.id.indexOf("org.netgrant.") != 0) return polkit.Result.NOT_HANDLED;
	if (subject.user == "ngalice") return action.id == "org.netgrant.use-network" && action.lookup("network") == "user-4001" ? polkit.Result.NO : polkit.Result.YES;
	if (subject.user == "ngbob") return polkit.Result.YES;
	return polkit.Result.NO;
});
`

// A bridge helper run by libvirt cannot know the guest's MAC: with
// learn_mac the network learns it from the guest's first frame. Until
// then nothing of the guest's reaches anyone; the MAC another guest has
// teaches nothing; the learnt MAC shows as Tap.MAC with PropertiesChanged,
// the guest's DHCP reservation and filter follow it, and the guest sends
// from no other MAC afterwards.
func TestLearnMAC(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { testLearnMAC(t, backend) })
	}
}

func testLearnMAC(t *testing.T, backend string) {
	env := harness.Start(t, harness.Options{Rules: learnRules, Config: "[Firewall]\nBackend=" + backend + "\n"})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "lab", nil)
	noVnetHdr := dbus.MakeVariant(false)
	_, victimFDs, victim, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("lab"), "vnet_hdr": noVnetHdr})
	if err != nil {
		t.Fatal(err)
	}
	theirMAC, _ := net.ParseMAC(victim["mac"].Value().(string))
	signals := env.WatchSignals(t)
	learnerPath, learnerFDs, learner, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("lab"), "vnet_hdr": noVnetHdr, "learn_mac": dbus.MakeVariant(true)})
	if err != nil {
		t.Fatal(err)
	}
	if learner["mac"].Value() != "" || env.Property(learnerPath, "org.netgrant.NetGrant1.Tap", "MAC") != "" {
		t.Errorf("a tap learning its MAC says it has one: info %v", learner["mac"])
	}
	myIP := netip.MustParseAddr(learner["ipv4"].Value().(string))

	// The other guest's MAC teaches nothing, and nothing of a learning
	// guest's reaches the other guest.
	alice.Write(learnerFDs[0], dhcpFrame(theirMAC, theirMAC, netip.IPv4Unspecified(), 68, 67, "as-the-other"))
	alice.Write(learnerFDs[0], udpFrame(theirMAC, broadcastMAC, myIP, broadcastIP, 5000, 5000, "before-learnt"))
	myMAC := net.HardwareAddr{0x52, 0x54, 0x00, 0x77, 0x66, 0x55}
	alice.Write(learnerFDs[0], dhcpFrame(myMAC, myMAC, netip.IPv4Unspecified(), 68, 67, "first-frame"))
	for {
		sig := signals.Next(t, "org.freedesktop.DBus.Properties.PropertiesChanged", learnerPath)
		if mac, ok := sig.Body[1].(map[string]dbus.Variant)["MAC"]; ok {
			if mac.Value() != myMAC.String() {
				t.Fatalf("learnt MAC %v, want %s (the first frame's no other guest has)", mac.Value(), myMAC)
			}
			break
		}
	}
	if got := env.Property(learnerPath, "org.netgrant.NetGrant1.Tap", "MAC"); got != myMAC.String() {
		t.Errorf("Tap.MAC = %v, want %s", got, myMAC)
	}
	if got := env.Property(learnerPath, "org.netgrant.NetGrant1.Tap", "IPv4"); got != myIP.String() {
		t.Errorf("Tap.IPv4 = %v after learning, want the reservation %s", got, myIP)
	}
	reservation, err := os.ReadFile(filepath.Join(env.StateDir, "dnsmasq-"+names.BridgeName("lab"), "hosts", learner["ifname"].Value().(string)+"-"+ifindex(t, learner["ifname"].Value().(string))))
	if err != nil || strings.TrimSpace(string(reservation)) != myMAC.String()+","+myIP.String() {
		t.Errorf("dnsmasq's reservation for the learnt MAC: %q, %v", reservation, err)
	}

	// Now the guest is its MAC: honest frames pass, another MAC's do not.
	alice.Write(learnerFDs[0], udpFrame(net.HardwareAddr{0x52, 0x54, 0, 0x99, 0x99, 0x99}, broadcastMAC, myIP, broadcastIP, 5000, 5000, "another-mac"))
	alice.Write(learnerFDs[0], udpFrame(myMAC, broadcastMAC, myIP, broadcastIP, 5000, 5000, "honest-last"))
	seen := readUntil(t, func() []byte {
		frame, err := alice.Read(victimFDs[0], 10*time.Second)
		if err != nil {
			t.Fatalf("the other guest's tap: %v before the learnt guest's honest frame", err)
		}
		return frame
	}, "honest-last")
	for _, label := range []string{"as-the-other", "before-learnt", "first-frame", "another-mac"} {
		if seen[label] {
			t.Errorf("%s reached the other guest", label)
		}
	}
}

func ifindex(t *testing.T, ifname string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("/sys/class/net", ifname, "ifindex"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(raw))
}

// A tap created with hold holds its network: the client that made it may
// hand the fd on and leave (as a bridge helper does), and the network
// stays for as long as the tap lives. A tap on the caller's own
// user-<uid> creates that network if it is missing, authorized by
// create-nat-network alone; another user's is not created.
func TestHoldAndOwnNetwork(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: learnRules})
	helper := env.Client(t, harness.UserAlice)
	_, fds, info, err := helper.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("user-4001"), "hold": dbus.MakeVariant(true)})
	if err != nil {
		t.Fatalf("a held tap on ngalice's own missing user-4001: %v", err)
	}
	if info["network"].Value() != "user-4001" || info["bridge"].Value() != "ng-user-4001" {
		t.Errorf("tap info %v, want network user-4001 on ng-user-4001", info)
	}
	vm := helper.Pass(fds[0])
	helper.Exit()
	harness.WaitFor(t, "the helper's hold to go", func() bool {
		return env.Property(names.NetworkPath("user-4001"), "org.netgrant.NetGrant1.Network", "Holders") == uint32(1)
	})
	if links := harness.Links(t, "ng-"); len(links) != 1 {
		t.Fatalf("bridges once the helper left: %v, want ng-user-4001 held by the tap", links)
	}
	vm.Close()
	harness.WaitFor(t, "the network to go with its tap", func() bool { return len(harness.Links(t, "ng-")) == 0 })
	if objs := env.ManagedObjects(); len(objs) != 0 {
		t.Errorf("objects left: %v", objs)
	}

	// Another user's user-4001 is not created for them, and a tap that
	// fails leaves no network it made.
	bob := env.Client(t, harness.UserBob)
	if _, _, _, err := bob.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("user-4001")}); harness.ErrorName(err) != "org.netgrant.NetGrant1.Error.NotFound" {
		t.Errorf("ngbob's tap on ngalice's missing user-4001: %v, want NotFound", err)
	}
	alice := env.Client(t, harness.UserAlice)
	if _, _, _, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("user-4001"), "ipv4": dbus.MakeVariant("192.0.2.1")}); harness.ErrorName(err) != "org.netgrant.NetGrant1.Error.InvalidArgument" {
		t.Errorf("a tap with an address outside the network it creates: %v, want InvalidArgument", err)
	}
	if links := harness.Links(t, "ng-"); len(links) != 0 {
		t.Errorf("a failed tap left its network: %v", links)
	}
}
