package cli_test

import (
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/harness"
)

// busSocket is where the private system bus listens; a sandboxed app finds
// its proxy at the same path.
var busSocket = strings.TrimPrefix(harness.BusAddress, "unix:path=")

// flatpakProxy starts xdg-dbus-proxy as userName, as Flatpak does for an
// app given --system-talk-name=org.netgrant.NetGrant1, and returns the
// socket the app's sandbox sees as the system bus.
func flatpakProxy(t *testing.T, userName string) string {
	t.Helper()
	if _, err := exec.LookPath("xdg-dbus-proxy"); err != nil {
		t.Skip("xdg-dbus-proxy is not installed")
	}
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir: its parent is root's alone.
	dir, err := os.MkdirTemp("", "flatpak")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sockDir := filepath.Join(dir, "proxy")
	if err := os.Mkdir(sockDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(sockDir, uid, gid); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(sockDir, "system-bus")
	// The proxy writes one byte on fd 3 once it listens, and exits when
	// the other end closes, like Flatpak's.
	ready, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ready.Close() })
	proxy := commandAs(t, userName, "xdg-dbus-proxy", "--fd=3", harness.BusAddress, socket, "--filter", "--talk=org.netgrant.NetGrant1")
	proxy.ExtraFiles = []*os.File{readyW}
	var stderr harness.Output
	proxy.Stderr = &stderr
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	readyW.Close()
	t.Cleanup(func() { proxy.Process.Kill(); proxy.Wait() })
	if _, err := io.ReadFull(ready, make([]byte, 1)); err != nil {
		t.Fatalf("xdg-dbus-proxy did not start: %v\n%s", err, stderr.String())
	}
	return socket
}

// A Flatpak app (bubblewrap, its system bus behind xdg-dbus-proxy with
// --talk=org.netgrant.NetGrant1) gets a working tap fd through the proxy.
func TestFlatpakAppGetsATapThroughTheProxy(t *testing.T) {
	if _, err := exec.LookPath("bwrap"); err != nil {
		t.Skip("bubblewrap is not installed")
	}
	harness.Start(t, harness.Options{Rules: rules})
	socket := flatpakProxy(t, harness.UserAlice)

	sandboxed := func(args ...string) result {
		return runAs(t, harness.UserAlice, "bwrap", append([]string{
			"--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
			"--bind", socket, busSocket,
			"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent", "--",
		}, args...)...)
	}
	r := sandboxed(bin(t, "netgrant"), "run", "--", "sh", "-c", "readlink /proc/self/fd/3; echo tap={ifname} mac={mac}")
	if r.code != 0 {
		t.Fatalf("netgrant run in the sandbox: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	t.Logf("in the sandbox, through the proxy:\n%s", r.stdout)
	if !regexp.MustCompile(`(?m)^/dev/net/tun\ntap=ngtap\d+ mac=52:54:00:`).MatchString(r.stdout) {
		t.Errorf("the sandboxed command did not get a tap fd:\n%s", r.stdout)
	}

	// The proxy lets the app talk to netgrant and to nobody else.
	ping := func(dest, path string) result {
		return sandboxed("gdbus", "call", "--system", "--dest", dest, "--object-path", path, "--method", "org.freedesktop.DBus.Peer.Ping")
	}
	if r := ping("org.netgrant.NetGrant1", "/org/netgrant/NetGrant1"); r.code != 0 {
		t.Errorf("the sandboxed app cannot ping netgrant: %s", r.stderr)
	}
	if r := ping("org.freedesktop.PolicyKit1", "/org/freedesktop/PolicyKit1/Authority"); r.code == 0 || !strings.Contains(r.stderr, "ServiceUnknown") {
		t.Errorf("the sandboxed app reached polkit past the proxy: exit %d %s", r.code, r.stderr)
	}
}
