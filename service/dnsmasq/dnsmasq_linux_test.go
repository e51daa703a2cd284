package dnsmasq

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/nstest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

const (
	bridge    = "ngbr0"
	gateway   = "10.97.0.1"
	guestMAC  = "52:54:00:12:34:56"
	upstream  = "198.51.100.53"
	upAnswer  = "198.51.100.7"
	waitLimit = 30 * time.Second
)

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

var privateRun sync.Once

// network builds the bridge with the gateway address and a guest netns
// "guest" whose eth0 (guestMAC) is a port of it. ipv6 keeps IPv6 on the
// bridge, so that it has a link-local address dnsmasq could listen on.
func network(t *testing.T, ipv6 bool) {
	t.Helper()
	privateRun.Do(func() {
		// ip netns keeps its names in /run/netns: keep them in this mount
		// namespace only.
		if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, ""); err != nil {
			t.Fatalf("mounting /run: %v", err)
		}
	})
	run(t, "ip", "link", "add", bridge, "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", bridge).Run() })
	sysctl := "/proc/sys/net/ipv6/conf/" + bridge + "/"
	if ipv6 {
		writeFile(t, sysctl+"accept_dad", "0")
	} else {
		writeFile(t, sysctl+"disable_ipv6", "1")
	}
	run(t, "ip", "addr", "add", gateway+"/24", "dev", bridge)
	run(t, "ip", "link", "set", bridge, "up")
	run(t, "ip", "netns", "add", "guest")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", "guest").Run() })
	run(t, "ip", "link", "add", "ngv0", "type", "veth", "peer", "name", "eth0", "netns", "guest")
	// Deleting the netns frees its links only later; this is synchronous.
	t.Cleanup(func() { exec.Command("ip", "link", "del", "ngv0").Run() })
	run(t, "ip", "link", "set", "ngv0", "master", bridge, "up")
	run(t, "ip", "-n", "guest", "link", "set", "eth0", "address", guestMAC, "up")
	run(t, "ip", "-n", "guest", "link", "set", "lo", "up")
	// The bridge passes no frames until its first port brings its carrier
	// up, which the kernel reports with a delay; a guest that boots meets
	// a bridge long up, so wait for it rather than have udhcpc retry.
	waitFor(t, "the bridge's carrier", func() bool {
		state, _ := os.ReadFile("/sys/class/net/" + bridge + "/operstate")
		return strings.TrimSpace(string(state)) == "up"
	})
	if ipv6 {
		waitFor(t, "the bridge's link-local address", func() bool {
			return strings.Contains(run(t, "ip", "-6", "addr", "show", "dev", bridge, "scope", "link"), "fe80::")
		})
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(waitLimit); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// fakeUpstream runs a DNS server on 198.51.100.53 in netns "upstream" that
// knows upstream.test, and makes it the host's only resolver.
func fakeUpstream(t *testing.T) {
	t.Helper()
	run(t, "ip", "netns", "add", "upstream")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", "upstream").Run() })
	run(t, "ip", "link", "add", "ngup0", "type", "veth", "peer", "name", "eth0", "netns", "upstream")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "ngup0").Run() })
	run(t, "ip", "addr", "add", "198.51.100.1/24", "dev", "ngup0")
	run(t, "ip", "link", "set", "ngup0", "up")
	run(t, "ip", "-n", "upstream", "addr", "add", upstream+"/24", "dev", "eth0")
	run(t, "ip", "-n", "upstream", "link", "set", "eth0", "up")
	pidFile := filepath.Join(t.TempDir(), "upstream.pid")
	cmd := exec.Command("ip", "netns", "exec", "upstream", "dnsmasq", "--keep-in-foreground",
		"--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
		"--listen-address="+upstream, "--pid-file="+pidFile,
		"--address=/upstream.test/"+upAnswer)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitFor(t, "the fake upstream", func() bool { _, err := os.Stat(pidFile); return err == nil })

	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	writeFile(t, resolv, "nameserver "+upstream+"\n")
	if err := unix.Mount(resolv, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind-mounting resolv.conf: %v", err)
	}
	t.Cleanup(func() { unix.Unmount("/etc/resolv.conf", 0) })
}

