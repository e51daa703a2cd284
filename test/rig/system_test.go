package rig_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
	"golang.org/x/sys/unix"
)

// The container's users: ngalice logs in on its seat; ngbob has no session
// and no group; ngcarol has no session but is in the group "netgrant";
// ngadmin is in sudo, the group Debian's polkit asks for an administrator.
const (
	alice         = "ngalice"
	bob           = "ngbob"
	carol         = "ngcarol"
	admin         = "ngadmin"
	adminPassword = "netgrant-rig-admin"
)

var (
	systemOnce sync.Once
	booted     *container
	bootErr    error
	// readyTime is from unpacking the rootfs to netgrant installed.
	readyTime time.Duration
)

// system returns the booted container with netgrant's package installed,
// booting it on first use.
func system(t *testing.T) *container {
	t.Helper()
	requireRoot(t)
	if errRootfs != nil {
		t.Fatalf("no rootfs for the container: %v", errRootfs)
	}
	deb := debianPackage(t)
	systemOnce.Do(func() {
		start := time.Now()
		booted, bootErr = boot(rootfsTar, func(root string) error {
			data, err := os.ReadFile(deb)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(root, "root", filepath.Base(deb)), data, 0o644)
		})
		if bootErr == nil {
			bootErr = setUp(booted, "/root/"+filepath.Base(deb))
		}
		readyTime = time.Since(start)
	})
	if bootErr != nil {
		t.Fatal(bootErr)
	}
	return booted
}

