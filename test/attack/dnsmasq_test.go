package attack_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/test/harness"
)

// dnsmasqOf finds network's dnsmasq by the lease file on its command line
// and returns its pid, uid and gid.
func dnsmasqOf(t *testing.T, env *harness.Env, network string) (pid, uid, gid int) {
	t.Helper()
	marker := "--dhcp-leasefile=" + filepath.Join(env.StateDir, "dnsmasq-"+names.BridgeName(network), "leases")
	for _, p := range harness.ProcessesNamed("dnsmasq") {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00"), marker) {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(fmt.Sprintf("/proc/%d", p), &st); err != nil {
			t.Fatal(err)
		}
		return p, int(st.Uid), int(st.Gid)
	}
	t.Fatalf("no dnsmasq of network %s", network)
	return 0, 0, 0
}

// runAs runs a shell command under uid and gid, without supplementary
// groups, and reports whether it succeeded.
func runAs(t *testing.T, uid, gid int, script string) (bool, string) {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// A guest that takes over its network's dnsmasq used to hold the account
// every network's dnsmasq ran as, and could SIGSTOP or SIGTERM all of
// them. Now each runs under an identity of its own from the ids delegated
// to netgrant-dnsmasq, started so (never root) with only the capabilities
// it needs: one network's dnsmasq can signal no other's, no other service
// can signal it, and nothing it may write is read by root to decide
// anything.
func TestDnsmasqsCannotTouchEachOther(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	mustCreateNetwork(t, env.Client(t, harness.UserAlice), "lab", nil)
	mustCreateNetwork(t, env.Client(t, harness.UserBob), "other", nil)
	labPID, labUID, labGID := dnsmasqOf(t, env, "lab")
	otherPID, otherUID, otherGID := dnsmasqOf(t, env, "other")
	for _, id := range [][2]int{{labUID, labGID}, {otherUID, otherGID}} {
		if id[0] < harness.DnsmasqIDFirst || id[0] >= harness.DnsmasqIDFirst+harness.DnsmasqIDCount ||
			id[1] < harness.DnsmasqIDFirst || id[1] >= harness.DnsmasqIDFirst+harness.DnsmasqIDCount {
			t.Errorf("a dnsmasq runs as %d:%d, outside the ids delegated to %s", id[0], id[1], harness.DnsmasqUser)
		}
	}
	if labUID == otherUID || labGID == otherGID {
		t.Fatalf("two networks' dnsmasqs share an identity: %d:%d and %d:%d", labUID, labGID, otherUID, otherGID)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", labPID))
	if err != nil {
		t.Fatal(err)
	}
	// NET_BIND_SERVICE, NET_ADMIN, NET_RAW and nothing else.
	if !strings.Contains(string(status), "CapEff:\t0000000000003400\n") {
		t.Errorf("dnsmasq's capabilities are not just the three it needs:\n%s", status)
	}

	// The attack: lab's dnsmasq signalling other's.
	for _, sig := range []string{"STOP", "TERM", "KILL"} {
		if ok, out := runAs(t, labUID, labGID, fmt.Sprintf("kill -s %s %d", sig, otherPID)); ok {
			t.Errorf("lab's dnsmasq could send SIG%s to other's: %s", sig, out)
		}
	}
	if ok, out := runAs(t, 65534, 65534, fmt.Sprintf("kill -0 %d", labPID)); ok {
		t.Errorf("nobody can signal netgrant's dnsmasq: %s", out)
	}
	if syscall.Kill(otherPID, 0) != nil {
		t.Error("other's dnsmasq is gone")
	}

	// Its identity can write nothing in the state directory that root
	// reads later, but the lease file it writes: what it writes there is
	// read as hostile (TestHostileLeaseFileBreaksNothing).
	dir := filepath.Join(env.StateDir, "dnsmasq-ng-lab")
	for _, attempt := range []string{
		"echo 1 > " + dir + "/dnsmasq.pid",
		"echo 1 > " + dir + "/hosts/evil",
		"ln -s /etc/shadow " + dir + "/leases.new",
		"echo 1 > " + env.StateDir + "/network-lab.json",
		"echo 1 > " + filepath.Join(env.StateDir, "dnsmasq-ng-other", "leases"),
	} {
		if ok, _ := runAs(t, labUID, labGID, attempt); ok {
			t.Errorf("lab's dnsmasq could: %s", attempt)
		}
	}
	filepath.WalkDir(env.StateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == labUID && path != filepath.Join(dir, "leases") {
			t.Errorf("%s belongs to lab's dnsmasq", path)
		}
		return nil
	})
}

// A dnsmasq that is terminated, by a signal or its own exit, is started
// again: SIGTERM made it exit cleanly, which a unit's Restart=on-failure
// took as a wish, leaving the network without DHCP and DNS for good.
func TestStoppedDnsmasqComesBack(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	_, info, err := env.Client(t, harness.UserAlice).CreateNATNetwork("lab", nil)
	if err != nil {
		t.Fatal(err)
	}
	guest := harness.AddNetnsGuest(t, "dhcpguest", info["bridge"].Value().(string))
	guest.Lease(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		pid, _, _ := dnsmasqOf(t, env, "lab")
		if err := syscall.Kill(pid, sig); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		harness.WaitFor(t, "a new dnsmasq", func() bool {
			pids := harness.ProcessesNamed("dnsmasq")
			return len(pids) == 1 && pids[0] != pid
		})
		guest.Lease(t)
		t.Logf("after %v: a guest leases again %v after its network's dnsmasq was killed", sig, time.Since(killed).Round(time.Millisecond))
	}
}

// A compromised dnsmasq writes what it likes into its lease file (the
// test writes it as dnsmasq would, through the file netgrantd watches): no
// line of it breaks the network's objects or signals, hostnames are
// published only as plain names, and the leases stay bounded.
func TestHostileLeaseFileBreaksNothing(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "lab", map[string]dbus.Variant{"subnet": dbus.MakeVariant("10.97.0.0/24")})
	signals := env.WatchSignals(t)

	lines := []string{
		"0 52:54:00:00:00:01 10.97.0.10 good-guest *",
		"0 52:54:00:00:00:02 10.97.0.11 bad\xff\xfeutf8 *",
		"0 52:54:00:00:00:03 10.97.0.12 " + strings.Repeat("x", 200) + " *",
		"0 52:54:00:00:00:04 10.97.0.13 evil\x1b[2J *",
		"0 52:54:00:00:00:05 10.97.0.14 \u202egnp.exe *",
		"0 52:54:00:00:00:06 203.0.113.9 outside *",
		"\x00\x01\x02 garbage",
	}
	for i := range 3000 {
		lines = append(lines, fmt.Sprintf("0 52:54:00:01:%02x:%02x 10.97.0.%d flood%d *", i/256, i%256, 20+i%200, i))
	}
	leaseFile := filepath.Join(env.StateDir, "dnsmasq-ng-lab", "leases")
	if err := os.WriteFile(leaseFile, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	signals.Next(t, "org.freedesktop.DBus.Properties.PropertiesChanged", networkPath("lab"))

	props, ok := env.ManagedObjects()[networkPath("lab")]
	if !ok {
		t.Fatal("GetManagedObjects lost the network")
	}
	var leases [][]any
	if err := dbus.Store([]any{props["org.netgrant.NetGrant1.Network"]["Leases"].Value()}, &leases); err != nil {
		t.Fatal(err)
	}
	hostnames := map[string]string{}
	for _, l := range leases {
		hostnames[l[1].(string)] = l[2].(string)
	}
	for ip, want := range map[string]string{"10.97.0.10": "good-guest", "10.97.0.11": "", "10.97.0.12": "", "10.97.0.13": "", "10.97.0.14": ""} {
		if got, ok := hostnames[ip]; !ok || got != want {
			t.Errorf("lease of %s: hostname %q (present %v), want %q", ip, got, ok, want)
		}
	}
	if _, ok := hostnames["203.0.113.9"]; ok {
		t.Error("a lease outside the network's subnet was published")
	}
	if len(leases) > 254 {
		t.Errorf("%d leases published for a /24", len(leases))
	}
}
