package attack_test

import (
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

var allowAliceAndBob = harness.Rules(map[string]string{harness.UserAlice: "YES", harness.UserBob: "YES", harness.UserMallory: "NO"})

const (
	busName       = "org.freedesktop.DBus"
	busPath       = dbus.ObjectPath("/org/freedesktop/DBus")
	firewalldName = "org.fedoraproject.FirewallD1"
	firewalldPath = dbus.ObjectPath("/org/fedoraproject/FirewallD1")
	reloaded      = firewalldName + ".Reloaded"
	restoringLine = "firewalld started or reloaded: restoring"
)

func networkPath(name string) dbus.ObjectPath {
	return dbus.ObjectPath("/org/netgrant/NetGrant1/network/" + name)
}

func mustCreateNetwork(t *testing.T, c *harness.Client, name string, opts map[string]dbus.Variant) {
	t.Helper()
	if _, _, err := c.CreateNATNetwork(name, opts); err != nil {
		t.Fatalf("CreateNATNetwork(%q) as %s: %v", name, c.User, err)
	}
}

// leaveAndWait makes c leave the bus and waits until netgrantd has torn
// down network name, which c alone held: the signals netgrantd received
// before c's departure have been handled by then.
func leaveAndWait(t *testing.T, env *harness.Env, c *harness.Client, name string) {
	t.Helper()
	c.Exit()
	harness.WaitFor(t, "network "+name+" to go after its holder left", func() bool {
		_, ok := env.ManagedObjects()[networkPath(name)]
		return !ok
	})
}

// One forged NameOwnerChanged, sent by a user polkit refuses everything,
// tore down another user's live network.
func TestForgedNameOwnerChangedTearsNothingDown(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice, bob := env.Client(t, harness.UserAlice), env.Client(t, harness.UserBob)
	mallory := env.Client(t, harness.UserMallory)
	mustCreateNetwork(t, alice, "lab", nil)
	mustCreateNetwork(t, bob, "barrier", nil)

	// As dbus-send would: to netgrantd directly, and to everyone.
	for _, dest := range []string{"org.netgrant.NetGrant1", ""} {
		mallory.Emit(dest, busPath, busName+".NameOwnerChanged", 1, alice.UniqueName, alice.UniqueName, "")
		mallory.Emit(dest, busPath, busName+".NameOwnerChanged", 1, "1.3", "1.3", "")
	}
	// bob's real departure is handled after the forgeries were.
	leaveAndWait(t, env, bob, "barrier")

	props, ok := env.ManagedObjects()[networkPath("lab")]
	if !ok {
		t.Fatal("alice's network was torn down by mallory's forged NameOwnerChanged")
	}
	if holders := props["org.netgrant.NetGrant1.Network"]["Holders"].Value(); holders != uint32(1) {
		t.Errorf("alice's network has %v holders, want 1", holders)
	}
}

// Reloaded is trusted only from firewalld's owner: mallory can neither
// send it herself, nor first claim (by a forged NameOwnerChanged) to be
// firewalld; and a flood of it makes no work.
func TestForgedFirewalldReloadIsIgnored(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice, mallory := env.Client(t, harness.UserAlice), env.Client(t, harness.UserMallory)
	mustCreateNetwork(t, alice, "lab", nil)
	goroutines, _ := env.DaemonStats()

	mallory.Emit("org.netgrant.NetGrant1", busPath, busName+".NameOwnerChanged", 1, firewalldName, "", mallory.UniqueName)
	for _, dest := range []string{"org.netgrant.NetGrant1", ""} {
		mallory.Emit(dest, firewalldPath, reloaded, 500)
	}
	// Everything mallory sent has reached netgrantd once it answers her.
	mallory.Call("GetNetwork", "lab")
	if now, _ := env.DaemonStats(); now > goroutines+20 {
		t.Errorf("1000 forged Reloaded signals grew netgrantd from %d to %d goroutines", goroutines, now)
	}

	// firewalld's start and its own reload are acted on, once each.
	firewalld := env.ActAsFirewalld(t)
	harness.WaitFor(t, "netgrantd to restore its rules once firewalld started", func() bool {
		return env.CountLogLines(restoringLine) > 0
	})
	if err := firewalld.Emit(firewalldPath, reloaded); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "netgrantd to restore its rules after firewalld's reload", func() bool {
		return env.CountLogLines(restoringLine) > 1
	})
	if n := env.CountLogLines(restoringLine); n != 2 {
		t.Errorf("netgrantd restored its rules %d times for firewalld's start, one genuine Reloaded and 1000 forged ones", n)
	}
}

// A real firewalld reloading in a burst costs one or two restores, and a
// holder's departure meanwhile is handled without waiting for 1000 of them.
func TestReloadBurstIsCoalescedAndDoesNotDelayTeardown(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "lab", nil)
	firewalld := env.ActAsFirewalld(t)
	const burst = 1000
	for range burst {
		if err := firewalld.Emit(firewalldPath, reloaded); err != nil {
			t.Fatal(err)
		}
	}
	leaveAndWait(t, env, alice, "lab")
	harness.WaitFor(t, "a restore after the burst", func() bool { return env.CountLogLines(restoringLine) > 0 })
	n := env.CountLogLines(restoringLine)
	t.Logf("%d Reloaded signals: %d restores", burst, n)
	if n >= burst {
		t.Errorf("%d Reloaded signals made %d restores: they were not coalesced", burst, n)
	}
}
