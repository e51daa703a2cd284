package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// NetnsGuest is a guest in a network namespace of its own, plugged into a
// bridge by a veth: a guest without a tap, so without the per-tap filter,
// for tests of what a network gives its guests.
type NetnsGuest struct {
	NS string
	// Hostname, if set, is the name its DHCP client asks for.
	Hostname string
	script   string
	// events is where the DHCP client's script writes "EVENT IP" lines.
	events string
}

// AddNetnsGuest creates the guest ns (at most 10 bytes) on bridge,
// removed when t ends. The sandbox's end of its veth is "ng" + ns.
func AddNetnsGuest(t testing.TB, ns, bridge string) *NetnsGuest {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	g := &NetnsGuest{NS: ns, script: filepath.Join(dir, "udhcpc.script"), events: filepath.Join(dir, "events")}
	script := "#!/bin/sh\ncase \"$1\" in bound|renew) ip -4 addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\"; ip route replace default via \"$router\"; echo \"$1 $ip\" >> " + g.events + ";; esac\n"
	if err := os.WriteFile(g.script, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("harness: ip %v: %v: %s", args, err, out)
		}
	}
	link := "ng" + ns
	run("netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", ns)
	// Deleting the netns frees its links only later; this is synchronous.
	t.Cleanup(func() { exec.Command("ip", "link", "del", link).Run() })
	run("link", "set", link, "master", bridge, "up")
	run("-n", ns, "link", "set", "eth0", "up")
	run("-n", ns, "link", "set", "lo", "up")
	return g
}

// In runs a command in the guest.
func (g *NetnsGuest) In(args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", g.NS}, args...)...).CombinedOutput()
	return string(out), err
}

// Lease asks for a lease once, as a booting guest does, and configures it.
func (g *NetnsGuest) Lease(t testing.TB) {
	t.Helper()
	if out, err := g.In(append([]string{"busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1", "-s", g.script}, g.hostnameArgs()...)...); err != nil {
		t.Fatalf("guest got no lease: %v\n%s", err, out)
	}
}

func (g *NetnsGuest) hostnameArgs() []string {
	if g.Hostname == "" {
		return nil
	}
	return []string{"-x", "hostname:" + g.Hostname}
}

// IPv4 is the guest's address on eth0, "" if none.
func (g *NetnsGuest) IPv4(t testing.TB) string {
	t.Helper()
	out, err := g.In("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		t.Fatalf("harness: the guest's addresses: %v: %s", err, out)
	}
	if f := strings.Fields(out); len(f) >= 4 {
		addr, _, _ := strings.Cut(f[3], "/")
		return addr
	}
	return ""
}

// SLAAC waits for the guest's address from router advertisements (one
// that passed duplicate address detection) and returns it.
func (g *NetnsGuest) SLAAC(t testing.TB) string {
	t.Helper()
	var addr string
	WaitFor(t, "the guest's SLAAC address", func() bool {
		out, _ := g.In("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global", "-tentative")
		if f := strings.Fields(out); len(f) >= 4 {
			addr, _, _ = strings.Cut(f[3], "/")
		}
		return addr != ""
	})
	return addr
}

// DHCPClient is a DHCP client that keeps running in a guest, as a guest's
// does: it holds its lease and renews it when told to.
type DHCPClient struct {
	guest *NetnsGuest
	cmd   *exec.Cmd
}

// RunDHCPClient starts the guest's DHCP client and waits for its lease;
// it is stopped when t ends.
func (g *NetnsGuest) RunDHCPClient(t testing.TB) *DHCPClient {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", g.NS, "busybox", "udhcpc", "-i", "eth0", "-f", "-t", "5", "-T", "1", "-A", "1", "-s", g.script}, g.hostnameArgs()...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	c := &DHCPClient{guest: g, cmd: cmd}
	WaitFor(t, "the guest's DHCP lease", func() bool { return len(c.events(t, "bound")) > 0 })
	return c
}

// IP is the address of the client's last lease.
func (c *DHCPClient) IP(t testing.TB) string {
	t.Helper()
	events := append(c.events(t, "bound"), c.events(t, "renew")...)
	if len(events) == 0 {
		t.Fatal("harness: the DHCP client has no lease")
	}
	return events[len(events)-1]
}

// Renew makes the client renew its lease now (busybox udhcpc's SIGUSR1,
// the DHCPREQUEST a guest sends at half its lease time) and returns the
// address the server confirmed.
func (c *DHCPClient) Renew(t testing.TB) string {
	t.Helper()
	before := len(c.events(t, "renew"))
	if err := c.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	WaitFor(t, "the DHCP server to confirm the renewed lease", func() bool { return len(c.events(t, "renew")) > before })
	renewed := c.events(t, "renew")
	return renewed[len(renewed)-1]
}

// events returns the addresses of the script's events of kind, in order.
func (c *DHCPClient) events(t testing.TB, kind string) []string {
	t.Helper()
	data, err := os.ReadFile(c.guest.events)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var ips []string
	for _, line := range strings.Split(string(data), "\n") {
		if ip, ok := strings.CutPrefix(line, kind+" "); ok {
			ips = append(ips, ip)
		}
	}
	return ips
}