func config(t *testing.T, dhcp, dns bool, log *slog.Logger) Config {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return Config{
		Network:   "test",
		Bridge:    bridge,
		Gateway:   netip.MustParseAddr(gateway),
		Prefix:    netip.MustParsePrefix("10.97.0.0/24"),
		DHCP:      dhcp,
		DHCPStart: netip.MustParseAddr("10.97.0.100"),
		DHCPEnd:   netip.MustParseAddr("10.97.0.150"),
		DNS:       dns,
		Dir:       stateDir(t),
		Identity:  testIdentity,
		Log:       log,
	}
}

// stateDir is a directory dnsmasq can reach under testIdentity, as
// netgrantd's state directory is.
func stateDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "dnsmasq-test")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's directories are 0700, two levels of them.
	for parent := filepath.Dir(dir); parent != os.TempDir(); parent = filepath.Dir(parent) {
		if err := os.Chmod(parent, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// testIdentity is what these tests run dnsmasq as; netgrantd itself
// gives each network's one of its own (DelegatedIDs).
var testIdentity = Identity{UID: 65534, GID: 65534}

func start(t *testing.T, cfg Config) (*Instance, <-chan []Lease) {
	t.Helper()
	reports := make(chan []Lease, 16)
	inst, err := Start(cfg, func(l []Lease) { reports <- l })
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { inst.Stop() })
	return inst, reports
}

// dhcpClient runs udhcpc in the guest, which configures the address it is
// given; it returns udhcpc's report ("ip=... dns=...") and whether it got a
// lease. In a fresh namespace the first discovers after start go
// unanswered for a few seconds, so udhcpc retries like any DHCP client.
func dhcpClient(t *testing.T) (string, bool) {
	t.Helper()
	script := filepath.Join(t.TempDir(), "udhcpc.sh")
	if err := os.WriteFile(script, []byte(`#!/bin/sh
[ "$1" = bound ] || exit 0
echo "bound ip=$ip mask=$mask router=$router dns=$dns"
/bin/busybox ip addr add "$ip/$mask" dev "$interface"
`), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", "guest", "/bin/busybox", "udhcpc",
		"-i", "eth0", "-n", "-q", "-f", "-t", "10", "-T", "1", "-s", script, "-x", "hostname:guest1").CombinedOutput()
	if err != nil {
		return string(out), false
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "bound ") {
			return line, true
		}
	}
	t.Fatalf("udhcpc succeeded without reporting a lease:\n%s", out)
	return "", false
}

