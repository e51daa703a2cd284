package network_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/harness"
)

// rules lets ngalice do everything and refuses ngmallory everything; ngbob
// may create taps and networks and use others' networks, but not manage
// them nor make networks persistent (those fall to polkit's defaults).
const rules = `
polkit.addRule(function(action, subject) {
	if (action.id.indexOf("org.netgrant.") != 0) return polkit.Result.NOT_HANDLED;
	if (subject.user == "ngalice") return polkit.Result.YES;
	if (subject.user == "ngmallory") return polkit.Result.NO;
	if (subject.user == "ngbob" && (action.id == "org.netgrant.create-tap" ||
	    action.id == "org.netgrant.create-nat-network" || action.id == "org.netgrant.use-network"))
		return polkit.Result.YES;
	if (subject.user == "ngbob" && action.id == "org.netgrant.manage") return polkit.Result.NO;
	return polkit.Result.NOT_HANDLED;
});
`

const (
	managerPath  = dbus.ObjectPath("/org/netgrant/NetGrant1")
	networkIface = "org.netgrant.NetGrant1.Network"
	tapIface     = "org.netgrant.NetGrant1.Tap"
	errPrefix    = "org.netgrant.NetGrant1.Error."
)

func v(x any) dbus.Variant { return dbus.MakeVariant(x) }

type opts = map[string]dbus.Variant

func createNetwork(c *harness.Client, name string, o opts) (dbus.ObjectPath, map[string]dbus.Variant, error) {
	if o == nil {
		o = opts{}
	}
	var path dbus.ObjectPath
	var info map[string]dbus.Variant
	r := c.Call("CreateNATNetwork", name, o)
	if err := r.Err(); err != nil {
		return "", nil, err
	}
	if err := r.Store(&path, &info); err != nil {
		return "", nil, err
	}
	return path, info, nil
}

func mustCreateNetwork(t *testing.T, c *harness.Client, name string, o opts) (dbus.ObjectPath, map[string]dbus.Variant) {
	t.Helper()
	path, info, err := createNetwork(c, name, o)
	if err != nil {
		t.Fatalf("CreateNATNetwork(%q, %v) as %s: %v", name, o, c.User, err)
	}
	return path, info
}

func errorName(err error) string {
	if ce, ok := err.(*harness.CallError); ok {
		return ce.Name
	}
	return fmt.Sprint(err)
}

func callOn(c *harness.Client, path dbus.ObjectPath, iface, method string) *harness.Reply {
	return c.Do(harness.Call{Path: path, Interface: iface, Method: method})
}

func property(t *testing.T, env *harness.Env, path dbus.ObjectPath, iface, name string) any {
	t.Helper()
	got, err := env.Bus().Object("org.netgrant.NetGrant1", path).GetProperty(iface + "." + name)
	if err != nil {
		t.Fatalf("reading %s of %s: %v", name, path, err)
	}
	return got.Value()
}

func managedObjects(t *testing.T, env *harness.Env) map[dbus.ObjectPath]map[string]map[string]dbus.Variant {
	t.Helper()
	var managed map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := env.Bus().Object("org.netgrant.NetGrant1", managerPath).Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&managed); err != nil {
		t.Fatal(err)
	}
	return managed
}

func sysfs(t *testing.T, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{"/sys/class/net"}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func master(ifname string) string {
	target, err := os.Readlink(filepath.Join("/sys/class/net", ifname, "master"))
	if err != nil {
		return ""
	}
	return filepath.Base(target)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
	return string(out)
}

// waitFor polls cond: teardown after a disconnect is asynchronous. The
// bound only keeps a broken daemon from hanging the test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// assertNothingLeft checks that no trace of netgrant networks remains.
func assertNothingLeft(t *testing.T, env *harness.Env, iptablesBefore string) {
	t.Helper()
	waitFor(t, "every network to be torn down", func() bool {
		return len(harness.Links(t, "ngbr")) == 0 && len(harness.ProcessesNamed("dnsmasq")) == 0
	})
	if after := harness.IPTablesSave(t); after != iptablesBefore {
		t.Errorf("iptables differs from before:\n--- before\n%s--- after\n%s", iptablesBefore, after)
	}
	for path, ifaces := range managedObjects(t, env) {
		if _, ok := ifaces[networkIface]; ok {
			t.Errorf("network object %s is still exported", path)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(env.StateDir, "networks")); len(entries) != 0 {
		t.Errorf("state directory still holds %d network entries", len(entries))
	}
}

type signalWatch struct{ ch chan *dbus.Signal }

func watchSignals(t *testing.T, env *harness.Env) *signalWatch {
	t.Helper()
	if err := env.Bus().AddMatchSignal(dbus.WithMatchSender("org.netgrant.NetGrant1")); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 200)
	env.Bus().Signal(ch)
	t.Cleanup(func() { env.Bus().RemoveSignal(ch) })
	return &signalWatch{ch: ch}
}

// next waits for a signal named name about path.
func (w *signalWatch) next(t *testing.T, name string, path dbus.ObjectPath) *dbus.Signal {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case s := <-w.ch:
			if s.Name != name {
				continue
			}
			if s.Path == path || len(s.Body) > 0 && s.Body[0] == path {
				return s
			}
		case <-timeout:
			t.Fatalf("no %s signal for %s", name, path)
			return nil
		}
	}
}

// inNetns runs fn on a thread that joined the named network namespace; the
// thread is never reused, so the rest of the test stays where it was.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + name)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("entering network namespace %s: %v", name, err)
	}
}

func listenIn(t *testing.T, netns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	inNetns(t, netns, func() { l, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func osexecOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}
