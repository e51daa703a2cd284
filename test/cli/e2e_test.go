package cli_test

import (
	"net"

	"github.com/godbus/dbus/v5"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

// bootTimeout bounds a guest's boot and checks under TCG.
const bootTimeout = 4 * time.Minute

// guestArgs are QEMU's arguments for the test guest, its kernel and initrd
// copied where the test users can read them (the kit's cache is root's).
func guestArgs(t *testing.T) []string {
	t.Helper()
	return guestArgsWith(t, guest.Checks{})
}

// guestArgsWith is guestArgs with checks besides pinging the gateway.
func guestArgsWith(t *testing.T, checks guest.Checks) []string {
	t.Helper()
	kit := guest.Prepare(t)
	dir := filepath.Dir(bin(t, "netgrant"))
	readable := guest.Kit{Kernel: filepath.Join(dir, "vmlinuz"), Initrd: filepath.Join(dir, "initrd.img")}
	for src, dst := range map[string]string{kit.Kernel: readable.Kernel, kit.Initrd: readable.Initrd} {
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The guest stays up until the test is done with it: its tap and lease
	// must still be there when the test looks.
	checks.PingGateway, checks.StayUp = true, true
	return readable.QEMUArgs(checks)
}

// startGuest runs cmd (QEMU, or a wrapper that runs it) with its process
// group killed at the end, so a QEMU whose wrapper was killed goes too.
func startGuest(t *testing.T, cmd *exec.Cmd) *guest.VM {
	t.Helper()
	cmd.SysProcAttr.Setpgid = true
	vm := guest.Start(t, cmd)
	t.Cleanup(func() { syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) })
	return vm
}

// wantLeaseIn waits for the guest's checks and wants a lease in subnet and
// the gateway answering pings.
func wantLeaseIn(t *testing.T, vm *guest.VM, subnet string) string {
	t.Helper()
	results, err := vm.Results(bootTimeout)
	if err != nil {
		t.Fatal(err)
	}
	_, ipnet, _ := net.ParseCIDR(subnet)
	lease := vm.Lease()
	if ip := net.ParseIP(lease); ip == nil || !ipnet.Contains(ip) {
		t.Fatalf("guest lease %q, want one in %s", lease, subnet)
	}
	if !results["ping"].OK {
		t.Errorf("guest could not ping its gateway: %s", results["ping"].Detail)
	}
	return lease
}

// netgrant run boots a guest on a network it joins, forwards a host port
// to the guest's service for as long as the guest runs (--forward, like
// podman's -p), and takes the forward away when the guest exits.
func TestRunBootsGuestOnNetwork(t *testing.T) {
	qemuArgs := guestArgsWith(t, guest.Checks{ListenPort: 7000})
	env := harness.Start(t, harness.Options{Rules: rules})
	up := harness.AddUpstream(t, harness.UpstreamOptions{Name: "up", HostAddr: "198.51.100.1/24", PeerAddr: "198.51.100.2/24"})
	// Another holder keeps the network after the guest: the forward must
	// go with the guest, not with the network.
	holder := env.Client(t, harness.UserAlice)
	netPath, _, err := holder.CreateNATNetwork("demo", map[string]dbus.Variant{"subnet": dbus.MakeVariant("10.97.11.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"run", "--network", "demo", "--subnet", "10.97.11.0/24", "--forward", "tcp:2222:7000", "--", "qemu-system-x86_64"}, qemuArgs...)
	args = append(args, "-netdev", "tap,id=n0,fd={fd}", "-device", "virtio-net-pci,netdev=n0,mac={mac}")
	cmd := commandAs(t, harness.UserAlice, bin(t, "netgrant"), args...)
	t.Logf("ngalice$ netgrant %s", strings.Join(args, " "))
	vm := startGuest(t, cmd)
	lease := wantLeaseIn(t, vm, "10.97.11.0/24")

	// The lease shows in netgrant list, on the tap the CLI created.
	var out string
	eventually(t, "listing the lease", func() bool {
		out = netgrant(t, harness.UserAlice, "list").stdout
		return strings.Contains(out, lease)
	})
	if !strings.Contains(out, "demo") || !strings.Contains(out, "ngtap") {
		t.Errorf("list:\n%s", out)
	}
	// The upstream test host reaches the guest's service through the
	// forward, to the tap's address.
	fromUpstream := func() (string, error) {
		out, err := up.Command("busybox", "nc", "-w", "5", "198.51.100.1", "2222").CombinedOutput()
		return string(out), err
	}
	if got, err := fromUpstream(); err != nil || !strings.Contains(got, guest.Banner) {
		t.Errorf("upstream through the forwarded 198.51.100.1:2222: %q, %v; want the guest's banner", got, err)
	}
	forwards := env.Property(netPath, "org.netgrant.NetGrant1.Network", "PortForwards").([][]any)
	if len(forwards) != 1 || forwards[0][2] != lease || forwards[0][3] != uint16(7000) {
		t.Errorf("PortForwards %v, want tcp 2222 to %s port 7000", forwards, lease)
	}

	// SIGTERM goes on to QEMU; once it is gone, so is the forward, while
	// the network stays with its other holder.
	cmd.Process.Signal(syscall.SIGTERM)
	eventually(t, "the forward to go once the guest exited", func() bool {
		return len(env.Property(netPath, "org.netgrant.NetGrant1.Network", "PortForwards").([][]any)) == 0
	})
	if got, err := fromUpstream(); err == nil && strings.Contains(got, guest.Banner) {
		t.Errorf("after the guest exited upstream still reaches it: %q", got)
	}
	holder.Exit()
	eventually(t, "torn down once its holder left", func() bool { return !networkExists(t, env, "demo") })
}

func TestQEMUBridgeHelperBootsGuest(t *testing.T) {
	qemuArgs := guestArgs(t)
	env := harness.Start(t, harness.Options{Rules: rules})
	bridge := createHeldNetwork(t, env, "bridged", "10.97.12.0/24")
	args := append(qemuArgs, "-netdev", "bridge,id=n0,br="+bridge+",helper="+bin(t, "netgrant-bridge-helper"),
		"-device", "virtio-net-pci,netdev=n0")
	t.Logf("ngalice$ qemu-system-x86_64 %s", strings.Join(args, " "))
	vm := startGuest(t, commandAs(t, harness.UserAlice, "qemu-system-x86_64", args...))
	wantLeaseIn(t, vm, "10.97.12.0/24")
}

func TestQEMUBridgeHelperRefused(t *testing.T) {
	qemuArgs := guestArgs(t)
	harness.Start(t, harness.Options{Rules: rules})
	args := append(qemuArgs, "-netdev", "bridge,id=n0,br=br0,helper="+bin(t, "netgrant-bridge-helper"),
		"-device", "virtio-net-pci,netdev=n0")
	r := runAs(t, harness.UserAlice, "qemu-system-x86_64", args...)
	if r.code == 0 || !strings.Contains(r.stderr, `netgrant-bridge-helper: cannot get a tap on bridge br0: bridge "br0" is not listed in [Bridges] Allow=`) {
		t.Errorf("QEMU with a refused bridge: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestPythonExampleBootsGuest(t *testing.T) {
	if err := exec.Command("/usr/bin/python3", "-c", "import gi").Run(); err != nil {
		t.Skip("python3-gi is not installed")
	}
	qemuArgs := guestArgs(t)
	env := harness.Start(t, harness.Options{Rules: rules})
	args := append([]string{"pydemo", "qemu-system-x86_64"}, qemuArgs...)
	t.Logf("ngalice$ netgrant-qemu.py %s", strings.Join(args, " "))
	vm := startGuest(t, commandAs(t, harness.UserAlice, bin(t, "netgrant-qemu.py"), args...))
	wantLeaseIn(t, vm, "10.97.0.0/16")
	if !networkExists(t, env, "pydemo") {
		t.Error("the network is gone while the example's QEMU runs")
	}
}