// setUp installs the package as an administrator would and adds the users
// and a hook.
func setUp(c *container, deb string) error {
	install := c.command("apt-get", "install", "-y", "--no-install-recommends", deb)
	install.Env = append(install.Env, "DEBIAN_FRONTEND=noninteractive")
	if out, err := install.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get install %s: %w\n%s", deb, err, out)
	}
	steps := [][]string{
		{"useradd", "-m", alice},
		{"useradd", "-m", bob},
		{"useradd", "-m", "-G", "netgrant", carol},
		{"useradd", "-m", "-G", "sudo", admin},
		// A host bridge the administrator lets taps join.
		{"ip", "link", "add", hostBridge, "type", "bridge"},
	}
	for _, step := range steps {
		if out, err := c.command(step...).CombinedOutput(); err != nil {
			return fmt.Errorf("%v: %w\n%s", step, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(c.dir, "etc/netgrant/netgrant.conf"), []byte("[Bridges]\nAllow="+hostBridge+"\n"), 0o644); err != nil {
		return err
	}
	chpasswd := c.command("chpasswd")
	chpasswd.Stdin = strings.NewReader(admin + ":" + adminPassword + "\n")
	if out, err := chpasswd.CombinedOutput(); err != nil {
		return fmt.Errorf("chpasswd: %w\n%s", err, out)
	}
	// A hook that needs what netgrantd's sandbox grants: it names each
	// network's bridge after the network.
	hook := "#!/bin/sh\n[ \"$1\" = network-up ] && exec ip link set dev \"$NETGRANT_BRIDGE\" alias \"hooked-$NETGRANT_NETWORK\"\nexit 0\n"
	return os.WriteFile(filepath.Join(c.dir, "etc/netgrant/hooks.d/50-alias"), []byte(hook), 0o755)
}

// hostBridge is the container's bridge listed in [Bridges] Allow=.
const hostBridge = "rigbr0"

// gdbusCall is a call on netgrant's Manager as a script makes it.
func gdbusCall(method string, args ...string) []string {
	return append([]string{"gdbus", "call", "--system", "-d", "org.netgrant.NetGrant1",
		"-o", "/org/netgrant/NetGrant1", "-m", "org.netgrant.NetGrant1.Manager." + method}, args...)
}

func output(cmd *exec.Cmd) string {
	out, _ := cmd.CombinedOutput()
	return strings.TrimSpace(string(out))
}

func (c *container) unitProperty(unit, property string) string {
	return output(c.command("systemctl", "show", "-p", property, "--value", unit))
}

func TestRealSystem(t *testing.T) {
	c := system(t)
	t.Logf("systemd booted the container in %v; from unpacking the rootfs to netgrant installed with apt-get: %v",
		c.bootTime.Round(time.Millisecond), readyTime.Round(time.Millisecond))

	t.Run("ActivatedByTheFirstCall", func(t *testing.T) { activation(t, c) })
	t.Run("PolkitDecidesBySession", func(t *testing.T) { polkitBySession(t, c) })
	t.Run("GuestAcrossRestartAndIdleExit", func(t *testing.T) { guestLifecycle(t, c) })
	t.Run("PasswordPromptOutsideASession", func(t *testing.T) { passwordPrompt(t, c) })
	t.Run("SandboxScore", func(t *testing.T) { sandboxScore(t, c) })
}

func activation(t *testing.T, c *container) {
	if state := c.unitProperty("netgrantd", "ActiveState"); state != "inactive" {
		t.Fatalf("netgrantd is %q before any call", state)
	}
	out := output(c.inSession(alice, "", gdbusCall("CreateTap", "{}")...))
	t.Logf("ngalice in her session$ gdbus call … CreateTap {}\n%s", out)
	if !strings.Contains(out, "/org/netgrant/NetGrant1/tap/") {
		t.Fatalf("CreateTap failed")
	}
	if state := c.unitProperty("netgrantd", "ActiveState"); state != "active" {
		t.Fatalf("netgrantd is %q after the first call", state)
	}
	t.Logf("systemctl status netgrantd:\n%s", output(c.command("systemctl", "status", "--no-pager", "netgrantd")))
	bus := output(c.command("journalctl", "-u", "dbus", "-o", "cat", "--no-pager"))
	for _, line := range []string{
		"Activating via systemd: service name='org.netgrant.NetGrant1' unit='netgrantd.service'",
		"Successfully activated service 'org.netgrant.NetGrant1'",
	} {
		if !strings.Contains(bus, line) {
			t.Errorf("journalctl -u dbus lacks %q:\n%s", line, bus)
		}
	}
	own := output(c.command("journalctl", "-u", "netgrantd", "-o", "cat", "--no-pager"))
	t.Logf("journalctl -u netgrantd:\n%s", own)
	if !strings.Contains(own, "netgrantd ready") {
		t.Errorf("netgrantd's own log lines are not in the journal")
	}
}

// polkitBySession has no rules file of the test's: polkit decides by the
// caller's logind session and by the package's rule for group netgrant.
// Putting a guest on a host bridge, where no guest filter applies, takes
// an administrator from anyone: the group rule once granted it to its
// members from anywhere (ssh, cron), more than its comment said.
func polkitBySession(t *testing.T, c *container) {
	const denied = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	for i, tc := range []struct {
		who     string
		cmd     func(args ...string) *exec.Cmd
		allowed bool
	}{
		{"ngalice in an active local session", func(args ...string) *exec.Cmd { return c.inSession(alice, "", args...) }, true},
		{"ngalice outside any session", func(args ...string) *exec.Cmd { return c.asUser(alice, args...) }, false},
		{"ngcarol (group netgrant) outside any session", func(args ...string) *exec.Cmd { return c.asUser(carol, args...) }, true},
	} {
		for _, call := range []struct {
			args    []string
			allowed bool
		}{
			{gdbusCall("CreateTap", "{}"), tc.allowed},
			{gdbusCall("CreateNATNetwork", fmt.Sprintf("'sess%d'", i), "{}"), tc.allowed},
			// A network kept until it is deleted, as virsh net-create
			// gives any libvirt user (API 1.2).
			{gdbusCall("CreateNATNetwork", fmt.Sprintf("'kept%d'", i), "{'persistent': <true>}"), tc.allowed},
			{gdbusCall("CreateTap", "{'bridge': <'"+hostBridge+"'>}"), false},
		} {
			out := output(tc.cmd(call.args...))
			t.Logf("%s: %s\n%s", tc.who, strings.Join(call.args[8:], " "), out)
			switch {
			case call.allowed && !strings.HasPrefix(out, "(objectpath '/org/netgrant/NetGrant1/"):
				t.Errorf("%s was refused %s", tc.who, strings.Join(call.args[8:], " "))
			case call.allowed && strings.Contains(call.args[9], "kept"):
				c.run(t, "gdbus", "call", "--system", "-d", "org.netgrant.NetGrant1", "-o", "/org/netgrant/NetGrant1/network/"+strings.Trim(call.args[9], "'"),
					"-m", "org.netgrant.NetGrant1.Network.Delete")
			case !call.allowed && !strings.Contains(out, denied):
				t.Errorf("%s was not answered %s to %s", tc.who, denied, strings.Join(call.args[8:], " "))
			}
		}
	}
}

// upstream is a host outside the container on TEST-NET-2, joined to it by a
// veth pair; it serves a banner and records who connected.
type upstream struct {
	pid   int
	mu    sync.Mutex
	peers []string
}

const (
	uplinkAddr   = "198.51.100.1"
	upstreamAddr = "198.51.100.2"
	upstreamPort = "7000"
	guestPort    = 8080
)

func addUpstream(t *testing.T, c *container) *upstream {
	holder := exec.Command("unshare", "--net", "--", "sleep", "infinity")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	u := &upstream{pid: holder.Process.Pid}
	// unshare execs sleep once the namespace is made: wait for that.
	for {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", u.pid)); strings.TrimSpace(string(comm)) == "sleep" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	veth := []string{"link", "add", "rigup0", "netns", strconv.Itoa(c.leader), "type", "veth", "peer", "name", "eth0", "netns", strconv.Itoa(u.pid)}
	if out, err := exec.Command("ip", veth...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v\n%s", veth, err, out)
	}
	err := inNetnsOf(u.pid, func() error {
		for _, args := range [][]string{
			{"link", "set", "lo", "up"},
			{"addr", "add", upstreamAddr + "/24", "dev", "eth0"},
			{"link", "set", "eth0", "up"},
		} {
			if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
				return fmt.Errorf("ip %v: %w: %s", args, err, out)
			}
		}
		l, err := net.Listen("tcp", net.JoinHostPort(upstreamAddr, upstreamPort))
		if err != nil {
			return err
		}
		t.Cleanup(func() { l.Close() })
		go u.serve(l)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	c.run(t, "ip", "addr", "add", uplinkAddr+"/24", "dev", "rigup0")
	c.run(t, "ip", "link", "set", "rigup0", "up")
	c.run(t, "ip", "route", "add", "default", "via", upstreamAddr)
	return u
}

func (u *upstream) serve(l net.Listener) {
	for {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		u.mu.Lock()
		u.peers = append(u.peers, conn.RemoteAddr().(*net.TCPAddr).IP.String())
		u.mu.Unlock()
		conn.Write([]byte("upstream-banner\n"))
		conn.Close()
	}
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.peers...)
}

// tapHolder finds the process netgrant run started with the tap and takes
// a copy of its tap fd, so a QEMU outside the container can be the guest:
// netgrant's job ends with the fd, wherever it goes.
func tapHolder(t *testing.T, c *container) (tap *os.File, mac string) {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			env, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			vars := map[string]string{}
			for _, kv := range strings.Split(string(env), "\x00") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					vars[k] = v
				}
			}
			fdText, ok := vars["NETGRANT_TAP_FDS"]
			if !ok {
				continue
			}
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			fd, _ := strconv.Atoi(strings.Split(fdText, ":")[0])
			pidfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				t.Fatalf("pidfd_open %d: %v", pid, err)
			}
			copied, err := unix.PidfdGetfd(pidfd, fd, 0)
			unix.Close(pidfd)
			if err != nil {
				t.Fatalf("pidfd_getfd %d/%d: %v", pid, fd, err)
			}
			return os.NewFile(uintptr(copied), "tap"), vars["NETGRANT_MAC"]
		}
		if c.unitProperty("rig-guest", "ActiveState") == "failed" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("netgrant run started no command with a tap:\n%s",
		output(c.command("journalctl", "-u", "rig-guest", "-o", "cat", "--no-pager")))
	return nil, ""
}

