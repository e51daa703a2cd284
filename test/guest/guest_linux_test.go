package guest_test

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/nstest"
)

func TestMain(m *testing.M) {
	guest.PrepareBeforeSandbox()
	nstest.Main(m)
}

const (
	gateway    = "10.97.0.1"
	hostBanner = "hello-from-host"
	bootLimit  = 3 * time.Minute // generous: TCG on a loaded machine
)

// TestGuestChecksNetwork boots two guests on one bridge, one using DHCP and
// one a static address, and checks that what they report matches the
// network the test built.
func TestGuestChecksNetwork(t *testing.T) {
	nstest.Require(t)
	kit := guest.Prepare(t)

	run(t, "ip", "link", "add", "br0", "type", "bridge")
	run(t, "ip", "addr", "add", gateway+"/24", "dev", "br0")
	run(t, "ip", "link", "set", "br0", "up")
	dhcpTap := openTap(t, "ngtest0")
	staticTap := openTap(t, "ngtest1")
	leaseFile := startDnsmasq(t)
	serveBanner(t, gateway+":8080")

	start := time.Now()
	dhcpGuest := guest.Boot(t, kit, dhcpTap, "52:54:00:00:97:01", guest.Checks{
		PingGateway: true,
		ResolveName: "upstream.test",
		Connect:     []string{gateway + ":8080", gateway + ":8081"},
		ListenPort:  7000,
		StayUp:      true,
	})
	staticGuest := guest.Boot(t, kit, staticTap, "52:54:00:00:97:02", guest.Checks{
		StaticIP:    "10.97.0.50/24",
		Gateway:     gateway,
		PingGateway: true,
		Connect:     []string{gateway + ":8080"},
	})

	if _, err := dhcpGuest.WaitLine("NETGRANT-LEASE", bootLimit); err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to DHCP lease took %v (two guests booting at once)", time.Since(start).Round(time.Millisecond))
	results, err := dhcpGuest.Results(bootLimit)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot to all checks done took %v", time.Since(start).Round(time.Millisecond))

	lease := dhcpGuest.Lease()
	if ip := net.ParseIP(lease).To4(); ip == nil || !net.IPv4(10, 97, 0, 0).Equal(ip.Mask(net.CIDRMask(24, 32))) || ip[3] < 2 || ip[3] == 255 {
		t.Errorf("guest reports lease %q, want an address in 10.97.0.2-10.97.0.254", lease)
	}
	if granted := dnsmasqLease(t, leaseFile, "52:54:00:00:97:01"); granted != lease {
		t.Errorf("guest reports lease %q, dnsmasq granted %q", lease, granted)
	}
	want := map[string]guest.Result{
		"listen":                       {OK: true, Detail: "7000"},
		"ping":                         {OK: true, Detail: gateway},
		"resolve":                      {OK: true, Detail: "198.51.100.7"},
		"connect:" + gateway + ":8080": {OK: true, Detail: "connected " + hostBanner},
	}
	for name, w := range want {
		if got, ok := results[name]; !ok || got != w {
			t.Errorf("DHCP guest result %s = %+v (reported: %v), want %+v", name, got, ok, w)
		}
	}
	if got := results["connect:"+gateway+":8081"]; got.OK || !strings.Contains(got.Detail, "refused") {
		t.Errorf("DHCP guest connecting to a closed port reports %+v, want a refused failure", got)
	}

	conn, err := net.DialTimeout("tcp", net.JoinHostPort(lease, "7000"), 10*time.Second)
	if err != nil {
		t.Fatalf("connecting to the guest's listener: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if line, err := bufio.NewReader(conn).ReadString('\n'); err != nil || strings.TrimSpace(line) != guest.Banner {
		t.Errorf("guest listener sent %q (%v), want %q", line, err, guest.Banner)
	}

	staticResults, err := staticGuest.Results(bootLimit)
	if err != nil {
		t.Fatal(err)
	}
	if lease := staticGuest.Lease(); lease != "" {
		t.Errorf("static guest reports DHCP lease %q, want none", lease)
	}
	for _, name := range []string{"ping", "connect:" + gateway + ":8080"} {
		if !staticResults[name].OK {
			t.Errorf("static guest result %s = %+v, want ok", name, staticResults[name])
		}
	}
	if _, err := staticGuest.WaitLine("NETGRANT-RESULT resolve", 0); err == nil {
		t.Error("static guest ran a resolve check it was not asked for")
	}
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// openTap creates a tap on br0 the way netgrantd hands them out: with
// vnet headers, non-persistent, existing while the returned file is open.
func openTap(t *testing.T, name string) *os.File {
	t.Helper()
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	tap := os.NewFile(uintptr(fd), "/dev/net/tun")
	t.Cleanup(func() { tap.Close() })
	req, err := unix.NewIfreq(name)
	if err != nil {
		t.Fatal(err)
	}
	req.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, req); err != nil {
		t.Fatalf("creating tap %s: %v", name, err)
	}
	run(t, "ip", "link", "set", name, "master", "br0", "up")
	return tap
}

func startDnsmasq(t *testing.T) (leaseFile string) {
	t.Helper()
	dir := t.TempDir()
	leaseFile = filepath.Join(dir, "leases")
	cmd := exec.Command("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null",
		"--bind-interfaces", "--interface=br0", "--listen-address="+gateway,
		"--except-interface=lo", "--no-resolv", "--no-hosts", "--user=root",
		"--pid-file="+filepath.Join(dir, "pid"), "--log-facility=-",
		"--dhcp-range=10.97.0.2,10.97.0.254,1h", "--dhcp-leasefile="+leaseFile, "--no-ping",
		"--address=/upstream.test/198.51.100.7")
	cmd.Stdout = logWriter{t}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return leaseFile
}

// dnsmasqLease is the address dnsmasq's lease file records for mac.
func dnsmasqLease(t *testing.T, leaseFile, mac string) string {
	t.Helper()
	data, err := os.ReadFile(leaseFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if fields := strings.Fields(line); len(fields) >= 3 && fields[1] == mac {
			return fields[2]
		}
	}
	return ""
}

// serveBanner answers every connection to addr with hostBanner.
func serveBanner(t *testing.T, addr string) {
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
			conn.Write([]byte(hostBanner + "\n"))
			conn.Close()
		}
	}()
}

// logWriter passes a daemon's log lines to t.Log, so they show with the
// test that caused them.
type logWriter struct{ t *testing.T }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// BenchmarkBootToLease measures the time from starting QEMU to the guest's
// DHCP lease, on QEMU's user network so it needs no bridge.
func BenchmarkBootToLease(b *testing.B) {
	nstest.Require(b)
	kit := guest.Prepare(b)
	for range b.N {
		args := append(kit.QEMUArgs(guest.Checks{}), "-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0")
		vm := guest.Start(b, exec.Command("qemu-system-x86_64", args...))
		line, err := vm.WaitLine("NETGRANT-LEASE", bootLimit)
		if err != nil {
			b.Fatal(err)
		}
		if vm.Lease() == "" {
			b.Fatalf("guest got no lease: %s", line)
		}
		vm.Stop()
	}
}
