// Package lifecycle_test checks what netgrant promises about teardown:
// downscript-style hooks on every path, recovery after the daemon is killed
// or restarted, and firewall rules put back after someone flushed them.
package lifecycle_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

var rules = harness.Rules(map[string]string{harness.UserAlice: "YES", harness.UserBob: "YES"})

const (
	managerPath  = dbus.ObjectPath("/org/netgrant/NetGrant1")
	networkIface = "org.netgrant.NetGrant1.Network"
	tapIface     = "org.netgrant.NetGrant1.Tap"
)

type opts = map[string]dbus.Variant

func v(x any) dbus.Variant { return dbus.MakeVariant(x) }

// hookLog is where the test's hooks write one line per run: the hook's
// name, its argument, the environment and whether the device was still
// there when it ran.
type hookLog string

func newHookLog(t *testing.T) hookLog {
	return hookLog(filepath.Join(t.TempDir(), "hooks.log"))
}

// script is a hook body that logs its run.
func (l hookLog) script(name string) string {
	return fmt.Sprintf(`#!/bin/sh
present=gone
[ -e "/sys/class/net/$NETGRANT_IFNAME" ] && present=present
echo "%s $1 ifname=$NETGRANT_IFNAME bridge=$NETGRANT_BRIDGE network=$NETGRANT_NETWORK subnet=$NETGRANT_SUBNET mac=$NETGRANT_MAC uid=$NETGRANT_UID event=$NETGRANT_EVENT device=$present" >> %s
`, name, l)
}

func (l hookLog) lines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(string(l))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

// runs returns "<hook> <event>" for each logged run with the given event.
func (l hookLog) runs(t *testing.T, event string) []string {
	var out []string
	for _, line := range l.lines(t) {
		f := strings.Fields(line)
		if len(f) > 1 && f[1] == event {
			out = append(out, f[0]+" "+f[1])
		}
	}
	return out
}

func (l hookLog) waitRuns(t *testing.T, event string, want ...string) {
	t.Helper()
	harness.WaitFor(t, fmt.Sprintf("hooks %v on %s", want, event), func() bool {
		return strings.Join(l.runs(t, event), ",") == strings.Join(want, ",")
	})
}

func (l hookLog) clear(t *testing.T) {
	if err := os.Remove(string(l)); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
}

func mustCreateNetwork(t *testing.T, c *harness.Client, name string, o opts) dbus.ObjectPath {
	t.Helper()
	path, _, err := c.CreateNATNetwork(name, o)
	if err != nil {
		t.Fatalf("CreateNATNetwork(%q) as %s: %v", name, c.User, err)
	}
	return path
}

func mustCreateTap(t *testing.T, c *harness.Client, o opts) (dbus.ObjectPath, []int, map[string]dbus.Variant) {
	t.Helper()
	path, fds, info, err := c.CreateTap(o)
	if err != nil {
		t.Fatalf("CreateTap(%v) as %s: %v", o, c.User, err)
	}
	return path, fds, info
}

func stateEntries(t *testing.T, env *harness.Env) []string {
	t.Helper()
	entries, err := os.ReadDir(env.StateDir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// assertNothingLeft checks that no trace of netgrant remains.
func assertNothingLeft(t *testing.T, env *harness.Env, iptablesBefore string) {
	t.Helper()
	harness.WaitFor(t, "everything to be torn down", func() bool {
		return len(harness.Links(t, "ng-")) == 0 && len(harness.Links(t, "ngtap")) == 0 &&
			len(harness.ProcessesNamed("dnsmasq")) == 0 && len(stateEntries(t, env)) == 0
	})
	if after := harness.IPTablesSave(t); after != iptablesBefore {
		t.Errorf("iptables differs from before:\n--- before\n%s--- after\n%s", iptablesBefore, after)
	}
	if objs := env.ManagedObjects(); len(objs) != 0 {
		t.Errorf("objects still exported: %v", objs)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// objectPaths are the paths of the exported objects, sorted.
func objectPaths(env *harness.Env) []string {
	var paths []string
	for p := range env.ManagedObjects() {
		paths = append(paths, string(p))
	}
	sort.Strings(paths)
	return paths
}

// With nothing held and no call for IdleExitSec, netgrantd exits cleanly
// (the next call D-Bus-activates it again); while a tap or a network
// exists it stays, however long nobody calls.
func TestIdleExit(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Daemon]\nIdleExitSec=1\n"})
	alice := env.Client(t, harness.UserAlice)
	_, fds, _ := mustCreateTap(t, alice, nil)
	netPath := mustCreateNetwork(t, alice, "lab", nil)
	pid := env.DaemonPID()

	// Three idle periods pass with a tap and a network held. (Were it to
	// exit regardless, it would have after one.)
	time.Sleep(3 * time.Second)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("netgrantd exited while a tap and a network were held: %v", err)
	}

	alice.CloseFD(fds[0])
	if r := alice.Do(harness.Call{Path: netPath, Interface: networkIface, Method: "Release"}); r.Err() != nil {
		t.Fatal(r.Err())
	}
	if err := env.WaitDaemonExit(t); err != nil {
		t.Fatalf("netgrantd's idle exit: %v", err)
	}
	log := strings.Join(env.DaemonLog(), "\n")
	if !strings.Contains(log, "idle with nothing to watch: exiting") {
		t.Errorf("netgrantd did not say why it exited:\n%s", log)
	}
	if links := harness.Links(t, "ng"); len(links) != 0 {
		t.Errorf("netgrantd exited leaving %v", links)
	}
}