// dialGuest connects from the container (the guest's host) to the guest's
// listener and returns the line it sends.
func dialGuest(c *container, ip string) (string, error) {
	return readLineFrom(c.leader, net.JoinHostPort(ip, strconv.Itoa(guestPort)))
}

// readLineFrom connects to addr from the network namespace of pid and
// returns the first line it is sent.
func readLineFrom(pid int, addr string) (string, error) {
	var line string
	err := inNetnsOf(pid, func() error {
		conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		line, err = bufio.NewReader(conn).ReadString('\n')
		return err
	})
	return strings.TrimSpace(line), err
}

func guestLifecycle(t *testing.T, c *container) {
	up := addUpstream(t, c)
	kit := guest.Prepare(t)

	// The guest's owner, logged in on the seat, runs it on network "lab".
	if out, err := c.inSession(alice, "rig-guest", "netgrant", "run", "--network", "lab", "--", "sleep", "infinity").CombinedOutput(); err != nil {
		t.Fatalf("systemd-run netgrant run: %v\n%s", err, out)
	}
	t.Cleanup(func() { c.command("systemctl", "stop", "rig-guest").Run() })
	tap, mac := tapHolder(t, c)
	var lab struct {
		Gateway6 string `json:"gateway6"`
	}
	if err := json.Unmarshal([]byte(output(c.asUser(alice, "netgrant", "network", "show", "lab", "--json"))), &lab); err != nil || lab.Gateway6 == "" {
		t.Fatalf("netgrant network show lab --json: no gateway6 (%v)", err)
	}
	vm := guest.Boot(t, kit, tap, mac, guest.Checks{
		PingGateway: true,
		// Router advertisements come from dnsmasq in its unit's sandbox.
		IPv6: true,
		// The host sees the guest use its SLAAC address.
		Ping6:      lab.Gateway6,
		Connect:    []string{net.JoinHostPort(upstreamAddr, upstreamPort)},
		ListenPort: guestPort,
		StayUp:     true,
		Hostname:   "alpha",
	})
	results, err := vm.Results(3 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lease := vm.Lease()
	t.Logf("guest lease %s, checks %v, upstream saw %v", lease, results, up.seen())
	if lease == "" || !results["ping"].OK || !results["connect:"+upstreamAddr+":"+upstreamPort].OK || !results["ipv6"].OK {
		t.Fatalf("the guest did not get a working network: lease %q, %v", lease, results)
	}
	if seen := up.seen(); len(seen) == 0 || seen[0] != uplinkAddr {
		t.Errorf("the upstream saw %v, want the host's address %s (NAT)", seen, uplinkAddr)
	}
	guest6, _, _ := strings.Cut(results["ipv6"].Detail, "/")
	guestByName(t, c, lease, guest6)

	// What ran inside netgrantd's sandbox: dnsmasq as a dynamic user of
	// its own unit (systemd's range 61184-65519), the firewall, and the
	// administrator's hook.
	dnsmasqPID := c.unitProperty("netgrant-dnsmasq@ng-lab", "MainPID")
	if uid, err := strconv.Atoi(output(c.command("stat", "-c", "%u", "/proc/"+dnsmasqPID))); err != nil || uid < 61184 || uid > 65519 {
		t.Errorf("dnsmasq (pid %s) runs as uid %d (%v), not a dynamic user of its unit", dnsmasqPID, uid, err)
	}
	otherDnsmasq(t, c, dnsmasqPID)
	if links := c.run(t, "ip", "-d", "link", "show", "type", "bridge"); !strings.Contains(links, "alias hooked-lab") {
		t.Errorf("the network-up hook did not run:\n%s", links)
	}
	// On a host whose iptables is the nf_tables flavour, [Firewall]
	// Backend=auto picks nftables: one table of netgrant's own.
	if table := output(c.command("nft", "list", "table", "ip", "netgrant")); !strings.Contains(table, "masquerade to :1024-65535") {
		t.Errorf("no netgrant table in nftables:\n%s", table)
	} else {
		t.Logf("nft list table ip netgrant:\n%s", table)
	}

	// Its owner forwards a port to it from her session (polkit's
	// forward-port, allowed to an active session): the upstream machine
	// reaches the guest through the host's address.
	forward := c.inSession(alice, "", "netgrant", "network", "forward", "add", "lab", "tcp", "2222", lease, strconv.Itoa(guestPort))
	if out, err := forward.CombinedOutput(); err != nil {
		t.Fatalf("netgrant network forward add: %v\n%s", err, out)
	}
	forwarded := net.JoinHostPort(uplinkAddr, "2222")
	if line, err := readLineFrom(up.pid, forwarded); err != nil || line != guest.Banner {
		t.Errorf("the upstream machine through the forwarded %s: %q, %v", forwarded, line, err)
	}

	// A restart while the guest runs: the guest keeps its network, the new
	// netgrantd adopts it, dnsmasq serves on.
	before := c.unitProperty("netgrantd", "MainPID")
	c.run(t, "systemctl", "restart", "netgrantd")
	after := c.unitProperty("netgrantd", "MainPID")
	if after == before || c.unitProperty("netgrantd", "ActiveState") != "active" {
		t.Fatalf("systemctl restart: MainPID %s → %s, state %s", before, after, c.unitProperty("netgrantd", "ActiveState"))
	}
	if line, err := dialGuest(c, lease); err != nil || line != guest.Banner {
		t.Errorf("after the restart the host cannot reach the guest: %q, %v", line, err)
	}
	if line, err := readLineFrom(up.pid, forwarded); err != nil || line != guest.Banner {
		t.Errorf("after the restart the upstream machine through the forwarded %s: %q, %v", forwarded, line, err)
	}
	if pid := c.unitProperty("netgrant-dnsmasq@ng-lab", "MainPID"); pid != dnsmasqPID {
		t.Errorf("dnsmasq was restarted (pid %s → %s)", dnsmasqPID, pid)
	}
	journal := output(c.command("journalctl", "-u", "netgrantd", "_PID="+after, "-o", "cat", "--no-pager"))
	t.Logf("the restarted netgrantd (pid %s):\n%s", after, journal)
	if !strings.Contains(journal, "adopted network") {
		t.Errorf("the restarted netgrantd did not adopt network lab")
	}
	t.Logf("ngalice$ netgrant list\n%s", output(c.asUser(alice, "netgrant", "list")))

	idleExit(t, c, vm, tap)
}

// guestName is the guest's name on network lab.
const guestName = "alpha.lab.netgrant.internal"

// guestByName: the host resolves the guest by name through
// systemd-resolved, to which netgrantd registered the network's domain,
// and reaches it by that name over both families; again after resolved
// restarts.
func guestByName(t *testing.T, c *container, lease, guest6 string) {
	t.Logf("# resolvectl status ng-lab\n%s", output(c.command("resolvectl", "status", "ng-lab")))
	resolves := func(when string) {
		t.Helper()
		var hosts string
		deadline := time.Now().Add(time.Minute)
		for {
			hosts = output(c.command("getent", "ahosts", guestName))
			if strings.Contains(hosts, lease) && strings.Contains(hosts, guest6) || time.Now().After(deadline) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("%s: # getent ahosts %s\n%s", when, guestName, hosts)
		if !strings.Contains(hosts, lease) || !strings.Contains(hosts, guest6) {
			t.Errorf("%s: the host resolves %s to %q, want %s and %s\n%s", when, guestName, hosts, lease, guest6,
				output(c.command("resolvectl", "status", "ng-lab")))
		}
		for _, family := range []string{"-4", "-6"} {
			out, err := c.command("ping", family, "-c", "1", "-W", "3", guestName).CombinedOutput()
			if err != nil {
				t.Errorf("%s: ping %s %s: %v\n%s", when, family, guestName, err, out)
			} else {
				t.Logf("%s: # ping %s -c 1 %s\n%s", when, family, guestName, out)
			}
		}
	}
	resolves("registered")
	// resolved keeps what links were given across its own restart (in
	// /run); netgrantd registers again all the same, for a resolved that
	// lost it.
	const again = "systemd-resolved started: registering the networks' domains again"
	registrations := func() int {
		return strings.Count(output(c.command("journalctl", "-u", "netgrantd", "-o", "cat", "--no-pager")), again)
	}
	before := registrations()
	c.run(t, "systemctl", "restart", "systemd-resolved")
	deadline := time.Now().Add(time.Minute)
	for registrations() == before && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if registrations() == before {
		t.Errorf("netgrantd did not register lab's domain again after resolved restarted")
	}
	resolves("after systemctl restart systemd-resolved")
	// Nothing but the network's domain goes to the guests' network.
	if status := output(c.command("resolvectl", "status", "ng-lab")); !strings.Contains(status, "~lab.netgrant.internal") ||
		!strings.Contains(status, "-DefaultRoute") || !strings.Contains(status, "-LLMNR") {
		t.Errorf("resolvectl status ng-lab: want the routing domain ~lab.netgrant.internal only, no default route, no LLMNR:\n%s", status)
	}
}

// otherDnsmasq: another network, created by its owner at her seat without
// a password and kept until she deletes it, has a dnsmasq of another
// dynamic user, which lab's dnsmasq's user cannot signal.
func otherDnsmasq(t *testing.T, c *container, labPID string) {
	if out, err := c.inSession(alice, "", "netgrant", "network", "create", "lab2").CombinedOutput(); err != nil {
		t.Fatalf("netgrant network create lab2 at ngalice's seat: %v\n%s", err, out)
	}
	defer c.inSession(alice, "", "netgrant", "network", "delete", "lab2").Run()
	otherPID := c.unitProperty("netgrant-dnsmasq@ng-lab2", "MainPID")
	ids := func(pid string) string { return output(c.command("stat", "-c", "%u:%g", "/proc/"+pid)) }
	lab, other := ids(labPID), ids(otherPID)
	if lab == other || otherPID == "0" {
		t.Errorf("lab's dnsmasq runs as %s, lab2's (pid %s) as %s: not users of their own", lab, otherPID, other)
	}
	uid, gid, _ := strings.Cut(lab, ":")
	signal := c.command("setpriv", "--reuid="+uid, "--regid="+gid, "--clear-groups", "kill", "-s", "TERM", otherPID)
	if out, err := signal.CombinedOutput(); err == nil {
		t.Errorf("lab's dnsmasq's user could signal lab2's dnsmasq: %s", out)
	}
}

// idleExit: with IdleExitSec=2 netgrantd stays while the guest holds its
// network, exits once nothing is left to watch, and the next call starts it
// again.
func idleExit(t *testing.T, c *container, vm *guest.VM, tap *os.File) {
	conf, err := os.OpenFile(filepath.Join(c.dir, "etc/netgrant/netgrant.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = conf.WriteString("[Daemon]\nIdleExitSec=2\n")
		conf.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	c.run(t, "systemctl", "restart", "netgrantd")
	held := c.unitProperty("netgrantd", "MainPID")
	// Three idle periods with the network held and no call: a daemon that
	// counted only calls would have exited.
	time.Sleep(6 * time.Second)
	if pid, state := c.unitProperty("netgrantd", "MainPID"), c.unitProperty("netgrantd", "ActiveState"); pid != held || state != "active" {
		t.Fatalf("netgrantd left while a network was held: pid %s → %s, %s", held, pid, state)
	}

	c.run(t, "systemctl", "stop", "rig-guest")
	vm.Stop()
	tap.Close()
	deadline := time.Now().Add(time.Minute)
	for c.unitProperty("netgrantd", "ActiveState") == "active" {
		if time.Now().After(deadline) {
			t.Fatalf("netgrantd still runs a minute after the guest and its network went")
		}
		time.Sleep(100 * time.Millisecond)
	}
	journal := output(c.command("journalctl", "-u", "netgrantd", "_PID="+held, "-o", "cat", "--no-pager"))
	t.Logf("netgrantd (pid %s) after the guest went:\n%s", held, journal)
	if !strings.Contains(journal, "idle with nothing to watch: exiting") {
		t.Errorf("no idle-exit line in the journal")
	}
	if result := c.unitProperty("netgrantd", "Result"); result != "success" {
		t.Errorf("netgrantd.service Result=%s, want success (a clean exit)", result)
	}
	if links := c.run(t, "ip", "-o", "link"); strings.Contains(links, "ng-") || strings.Contains(links, "ngtap") {
		t.Errorf("links left behind:\n%s", links)
	}
	if rules := c.run(t, "nft", "list", "ruleset"); strings.Contains(rules, "netgrant") {
		t.Errorf("firewall rules left behind:\n%s", rules)
	}
	if status := c.run(t, "resolvectl", "status"); strings.Contains(status, "netgrant.internal") || strings.Contains(status, "ng-lab") {
		t.Errorf("resolved still knows of network lab:\n%s", status)
	}
	if out, err := c.command("getent", "ahosts", guestName).CombinedOutput(); err == nil {
		t.Errorf("the host still resolves %s: %s", guestName, out)
	}

	out := output(c.inSession(alice, "", gdbusCall("CreateTap", "{}")...))
	if !strings.Contains(out, "/org/netgrant/NetGrant1/tap/") || c.unitProperty("netgrantd", "ActiveState") != "active" {
		t.Fatalf("the next call did not start netgrantd again: %s", out)
	}
	t.Logf("the next call activated netgrantd again: pid %s", c.unitProperty("netgrantd", "MainPID"))
}

// passwordPrompt: outside a session polkit wants an administrator; netgrant
// run on a terminal asks once per call and goes on.
func passwordPrompt(t *testing.T, c *container) {
	cmd := c.asUser(bob, "script", "-qec", "netgrant run --network lab2 -- echo child-ran-on-{ifname}", "/dev/null")
	out, code := harness.AnswerPrompts(t, cmd, adminPassword)
	t.Logf("ngbob on a terminal, outside any session$ netgrant run --network lab2 -- echo …\n%s(exit %d)", out, code)
	if code != 0 || !strings.Contains(out, "child-ran-on-ngtap") {
		t.Fatalf("netgrant run failed")
	}
	if n := strings.Count(out, "AUTHENTICATING FOR"); n != 2 ||
		!strings.Contains(out, "AUTHENTICATING FOR org.netgrant.create-nat-network") ||
		!strings.Contains(out, "AUTHENTICATING FOR org.netgrant.use-network") {
		t.Errorf("want one prompt per call (create-nat-network, use-network); got %d", n)
	}
}

func sandboxScore(t *testing.T, c *container) {
	out := c.run(t, "systemd-analyze", "security", "--no-pager", "netgrantd.service")
	m := regexp.MustCompile(`Overall exposure level for netgrantd\.service: ([0-9.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	score, _ := strconv.ParseFloat(m[1], 64)
	t.Logf("systemd-analyze security netgrantd.service (on the running system): %s", strings.TrimSpace(m[0]))
	if score > 2.5 {
		t.Errorf("exposure %.1f, want at most 2.5:\n%s", score, out)
	}
}
