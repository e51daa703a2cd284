package attack_test

import (
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

func dnsmasqUID(t *testing.T, pid int) int {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+strconv.Itoa(pid), &st); err != nil {
		t.Fatal(err)
	}
	return int(st.Uid)
}

// runAs runs a shell command as uid's account and reports whether it
// succeeded.
func runAs(t *testing.T, uid int, script string) (bool, string) {
	t.Helper()
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil {
		t.Fatal(err)
	}
	out, err := harness.CommandAs(t, u.Username, "sh", "-c", script).CombinedOutput()
	return err == nil, strings.TrimSpace(string(out))
}

// dnsmasq ran as nobody, an account other services share: any of them
// could signal it, and it wrote a pid file as nobody that netgrantd later
// trusted to find the process to kill. Now it runs as an account of its
// own, and nothing it may write is read by root to decide anything.
func TestDnsmasqRunsAsItsOwnAccount(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "lab", nil)
	pids := harness.ProcessesNamed("dnsmasq")
	if len(pids) != 1 {
		t.Fatalf("%d dnsmasq processes, want 1", len(pids))
	}
	uid := dnsmasqUID(t, pids[0])
	if uid != harness.DnsmasqUID {
		t.Fatalf("dnsmasq runs as uid %d, want %s (%d)", uid, harness.DnsmasqUser, harness.DnsmasqUID)
	}

	// Another service's account cannot signal it.
	if ok, out := runAs(t, 65534, fmt.Sprintf("kill -0 %d", pids[0])); ok {
		t.Errorf("nobody can signal netgrant's dnsmasq: %s", out)
	}

	// dnsmasq's own account (a compromised dnsmasq) can write nothing in
	// the state directory that root reads later.
	dir := filepath.Join(env.StateDir, "dnsmasq-lab")
	for _, attempt := range []string{
		"echo 1 > " + dir + "/dnsmasq.pid",
		"echo 1 > " + dir + "/leases",
		"ln -s /etc/shadow " + dir + "/leases.new",
		"echo 1 > " + env.StateDir + "/network-lab.json",
	} {
		if ok, _ := runAs(t, uid, attempt); ok {
			t.Errorf("dnsmasq's account could: %s", attempt)
		}
	}
	filepath.WalkDir(env.StateDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, _ := d.Info()
		if st, ok := info.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid {
			t.Errorf("%s belongs to dnsmasq's account", path)
		}
		return nil
	})
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
	leaseFile := filepath.Join(env.StateDir, "dnsmasq-lab", "leases")
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
