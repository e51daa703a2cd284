package lifecycle_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/test/harness"
)

func TestHooksRunInOrderWithTheirEnvironment(t *testing.T) {
	log := newHookLog(t)
	env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{
		"10-first":   log.script("10-first"),
		"20-second":  log.script("20-second"),
		"15-notmine": log.script("15-notmine"),
		"17-loose":   log.script("17-loose"),
	}})
	// Hooks an unprivileged user could have written never run.
	if err := os.Chown(env.HooksDir+"/15-notmine", 4001, 4001); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(env.HooksDir+"/17-loose", 0o777); err != nil {
		t.Fatal(err)
	}
	alice := env.Client(t, harness.UserAlice)
	netPath := mustCreateNetwork(t, alice, "lab", opts{"subnet": v("10.97.3.0/24")})
	log.waitRuns(t, "network-up", "10-first network-up", "20-second network-up")

	_, fds, info := mustCreateTap(t, alice, opts{"network": v("lab")})
	ifname, mac := info["ifname"].Value().(string), info["mac"].Value().(string)
	log.waitRuns(t, "tap-up", "10-first tap-up", "20-second tap-up")
	wantEnv := "ifname=" + ifname + " bridge=ng-lab network=lab subnet=10.97.3.0/24 mac=" + mac + " uid=4001 event=tap-up device=present"
	for _, line := range log.lines(t) {
		if strings.Contains(line, " tap-up ") && !strings.HasSuffix(line, wantEnv) {
			t.Errorf("tap-up hook saw %q, want %q", line, wantEnv)
		}
	}

	alice.CloseFD(fds[0])
	log.waitRuns(t, "tap-down", "20-second tap-down", "10-first tap-down")

	if r := alice.Do(harness.Call{Path: netPath, Interface: networkIface, Method: "Release"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	log.waitRuns(t, "network-down", "20-second network-down", "10-first network-down")
	for _, line := range log.lines(t) {
		if strings.Contains(line, " network-down ") && !strings.HasSuffix(line, "ifname=ng-lab bridge=ng-lab network=lab subnet=10.97.3.0/24 mac= uid=4001 event=network-down device=present") {
			t.Errorf("network-down hook ran after the bridge went, or saw the wrong environment: %q", line)
		}
	}
	skipped := 0
	for _, line := range env.DaemonLog() {
		if strings.Contains(line, "15-notmine") || strings.Contains(line, "17-loose") {
			skipped++
		}
	}
	if skipped == 0 {
		t.Error("the daemon did not log why it skipped the unsafe hooks")
	}
}

func TestUpHookFailureRollsTheCallBack(t *testing.T) {
	log := newHookLog(t)
	env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{
		"10-log":  log.script("10-log"),
		"50-vlan": `[ "$1" = network-up ] || [ "$1" = tap-up ] || exit 0; echo "no vlan for $NETGRANT_IFNAME" >&2; exit 3`,
	}})
	before := harness.IPTablesSave(t)
	alice := env.Client(t, harness.UserAlice)
	_, _, err := alice.CreateNATNetwork("lab", nil)
	ce, ok := err.(*harness.CallError)
	if !ok || ce.Name != "org.netgrant.NetGrant1.Error.Failed" || !strings.Contains(ce.Message, "50-vlan") || !strings.Contains(ce.Message, "no vlan") {
		t.Fatalf("network-up hook failure answered %v, want Failed naming the hook and its message", err)
	}
	// The downscripts of what was set up ran, before the built-in teardown.
	log.waitRuns(t, "network-down", "10-log network-down")
	if !strings.HasSuffix(log.lines(t)[len(log.lines(t))-1], "device=present") {
		t.Errorf("network-down ran after the bridge was deleted: %v", log.lines(t))
	}

	_, _, _, err = alice.CreateTap(nil)
	if ce, ok := err.(*harness.CallError); !ok || ce.Name != "org.netgrant.NetGrant1.Error.Failed" || !strings.Contains(ce.Message, "50-vlan") {
		t.Fatalf("tap-up hook failure answered %v", err)
	}
	log.waitRuns(t, "tap-down", "10-log tap-down")
	assertNothingLeft(t, env, before)
}

