package network_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/harness"
)

// With the real firewalld running (nftables backend, default zone
// public), whose own chains reject what they do not know, a guest gets
// its lease and DNS, reaches the upstream host and the host service the
// administrator opened to guests (HostServices=) but no other, on either
// of netgrant's backends, and again right after firewall-cmd --reload.
func TestGuestBesideFirewalld(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { testGuestBesideFirewalld(t, backend) })
	}
}

func testGuestBesideFirewalld(t *testing.T, backend string) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Networks]\nHostServices=tcp/2222\n[Firewall]\nBackend=" + backend + "\n"})
	addUpstreamWithDNS(t)
	serveHello(t, nil)
	startFirewalld(t)

	alice := env.Client(t, harness.UserAlice)
	_, info := mustCreateNetwork(t, alice, "fw", nil)
	bridge, gateway, gateway6 := info["bridge"].Value().(string), info["gateway"].Value().(string), info["gateway6"].Value().(string)
	if zone := firewallCmd(t, "--get-zone-of-interface="+bridge); zone != "netgrant" {
		t.Errorf("%s is in firewalld zone %q, want netgrant", bridge, zone)
	}
	for _, addr := range []string{gateway, gateway6} {
		for _, port := range []string{"2222", "2223"} {
			serveBanner(t, net.JoinHostPort(addr, port), "host-service-"+port)
		}
	}
	g := addNetnsGuest(t, bridge)
	g.check(t, gateway)
	g.check6(t, gateway6)
	g.checkHostServices(t, gateway, gateway6)

	const restored = "netgrant's rules and zone restored"
	restores := env.CountLogLines(restored)
	reloaded := time.Now()
	firewallCmd(t, "--reload")
	harness.WaitFor(t, "netgrantd to restore its rules and zone after the reload", func() bool {
		return env.CountLogLines(restored) > restores
	})
	t.Logf("%s: netgrantd restored its rules and zone %v after firewall-cmd --reload returned", backend, time.Since(reloaded))
	g.check(t, gateway)
	t.Logf("%s: guest served again %v after firewall-cmd --reload returned", backend, time.Since(reloaded))
	g.check6(t, gateway6)
	g.checkHostServices(t, gateway, gateway6)
	if zone := firewallCmd(t, "--get-zone-of-interface="+bridge); zone != "netgrant" {
		t.Errorf("after the reload %s is in firewalld zone %q, want netgrant", bridge, zone)
	}
}

// serveBanner answers TCP connections to addr, on the host, with banner.
func serveBanner(t *testing.T, addr, banner string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Write([]byte(banner + "\n"))
			conn.Close()
		}
	}()
}

// serveHello has the upstream host answer TCP port 8080 with a greeting,
// on its IPv4 and IPv6 addresses, and, if seen is not nil, send it the
// address each client came from.
func serveHello(t *testing.T, seen chan<- string) {
	for _, addr := range []string{"198.51.100.2:8080", "[" + upstreamAddr6 + "]:8080"} {
		upstream := listenIn(t, "up", addr)
		go func() {
			for {
				conn, err := upstream.Accept()
				if err != nil {
					return
				}
				if seen != nil {
					seen <- conn.RemoteAddr().String()
				}
				conn.Write([]byte("hello-from-upstream\n"))
				conn.Close()
			}
		}()
	}
}

// startFirewalld runs firewalld on the test's private bus with netgrant's
// zone and policy installed, as the package installs them.
func startFirewalld(t *testing.T) {
	t.Helper()
	for _, dir := range []string{"/run/firewalld", "/etc/firewalld"} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := unix.Mount("tmpfs", dir, "tmpfs", 0, ""); err != nil {
			t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
		}
		t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"zones", "policies"} {
		src := filepath.Join(root, "data", "firewalld", kind)
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join("/etc/firewalld", kind), 0o755); err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(src, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("/etc/firewalld", kind, e.Name()), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	cmd := exec.Command("firewalld", "--nofork", "--nopid")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+harness.BusAddress)
	log := &harness.Output{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(unix.SIGTERM)
		cmd.Wait()
		if t.Failed() {
			t.Logf("firewalld's output:\n%s", log.String())
		}
	})
	harness.WaitFor(t, "firewalld to run", func() bool {
		out, _ := exec.Command("firewall-cmd", "--state").CombinedOutput()
		return strings.TrimSpace(string(out)) == "running"
	})
}

func firewallCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("firewall-cmd", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("firewall-cmd %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// netnsGuest is a guest that boots on a network: it leases, resolves and
// reaches the upstream host.
type netnsGuest struct{ *harness.NetnsGuest }

func addNetnsGuest(t *testing.T, bridge string) *netnsGuest {
	t.Helper()
	return &netnsGuest{harness.AddNetnsGuest(t, "fwguest", bridge)}
}

// check asks for a lease, resolves a name through the gateway and fetches
// from the upstream host, as a guest does when it boots.
func (g *netnsGuest) check(t *testing.T, gateway string) {
	t.Helper()
	g.Lease(t)
	if out, err := g.In("busybox", "nslookup", "-type=a", "upstream.test", gateway); err != nil || !strings.Contains(out, "198.51.100.2") {
		t.Errorf("guest resolving upstream.test through %s: %v\n%s", gateway, err, out)
	}
	if out, err := g.In("busybox", "nc", "-w", "5", "198.51.100.2", "8080"); err != nil || !strings.Contains(out, "hello-from-upstream") {
		t.Errorf("guest fetching from upstream: %v\n%s", err, out)
	}
}

// checkHostServices connects to port 2222 of the host's gateway addresses,
// a host service the administrator opened to guests, and to 2223, which
// stays closed to them.
func (g *netnsGuest) checkHostServices(t *testing.T, gateway, gateway6 string) {
	t.Helper()
	for _, addr := range []string{gateway, gateway6} {
		if out, err := g.In("busybox", "nc", "-w", "5", addr, "2222"); err != nil || !strings.Contains(out, "host-service-2222") {
			t.Errorf("guest reaching the host service on [%s]:2222: %v\n%s", addr, err, out)
		}
		if out, err := g.In("busybox", "nc", "-w", "5", addr, "2223"); err == nil || strings.Contains(out, "host-service") {
			t.Errorf("guest reached [%s]:2223, a host port not in HostServices: %s", addr, out)
		}
	}
}

// check6 waits for a SLAAC address from the gateway's router
// advertisements, asks stateless DHCPv6 for the DNS server, resolves a name through gateway6 over IPv6 and fetches
// from the upstream host's IPv6 address.
func (g *netnsGuest) check6(t *testing.T, gateway6 string) {
	t.Helper()
	harness.WaitFor(t, "the guest's SLAAC address and default route", func() bool {
		addr, _ := g.In("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "global", "-tentative")
		route, _ := g.In("ip", "-6", "route", "show", "default")
		return strings.Contains(addr, "inet6") && strings.Contains(route, "default")
	})
	if servers := dhcp6DNS(t, g.NS); fmt.Sprint(servers) != "["+gateway6+"]" {
		t.Errorf("stateless DHCPv6 names DNS servers %v, want the gateway %s", servers, gateway6)
	}
	if out, err := g.In("busybox", "nslookup", "-type=AAAA", "upstream.test", gateway6); err != nil || !strings.Contains(out, upstreamAddr6) {
		t.Errorf("guest resolving upstream.test through %s: %v\n%s", gateway6, err, out)
	}
	if out, err := g.In("busybox", "nc", "-w", "5", upstreamAddr6, "8080"); err != nil || !strings.Contains(out, "hello-from-upstream") {
		t.Errorf("guest fetching from upstream over IPv6: %v\n%s", err, out)
	}
}
