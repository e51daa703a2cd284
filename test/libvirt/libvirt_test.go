package libvirt_test

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

var rules = harness.Rules(map[string]string{harness.UserAlice: "YES"})

// The outside: 198.51.100.2, the host's default route, answering DNS for
// upstream.test and serving a banner on TCP 8080.
const (
	upstreamAddr   = "198.51.100.2"
	upstreamBanner = "hello-from-upstream"
)

func addUpstream(t *testing.T) {
	up := harness.AddUpstream(t, harness.UpstreamOptions{Name: "up", HostAddr: "198.51.100.1/24", PeerAddr: upstreamAddr + "/24", DefaultRoute: true})
	for _, cmd := range [][]string{
		{"dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
			"--listen-address=" + upstreamAddr, "--address=/upstream.test/" + upstreamAddr, "--pid-file="},
		{"busybox", "nc", "-ll", "-p", "8080", "-e", "/bin/echo", upstreamBanner},
	} {
		c := up.Command(cmd[0], cmd[1:]...)
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	resolvConf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolvConf, []byte("nameserver "+upstreamAddr+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(resolvConf, "/etc/resolv.conf", "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount("/etc/resolv.conf", 0) })
}

// tapMACs are the MACs of the taps on network, as Tap.MAC shows them.
func tapMACs(env *harness.Env, network string) []string {
	var macs []string
	for _, ifaces := range env.ManagedObjects() {
		if tap, ok := ifaces[names.TapInterface]; ok && tap["Network"].Value() == names.NetworkPath(network) {
			macs = append(macs, tap["MAC"].Value().(string))
		}
	}
	return macs
}

// banner reads the first line a guest's listener sends.
func banner(addr string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

// A libvirt session user, as virt-manager and GNOME Boxes are, runs VMs
// on netgrant networks with nothing but bridge_helper set: the guest gets
// its lease for the MAC in its domain's XML (libvirt runs the helper, which
// cannot read QEMU's command line, so the network learns the MAC), names
// and the outside; a guest that forges another's MAC gets nothing; a
// domain with two NICs gets two leases; a domain on ng-user-<uid> creates
// the user's network, which goes with the domain; guests keep working
// across virsh destroy and start and netgrantd's restart.
func TestLibvirtSession(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	addUpstream(t)
	alice := env.Client(t, harness.UserAlice)
	for _, network := range []string{"lab", "lab2"} {
		if _, _, err := alice.CreateNATNetwork(network, nil); err != nil {
			t.Fatal(err)
		}
	}
	s := startSession(t, harness.UserAlice)

	// The domain's own MAC, learnt: lease, names, the outside.
	const oneMAC = "52:54:00:4e:00:01"
	one := s.define("one", guest.Checks{
		PingGateway: true, ResolveName: "upstream.test", Connect: []string{upstreamAddr + ":8080"}, ListenPort: 7000, StayUp: true,
	}, nic{oneMAC, names.BridgeName("lab")})
	one.start()
	results := one.results()
	lease := guest.Lease(one.lines())
	if lease == "" || !results["ping"].OK || !results["resolve"].OK || results["resolve"].Detail != upstreamAddr ||
		!results["connect:"+upstreamAddr+":8080"].OK || !strings.Contains(results["connect:"+upstreamAddr+":8080"].Detail, upstreamBanner) {
		t.Fatalf("the domain's guest: lease %q, checks %v", lease, results)
	}
	if macs := tapMACs(env, "lab"); len(macs) != 1 || macs[0] != oneMAC {
		t.Errorf("Tap.MAC of the domain's tap: %v, want %s", macs, oneMAC)
	}
	leases := fmt.Sprint(env.Property(names.NetworkPath("lab"), names.NetworkInterface, "Leases"))
	if !strings.Contains(leases, oneMAC+" "+lease) {
		t.Errorf("Network.Leases %v lack %s at %s", leases, oneMAC, lease)
	}

	// A second domain that forges the first one's MAC gets nothing.
	forger := s.define("forger", guest.Checks{PingGateway: true}, nic{oneMAC, names.BridgeName("lab")})
	forger.start()
	if results := forger.results(); guest.Lease(forger.lines()) != "" || results["ping"].OK {
		t.Errorf("a domain forging %s got lease %q, checks %v", oneMAC, guest.Lease(forger.lines()), results)
	}
	if macs := tapMACs(env, "lab"); len(macs) != 2 || !(macs[0] == "" || macs[1] == "") {
		t.Errorf("the forger's tap learnt a MAC: %v", macs)
	}
	forger.destroy()

	// Two NICs on two networks.
	two := s.define("two", guest.Checks{NICs: 2}, nic{"52:54:00:4e:00:02", names.BridgeName("lab")}, nic{"52:54:00:4e:00:03", names.BridgeName("lab2")})
	two.start()
	if results := two.results(); guest.Lease(two.lines()) == "" || !results["lease:eth1"].OK {
		t.Errorf("a domain with two NICs: lease %q, checks %v", guest.Lease(two.lines()), results)
	}
	two.destroy()

	// The user's own network: no setup, and gone with the domain.
	own := names.BridgeName("user-4001")
	mine := s.define("mine", guest.Checks{PingGateway: true, StayUp: true}, nic{"52:54:00:4e:00:04", own})
	mine.start()
	if results := mine.results(); guest.Lease(mine.lines()) == "" || !results["ping"].OK {
		t.Errorf("a domain on %s: lease %q, checks %v", own, guest.Lease(mine.lines()), results)
	}
	if links := harness.Links(t, own); len(links) != 1 {
		t.Errorf("%s does not exist while its domain runs: %v", own, links)
	}
	mine.destroy()
	harness.WaitFor(t, "the user's network to go with its domain", func() bool {
		_, present := env.ManagedObjects()[names.NetworkPath("user-4001")]
		return !present && len(harness.Links(t, own)) == 0
	})

	// A refusal reaches the user through libvirt's own error message, with
	// the helper's reason.
	nowhere := s.define("nowhere", guest.Checks{}, nic{"52:54:00:4e:00:06", "ng-nowhere"})
	if out, err := s.virsh("start", nowhere.name); err == nil || !strings.Contains(out, `no netgrant network has the bridge "ng-nowhere": create the network first`) {
		t.Errorf("starting a domain on a bridge that is neither a network's nor allowed: %v\n%s", err, out)
	} else {
		t.Logf("ngalice$ virsh -c qemu:///session start nowhere\n%s", out)
	}

	// destroy and start again, then netgrantd restarts under the
	// running guest.
	one.destroy()
	one.start()
	one.results()
	lease = guest.Lease(one.lines())
	if line, err := banner(lease + ":7000"); err != nil || line != guest.Banner {
		t.Fatalf("the guest started again: %q, %v", line, err)
	}
	env.RestartDaemon()
	if line, err := banner(lease + ":7000"); err != nil || line != guest.Banner {
		t.Errorf("the guest after netgrantd restarted: %q, %v", line, err)
	}
	if macs := tapMACs(env, "lab"); len(macs) != 1 || macs[0] != oneMAC {
		t.Errorf("Tap.MAC after the restart: %v, want %s", macs, oneMAC)
	}
	one.destroy()

	// virt-install, as a user would make a VM from the command line.
	vi := &domain{s: s, name: "vi", console: filepath.Join(s.dir, "vm", "vi.console")}
	args := []string{"--connect", "qemu:///session", "--name", "vi", "--virt-type", domainType, "--memory", "256", "--vcpus", "1",
		"--osinfo", "generic", "--import", "--disk", "none", "--graphics", "none", "--noautoconsole",
		"--boot", "kernel=" + s.kit.Kernel + ",initrd=" + s.kit.Initrd + ",kernel_args=" + s.kit.KernelArgs(guest.Checks{PingGateway: true}),
		"--network", "bridge=" + names.BridgeName("lab") + ",model=virtio,mac=52:54:00:4e:00:05",
		"--serial", "file,path=" + vi.console}
	out, err := s.command("virt-install", args...).CombinedOutput()
	t.Logf("%s$ virt-install %s\n%s", s.user, strings.Join(args, " "), out)
	if err != nil {
		t.Fatalf("virt-install: %v", err)
	}
	if results := vi.results(); guest.Lease(vi.lines()) == "" || !results["ping"].OK {
		t.Errorf("virt-install's guest: lease %q, checks %v", guest.Lease(vi.lines()), results)
	}
}