func field(report, key string) string {
	for _, f := range strings.Fields(report) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

func lookup(name string) (string, error) {
	out, err := exec.Command("ip", "netns", "exec", "guest", "/bin/busybox", "nslookup", name, gateway).CombinedOutput()
	return string(out), err
}

// listening lists the DNS and DHCP server sockets in this network
// namespace as "udp 10.97.0.1:53". (dnsmasq's sockets for its own queries
// upstream are on random ports and left out.)
func listening(t *testing.T) []string {
	t.Helper()
	var socks []string
	for _, line := range strings.Split(run(t, "ss", "-Hlunt"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 5 && (strings.HasSuffix(f[4], ":53") || strings.HasSuffix(f[4], ":67")) {
			socks = append(socks, f[0]+" "+f[4])
		}
	}
	slices.Sort(socks)
	return socks
}

func waitForLease(t *testing.T, reports <-chan []Lease, ip string) Lease {
	t.Helper()
	timeout := time.After(waitLimit)
	for {
		select {
		case leases := <-reports:
			for _, l := range leases {
				if l.MAC == guestMAC && l.IP == ip {
					return l
				}
			}
		case <-timeout:
			t.Fatalf("no lease for %s at %s reported", guestMAC, ip)
		}
	}
}

func TestDHCPAndDNS(t *testing.T) {
	nstest.Require(t)
	network(t, true)
	fakeUpstream(t)
	inst, reports := start(t, config(t, true, true, nil))

	report, ok := dhcpClient(t)
	if !ok {
		t.Fatalf("udhcpc got no lease:\n%s", report)
	}
	ip := netip.MustParseAddr(field(report, "ip"))
	if ip.Less(netip.MustParseAddr("10.97.0.100")) || netip.MustParseAddr("10.97.0.150").Less(ip) {
		t.Errorf("leased %s, outside the range", ip)
	}
	if got := field(report, "router"); got != gateway {
		t.Errorf("router %q, want %s", got, gateway)
	}
	if got := field(report, "dns"); got != gateway {
		t.Errorf("dns %q, want %s", got, gateway)
	}
	lease := waitForLease(t, reports, ip.String())
	if lease.Hostname != "guest1" {
		t.Errorf("lease hostname %q, want guest1", lease.Hostname)
	}
	if until := time.Until(lease.Expiry); until <= 0 || until > time.Hour {
		t.Errorf("lease expires in %v, want within the hour", until)
	}
	if got := inst.Leases(); len(got) != 1 || got[0].MAC != guestMAC {
		t.Errorf("Leases() = %+v", got)
	}

	if out, err := lookup("upstream.test"); err != nil || !strings.Contains(out, upAnswer) {
		t.Errorf("resolving upstream.test through the gateway: %v\n%s", err, out)
	}
	if out, err := lookup("guest1"); err != nil || !strings.Contains(out, ip.String()) {
		t.Errorf("resolving the guest's DHCP name: %v\n%s", err, out)
	}

	// Only on the bridge: the gateway address, the DHCP socket bound to
	// the bridge device, and the bridge's own link-local address.
	socks := listening(t)
	for _, want := range []string{"udp " + gateway + ":53", "tcp " + gateway + ":53", "udp 0.0.0.0%" + bridge + ":67"} {
		if !slices.Contains(socks, want) {
			t.Errorf("not listening on %s; sockets: %v", want, socks)
		}
	}
	for _, s := range socks {
		if !strings.HasSuffix(s, " "+gateway+":53") && !strings.Contains(s, "%"+bridge+":") {
			t.Errorf("listening beyond the bridge: %s", s)
		}
	}
}

func TestListensOnGatewayOnly(t *testing.T) {
	nstest.Require(t)
	network(t, false)
	start(t, config(t, true, true, nil))
	want := []string{"tcp " + gateway + ":53", "udp 0.0.0.0%" + bridge + ":67", "udp " + gateway + ":53"}
	if got := listening(t); !slices.Equal(got, want) {
		t.Errorf("listening on %v, want %v", got, want)
	}
}

// warnings collects the messages logged at Warn.
type warnings struct {
	slog.Handler
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.mu.Lock()
		w.msgs = append(w.msgs, r.Message)
		w.mu.Unlock()
	}
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) logged(msg string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Contains(w.msgs, msg)
}

func TestRestartAfterCrashAndStop(t *testing.T) {
	nstest.Require(t)
	network(t, false)
	fakeUpstream(t)
	warn := &warnings{}
	inst, reports := start(t, config(t, true, true, slog.New(warn)))
	report, ok := dhcpClient(t)
	if !ok {
		t.Fatalf("udhcpc got no lease:\n%s", report)
	}
	waitForLease(t, reports, field(report, "ip"))

	old := inst.PID()
	if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new dnsmasq", func() bool { pid := inst.PID(); return pid != 0 && pid != old })
	if !warn.logged("dnsmasq for network test exited (signal: killed): restarting") {
		t.Errorf("crash not logged; warnings: %v", warn.msgs)
	}
	if out, err := lookup("upstream.test"); err != nil || !strings.Contains(out, upAnswer) {
		t.Errorf("no DNS after the restart: %v\n%s", err, out)
	}
	if got := inst.Leases(); len(got) != 1 || got[0].MAC != guestMAC {
		t.Errorf("leases after the restart: %+v", got)
	}

	pid := inst.PID()
	if err := inst.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("dnsmasq %d still exists after Stop: %v", pid, err)
	}
	if socks := listening(t); len(socks) != 0 {
		t.Errorf("still listening after Stop: %v", socks)
	}
}

func TestDHCPOff(t *testing.T) {
	nstest.Require(t)
	network(t, false)
	start(t, config(t, false, true, nil))
	if report, ok := dhcpClient(t); ok {
		t.Errorf("udhcpc got a lease with DHCP off: %s", report)
	}
	want := []string{"tcp " + gateway + ":53", "udp " + gateway + ":53"}
	if got := listening(t); !slices.Equal(got, want) {
		t.Errorf("listening on %v, want %v", got, want)
	}
}

