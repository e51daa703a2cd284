package network_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

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

func mustCreateNetwork(t *testing.T, c *harness.Client, name string, o opts) (dbus.ObjectPath, map[string]dbus.Variant) {
	t.Helper()
	path, info, err := c.CreateNATNetwork(name, o)
	if err != nil {
		t.Fatalf("CreateNATNetwork(%q, %v) as %s: %v", name, o, c.User, err)
	}
	return path, info
}

func callOn(c *harness.Client, path dbus.ObjectPath, iface, method string) *harness.Reply {
	return c.Do(harness.Call{Path: path, Interface: iface, Method: method})
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

// assertNothingLeft checks that no trace of netgrant networks remains.
func assertNothingLeft(t *testing.T, env *harness.Env, rulesBefore string) {
	t.Helper()
	harness.WaitFor(t, "every network to be torn down", func() bool {
		return len(harness.Links(t, "ng-")) == 0 && len(harness.ProcessesNamed("dnsmasq")) == 0
	})
	if after := harness.FirewallRules(t); after != rulesBefore {
		t.Errorf("the firewall differs from before:\n--- before\n%s--- after\n%s", rulesBefore, after)
	}
	for path, ifaces := range env.ManagedObjects() {
		if _, ok := ifaces[networkIface]; ok {
			t.Errorf("network object %s is still exported", path)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(env.StateDir, "networks")); len(entries) != 0 {
		t.Errorf("state directory still holds %d network entries", len(entries))
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

// The upstream's IPv6 side: documentation addresses (RFC 3849).
const (
	hostAddr6     = "2001:db8:1::1"
	upstreamAddr6 = "2001:db8:1::2"
)

// addUpstreamWithDNS is the outside, 198.51.100.2 and 2001:db8:1::2 (the
// host's default routes of both families), answering DNS for
// upstream.test with both, with the host's resolver pointing at it as at a
// LAN's. It answers leakedAnswer for every name below netgrant.internal:
// a query for guests' names that netgrant let out gets that.
const leakedAnswer = "198.51.100.99"

func addUpstreamWithDNS(t *testing.T) *harness.Upstream {
	up := harness.AddUpstream(t, harness.UpstreamOptions{Name: "up", HostAddr: "198.51.100.1/24", PeerAddr: "198.51.100.2/24", DefaultRoute: true})
	run(t, "ip", "addr", "add", hostAddr6+"/64", "dev", up.Link, "nodad")
	up.Run(t, "ip", "addr", "add", upstreamAddr6+"/64", "dev", "eth0", "nodad")
	run(t, "ip", "-6", "route", "add", "default", "via", upstreamAddr6)
	dns := up.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address=198.51.100.2", "--address=/upstream.test/198.51.100.2",
		"--address=/upstream.test/"+upstreamAddr6, "--address=/netgrant.internal/"+leakedAnswer, "--pid-file=")
	if err := dns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dns.Process.Kill(); dns.Wait() })
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver 198.51.100.2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(resolvConf, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount("/etc/resolv.conf", 0) })
	return up
}