func TestDownHooksRunOnEveryPath(t *testing.T) {
	log := newHookLog(t)
	env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{"10-log": log.script("10-log")}})
	alice := env.Client(t, harness.UserAlice)

	// Tap.Delete: the hook runs while the device still exists.
	tapPath, _, _ := mustCreateTap(t, alice, nil)
	if r := alice.Do(harness.Call{Path: tapPath, Interface: tapIface, Method: "Delete"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	log.waitRuns(t, "tap-down", "10-log tap-down")
	if last := log.lines(t)[len(log.lines(t))-1]; !strings.HasSuffix(last, "device=present") {
		t.Errorf("tap-down on Delete ran after the device was removed: %s", last)
	}
	log.clear(t)

	// Network.Delete.
	netPath := mustCreateNetwork(t, alice, "deleted", nil)
	if r := alice.Do(harness.Call{Path: netPath, Interface: networkIface, Method: "Delete"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	log.waitRuns(t, "network-down", "10-log network-down")
	log.clear(t)

	// The holder leaving the bus.
	holder := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, holder, "dropped", nil)
	holder.Kill()
	log.waitRuns(t, "network-down", "10-log network-down")
	// The hooks run first; the rest of the teardown follows.
	harness.WaitFor(t, "the dropped network to go", func() bool { return len(harness.Links(t, "ng-")) == 0 })
	log.clear(t)

	// Recovery: the holder left while netgrantd was down.
	holder = env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, holder, "orphaned", nil)
	env.KillDaemon()
	holder.Kill()
	env.StartDaemon()
	log.waitRuns(t, "network-down", "10-log network-down")
	if last := log.lines(t)[len(log.lines(t))-1]; !strings.Contains(last, "network=orphaned") || !strings.HasSuffix(last, "device=present") {
		t.Errorf("recovery's network-down: %s", last)
	}
	harness.WaitFor(t, "the orphaned network to go", func() bool { return len(harness.Links(t, "ng-")) == 0 })
}

// The kernel gives a closed tap's name to the next tap at once, often
// before the removal is reported: every tap must still get its downscript.
func TestEveryTapGetsItsDownHooks(t *testing.T) {
	log := newHookLog(t)
	env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{"10-log": log.script("10-log")}})
	alice := env.Client(t, harness.UserAlice)
	const taps = 30
	var want []string
	for i := 0; i < taps; i++ {
		_, fds, _ := mustCreateTap(t, alice, nil)
		alice.CloseFD(fds[0])
		want = append(want, "10-log tap-down")
	}
	log.waitRuns(t, "tap-down", want...)
	if n := len(log.runs(t, "tap-up")); n != taps {
		t.Errorf("%d tap-up runs for %d taps", n, taps)
	}
	harness.WaitFor(t, "every tap object to go", func() bool { return len(env.ManagedObjects()) == 0 })
	if entries := stateEntries(t, env); len(entries) != 0 {
		t.Errorf("state directory keeps %v", entries)
	}
}

// A teardown that a SIGKILL interrupts after the down hooks ran is
// finished by the next netgrantd without running them again: the
// administrator's downscripts run once. (dnsmasq, stopped here, keeps the
// teardown in its next step long enough to kill netgrantd there.)
func TestDownHooksRunOnceAcrossACrash(t *testing.T) {
	log := newHookLog(t)
	env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{"10-log": log.script("10-log")}})
	holder := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, holder, "interrupted", nil)
	dnsmasqs := harness.ProcessesNamed("dnsmasq")
	if len(dnsmasqs) != 1 {
		t.Fatalf("dnsmasq processes: %v", dnsmasqs)
	}
	if err := syscall.Kill(dnsmasqs[0], syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	record := filepath.Join(env.StateDir, "network-interrupted.json")
	holder.Kill()
	log.waitRuns(t, "network-down", "10-log network-down")
	harness.WaitFor(t, "the journal to record that the down hooks ran", func() bool {
		data, err := os.ReadFile(record)
		return err == nil && !strings.Contains(string(data), "run-down-hooks")
	})
	env.KillDaemon()
	env.StartDaemon()
	harness.WaitFor(t, "the interrupted network to go", func() bool {
		_, err := os.Stat(record)
		return os.IsNotExist(err) && len(harness.Links(t, "ng-")) == 0 && len(harness.ProcessesNamed("dnsmasq")) == 0
	})
	if runs := log.runs(t, "network-down"); len(runs) != 1 {
		t.Errorf("the down hooks ran %d times: %v", len(runs), runs)
	}
}

// A tap moved onto a network after it came up is seen there by its down
// hooks, also by a netgrantd started after a crash: they read the tap's
// record as it is when they run, whose recorded steps are never
// rewritten.
func TestDownHooksSeeWhereTheTapIsNow(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "Delete", true: "after a crash"}[crash], func(t *testing.T) {
			log := newHookLog(t)
			env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{"10-log": log.script("10-log")}})
			alice := env.Client(t, harness.UserAlice)
			mustCreateNetwork(t, alice, "moved", map[string]dbus.Variant{"subnet": dbus.MakeVariant("10.97.9.0/24")})
			tapPath, fds, info := mustCreateTap(t, alice, nil)
			ifname := info["ifname"].Value().(string)
			if r := alice.Call("AttachBridge", ifname, names.BridgeName("moved"), map[string]dbus.Variant{}); r.Err() != nil {
				t.Fatalf("AttachBridge: %v", r.Err())
			}
			if crash {
				env.KillDaemon()
				for _, fd := range fds {
					alice.CloseFD(fd)
				}
				harness.WaitFor(t, "the tap to go with its fds", func() bool { return len(harness.Links(t, ifname)) == 0 })
				env.StartDaemon()
			} else if r := alice.Do(harness.Call{Path: tapPath, Interface: tapIface, Method: "Delete"}); r.Err() != nil {
				t.Fatal(r.Err())
			}
			log.waitRuns(t, "tap-down", "10-log tap-down")
			var down string
			for _, line := range log.lines(t) {
				if strings.HasPrefix(line, "10-log tap-down ") {
					down = line
				}
			}
			if want := "bridge=" + names.BridgeName("moved") + " network=moved subnet=10.97.9.0/24"; !strings.Contains(down, want) {
				t.Errorf("tap-down saw %q, want %q", down, want)
			}
		})
	}
}