func TestDNSOff(t *testing.T) {
	nstest.Require(t)
	network(t, false)
	_, reports := start(t, config(t, true, false, nil))
	report, ok := dhcpClient(t)
	if !ok {
		t.Fatalf("udhcpc got no lease:\n%s", report)
	}
	if dns := field(report, "dns"); dns != "" {
		t.Errorf("DHCP offers DNS server %q with DNS off", dns)
	}
	waitForLease(t, reports, field(report, "ip"))
	want := []string{"udp 0.0.0.0%" + bridge + ":67"}
	if got := listening(t); !slices.Equal(got, want) {
		t.Errorf("listening on %v, want %v", got, want)
	}
}

func TestStartFailureSaysWhy(t *testing.T) {
	nstest.Require(t)
	network(t, false)

	cfg := config(t, true, true, nil)
	cfg.Bridge = "ngbr9"
	if inst, err := Start(cfg, func([]Lease) {}); err == nil {
		inst.Stop()
		t.Fatal("Start succeeded on a missing bridge")
	} else if !strings.Contains(err.Error(), "ngbr9") {
		t.Errorf("error does not name the bridge: %v", err)
	}

	taken, err := net.ListenPacket("udp4", gateway+":53")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	if inst, err := Start(config(t, true, true, nil), func([]Lease) {}); err == nil {
		inst.Stop()
		t.Fatal("Start succeeded with port 53 taken")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error does not say the address is in use: %v", err)
	}
	if socks := listening(t); !slices.Equal(socks, []string{"udp " + gateway + ":53"}) {
		t.Errorf("a failed Start left sockets behind: %v", socks)
	}
}

func TestAvailable(t *testing.T) {
	nstest.Require(t)
	if err := Available(); err != nil {
		t.Fatalf("Available with dnsmasq installed: %v", err)
	}
	bin, _ := binary()
	// Hide the binary: /dev/null is not executable.
	if err := unix.Mount("/dev/null", bin, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(bin, 0)
	t.Setenv("PATH", "/nonexistent")
	err := Available()
	if err == nil || !strings.Contains(err.Error(), "install the dnsmasq-base package") {
		t.Errorf("Available without dnsmasq: %v", err)
	}
}

// The configuration the netgrant-dnsmasq@ unit reads holds the command
// line's options but those that would keep dnsmasq from daemonizing (how
// systemd learns it serves), and dnsmasq itself accepts it.
func TestUnitConfigurationIsTheCommandLine(t *testing.T) {
	cfg := config(t, true, true, nil)
	cfg.Unit = true
	conf := string(cfg.conf())
	for _, want := range []string{"interface=" + bridge + "\n", "listen-address=" + gateway + "\n", "pid-file=\n",
		"dhcp-leasefile=/run/netgrant-dnsmasq/" + bridge + "/leases\n", "dhcp-range=10.97.0.100,10.97.0.150,255.255.255.0,1h\n", "no-hosts\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("configuration lacks %q:\n%s", want, conf)
		}
	}
	// The unit starts dnsmasq under its dynamic user: there is nobody
	// to change to.
	for _, unwanted := range []string{"keep-in-foreground", "log-facility", "conf-file", "--", "user=", "group="} {
		if strings.Contains(conf, unwanted) {
			t.Errorf("configuration has %q:\n%s", unwanted, conf)
		}
	}
	bin, err := binary()
	if err != nil {
		t.Skip(err)
	}
	file := filepath.Join(t.TempDir(), "dnsmasq.conf")
	writeFile(t, file, conf)
	if out, err := exec.Command(bin, "--test", "--conf-file="+file).CombinedOutput(); err != nil {
		t.Errorf("dnsmasq --test refuses the configuration: %v\n%s", err, out)
	}
}

func TestUnitNeedsItsStateDirectory(t *testing.T) {
	cfg := config(t, true, true, nil)
	cfg.Unit = true
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), UnitDir(cfg.Bridge)) {
		t.Errorf("a unit with state in %s: %v, want an error naming %s", cfg.Dir, err, UnitDir(cfg.Bridge))
	}
}
