package harness

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { Main(m) }

// checkAuthorization asks polkit, as c, whether c itself may do action.
func checkAuthorization(t *testing.T, c *Client, action string) (authorized, challenge bool) {
	t.Helper()
	subject := struct {
		Kind    string
		Details map[string]dbus.Variant
	}{"system-bus-name", map[string]dbus.Variant{"name": dbus.MakeVariant(c.UniqueName)}}
	reply := c.Do(Call{
		Dest:      PolkitName,
		Path:      PolkitPath,
		Interface: PolkitIface,
		Method:    "CheckAuthorization",
		Args:      []any{subject, action, map[string]string{}, uint32(0), ""},
	})
	var result struct {
		Authorized, Challenge bool
		Details               map[string]string
	}
	if err := reply.Store(&result); err != nil {
		t.Fatalf("CheckAuthorization(%s) as %s: %v", action, c.User, err)
	}
	return result.Authorized, result.Challenge
}

func netgrantPolicyExists(t *testing.T) bool {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(root, "data", "org.netgrant.policy"))
	return err == nil
}

func comm(pid uint32) string {
	b, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(int(pid)), "comm"))
	return strings.TrimSpace(string(b))
}

func TestPrivateBusRunsPolkitd(t *testing.T) {
	env := Start(t, Options{NoDaemon: true})
	if fi, err := os.Stat("/run/dbus/system_bus_socket"); err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("no bus socket at /run/dbus/system_bus_socket: %v", err)
	}
	var owner string
	if err := env.Bus().BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, PolkitName).Store(&owner); err != nil {
		t.Fatalf("%s has no owner on the private bus: %v", PolkitName, err)
	}
	var pid uint32
	if err := env.Bus().BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, owner).Store(&pid); err != nil {
		t.Fatal(err)
	}
	if got := comm(pid); got != "polkitd" {
		t.Fatalf("%s is owned by pid %d (%q), want polkitd", PolkitName, pid, got)
	}
}

func TestPolkitKnowsNetgrantActions(t *testing.T) {
	if !netgrantPolicyExists(t) {
		t.Skip("data/org.netgrant.policy does not exist yet")
	}
	env := Start(t, Options{NoDaemon: true})
	var actions []struct {
		ID, Description, Message, Vendor, VendorURL, Icon string
		Any, Inactive, Active                             uint32
		Annotations                                       map[string]string
	}
	err := env.Bus().Object(PolkitName, PolkitPath).Call(PolkitIface+".EnumerateActions", 0, "").Store(&actions)
	if err != nil {
		t.Fatalf("EnumerateActions: %v", err)
	}
	known := map[string]bool{}
	for _, a := range actions {
		known[a.ID] = true
	}
	for _, id := range []string{"org.netgrant.create-tap", "org.netgrant.use-network", "org.netgrant.attach-bridge",
		"org.netgrant.create-nat-network", "org.netgrant.persist", "org.netgrant.manage", "org.netgrant.forward-port",
		"org.netgrant.forward-privileged-port"} {
		if !known[id] {
			t.Errorf("polkit does not know action %s", id)
		}
	}
}

func TestRulesDecideAuthorization(t *testing.T) {
	action := "org.freedesktop.policykit.exec"
	if netgrantPolicyExists(t) {
		action = "org.netgrant.create-tap"
	}
	rules := func(yes, no string) string {
		return `polkit.addRule(function(action, subject) {
	if (action.id != "` + action + `") return polkit.Result.NOT_HANDLED;
	if (subject.user == "` + yes + `") return polkit.Result.YES;
	if (subject.user == "` + no + `") return polkit.Result.NO;
});
`
	}
	env := Start(t, Options{NoDaemon: true, Rules: rules(UserAlice, UserMallory)})
	alice := env.Client(t, UserAlice)
	mallory := env.Client(t, UserMallory)
	bob := env.Client(t, UserBob)

	if ok, _ := checkAuthorization(t, alice, action); !ok {
		t.Errorf("%s is not authorized for %s, though a rule says yes", UserAlice, action)
	}
	if ok, challenge := checkAuthorization(t, mallory, action); ok || challenge {
		t.Errorf("%s: authorized %v, challenge %v; a rule says no", UserMallory, ok, challenge)
	}
	// No rule matches bob, and without logind nobody is active: polkit's
	// "any" default (auth_admin) applies.
	if ok, challenge := checkAuthorization(t, bob, action); ok || !challenge {
		t.Errorf("%s: authorized %v, challenge %v; want a challenge", UserBob, ok, challenge)
	}

	env.SetRules(rules(UserMallory, UserAlice))
	if ok, _ := checkAuthorization(t, alice, action); ok {
		t.Errorf("%s is still authorized after SetRules said no", UserAlice)
	}
	if ok, _ := checkAuthorization(t, mallory, action); !ok {
		t.Errorf("%s is not authorized after SetRules said yes", UserMallory)
	}
}

func TestClientsRunAsTestUsers(t *testing.T) {
	env := Start(t, Options{NoDaemon: true})
	for _, u := range testUsers {
		c := env.Client(t, u.name)
		var uid uint32
		if err := env.Bus().BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, c.UniqueName).Store(&uid); err != nil {
			t.Fatal(err)
		}
		if uid != u.id || c.UID != u.id {
			t.Errorf("client %s is uid %d on the bus (reported %d), want %d", u.name, uid, c.UID, u.id)
		}
		status, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(c.PID()), "status"))
		if err != nil {
			t.Fatal(err)
		}
		inNetdev := strings.Contains(string(status), "\nGroups:\t"+strconv.Itoa(NetdevGID)+" ")
		if want := slices.Contains(u.groups, NetdevGID); inNetdev != want {
			t.Errorf("client %s in netdev: %v, want %v", u.name, inNetdev, want)
		}
	}
}

// fakeManager stands in for netgrantd: its CreateTap hands out one end of
// a socket pair and a real tap device.
type fakeManager struct {
	peer  *os.File   // the socket pair's other end
	keep  []*os.File // open until the test ends
	sent  []*os.File // the fake's copies of the fds it sent
	calls chan dbus.Message
}

func (f *fakeManager) CreateTap(msg dbus.Message, opts map[string]dbus.Variant) (dbus.ObjectPath, []dbus.UnixFD, map[string]dbus.Variant, *dbus.Error) {
	f.calls <- msg
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return "", nil, nil, dbus.MakeFailedError(err)
	}
	f.peer = os.NewFile(uintptr(pair[1]), "peer")
	tap, err := os.OpenFile("/dev/net/tun", os.O_RDWR, 0)
	if err != nil {
		return "", nil, nil, dbus.MakeFailedError(err)
	}
	ifr, _ := unix.NewIfreq("ngfake0")
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
	if err := unix.IoctlIfreq(int(tap.Fd()), unix.TUNSETIFF, ifr); err != nil {
		return "", nil, nil, dbus.MakeFailedError(err)
	}
	mine := os.NewFile(uintptr(pair[0]), "mine")
	f.keep = append(f.keep, f.peer, tap)
	f.sent = append(f.sent, mine)
	info := map[string]dbus.Variant{"ifname": dbus.MakeVariant("ngfake0")}
	return "/org/netgrant/NetGrant1/tap/ngfake0", []dbus.UnixFD{dbus.UnixFD(mine.Fd()), dbus.UnixFD(tap.Fd())}, info, nil
}

// useBusPolicyStandIn points the bus at a minimal netgrant policy while
// data/org.netgrant.NetGrant1.conf is not written yet.
func useBusPolicyStandIn(t *testing.T) {
	if _, err := os.Stat(busPolicyFile); err == nil {
		return
	}
	standIn := filepath.Join(t.TempDir(), busPolicyName)
	err := os.WriteFile(standIn, []byte(`<busconfig>
  <policy user="root"><allow own="`+BusName+`"/></policy>
  <policy context="default"><allow send_destination="`+BusName+`"/></policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	saved := busPolicyFile
	busPolicyFile = standIn
	t.Cleanup(func() { busPolicyFile = saved })
}

func TestClientKeepsReceivedFDs(t *testing.T) {
	Require(t)
	useBusPolicyStandIn(t)
	env := Start(t, Options{NoDaemon: true})
	fake := &fakeManager{calls: make(chan dbus.Message, 1)}
	t.Cleanup(func() {
		for _, f := range fake.keep {
			f.Close()
		}
	})
	if err := env.Bus().Export(fake, ManagerPath, ManagerIface); err != nil {
		t.Fatal(err)
	}
	if reply, err := env.Bus().RequestName(BusName, dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s as root: %v (reply %v)", BusName, err, reply)
	}
	alice := env.Client(t, UserAlice)

	// A wrong variant type goes out exactly as the test wrote it.
	reply := alice.Do(Call{Method: "CreateTap", Interactive: true,
		Args: []any{map[string]dbus.Variant{"queues": dbus.MakeVariant(int32(2))}}})
	call := <-fake.calls
	if call.Flags&dbus.FlagAllowInteractiveAuthorization == 0 {
		t.Error("the call lost its ALLOW_INTERACTIVE_AUTHORIZATION flag")
	}
	if sig := call.Body[0].(map[string]dbus.Variant)["queues"].Signature().String(); sig != "i" {
		t.Errorf("queues arrived as %q, want the int32 the test sent", sig)
	}
	// Once the reply is out, like netgrantd, the service keeps no copy.
	for _, f := range fake.sent {
		f.Close()
	}
	var path dbus.ObjectPath
	var fdIndexes []dbus.UnixFDIndex
	var info map[string]dbus.Variant
	if err := reply.Store(&path, &fdIndexes, &info); err != nil {
		t.Fatalf("CreateTap: %v", err)
	}
	if len(reply.FDs) != 2 || !slices.Equal(fdIndexes, []dbus.UnixFDIndex{0, 1}) {
		t.Fatalf("fd indexes in body %v, received fds %v; want two", fdIndexes, reply.FDs)
	}
	if got := alice.FDs(); !slices.Equal(got, reply.FDs) {
		t.Fatalf("client holds fds %v, want %v", got, reply.FDs)
	}
	sock, tap := reply.FDs[0], reply.FDs[1]

	if name, flags := alice.TunGetIff(tap); name != "ngfake0" || flags&unix.IFF_TAP == 0 || flags&unix.IFF_VNET_HDR == 0 {
		t.Errorf("TunGetIff = %q, %#x; want ngfake0 with IFF_TAP|IFF_VNET_HDR", name, flags)
	}

	alice.Write(sock, []byte("to root"))
	buf := make([]byte, 64)
	n, err := fake.peer.Read(buf)
	if err != nil || string(buf[:n]) != "to root" {
		t.Errorf("root read %q, %v; want the frame alice wrote", buf[:n], err)
	}
	if _, err := fake.peer.Write([]byte("to alice")); err != nil {
		t.Fatal(err)
	}
	if got, err := alice.Read(sock, 10*time.Second); err != nil || string(got) != "to alice" {
		t.Errorf("alice read %q, %v; want the frame root wrote", got, err)
	}
	if _, err := alice.Read(sock, 0); !errors.Is(err, ErrTimeout) {
		t.Errorf("reading an idle fd: %v, want ErrTimeout", err)
	}

	alice.CloseFD(sock)
	if n, err := fake.peer.Read(buf); n != 0 || err == nil {
		t.Errorf("after alice closed her end, root read %d bytes, %v; want EOF", n, err)
	}
	if got := alice.FDs(); !slices.Equal(got, []int{tap}) {
		t.Errorf("after close the client holds %v, want [%d]", got, tap)
	}
}

func TestCreateTapHelperReportsErrors(t *testing.T) {
	Require(t)
	useBusPolicyStandIn(t)
	env := Start(t, Options{NoDaemon: true})
	alice := env.Client(t, UserAlice)
	// Nobody owns the name: the bus answers for the missing service.
	_, _, _, err := alice.CreateTap(nil)
	var callErr *CallError
	if !errors.As(err, &callErr) || callErr.Name != "org.freedesktop.DBus.Error.ServiceUnknown" {
		t.Fatalf("CreateTap without a service: %v, want ServiceUnknown", err)
	}
}

func TestCleanupStopsEverything(t *testing.T) {
	Require(t)
	var busPID, polkitPID int
	t.Run("env", func(t *testing.T) {
		env := Start(t, Options{NoDaemon: true, Rules: "// empty\n"})
		busPID, polkitPID = env.busd.pid(), env.polkitd.pid()
		env.Client(t, UserAlice)
		if len(ProcessesNamed("dbus-daemon")) != 1 || len(ProcessesNamed("polkitd")) != 1 {
			t.Fatalf("running: dbus-daemon %v, polkitd %v; want one each", ProcessesNamed("dbus-daemon"), ProcessesNamed("polkitd"))
		}
	})
	if busPID == 0 {
		t.Fatal("the environment did not start")
	}
	if left := slices.Concat(ProcessesNamed("dbus-daemon"), ProcessesNamed("polkitd")); len(left) > 0 {
		t.Errorf("processes left after cleanup: %v (bus was %d, polkitd %d)", left, busPID, polkitPID)
	}
	if entries, _ := os.ReadDir(rulesDir); len(entries) > 0 {
		t.Errorf("rules left after cleanup: %v", entries)
	}
}

func TestHostFilesOnlyCovered(t *testing.T) {
	Require(t)
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(passwd, []byte("\nngalice:x:4001:4001:")) {
		t.Errorf("the sandbox's /etc/passwd lacks ngalice")
	}
	if bytes.Contains(hostPasswd, []byte("\nngalice:")) {
		t.Fatalf("the host's /etc/passwd already has ngalice")
	}
	// A plain bind mount of / shows the root file system without the
	// sandbox's mounts on top: the host's own files.
	hostRoot := t.TempDir()
	if err := unix.Mount("/", hostRoot, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(hostRoot, unix.MNT_DETACH)
	underneath, err := os.ReadFile(filepath.Join(hostRoot, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(underneath, hostPasswd) {
		t.Error("the host's /etc/passwd changed")
	}

	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat("/etc/shadow")
	hostFi, _ := os.Stat(filepath.Join(hostRoot, "etc", "shadow"))
	if fi.Mode() != hostFi.Mode() {
		t.Errorf("/etc/shadow mode %v, host's %v", fi.Mode(), hostFi.Mode())
	}
	if PasswordSet {
		if !bytes.Contains(shadow, []byte("\nngalice:$6$")) {
			t.Error("ngalice has no SHA-512 password hash in /etc/shadow")
		}
	}
	group, _ := os.ReadFile("/etc/group")
	if !bytes.Contains(group, []byte("\nnetdev:x:4000:ngalice\n")) {
		t.Error("/etc/group lacks netdev (gid 4000) with member ngalice")
	}
}

func TestPasswordHashMatches(t *testing.T) {
	Require(t)
	if !PasswordSet {
		t.Skip("openssl is missing; test users have no password")
	}
	shadow, err := os.ReadFile("/etc/shadow")
	if err != nil {
		t.Fatal(err)
	}
	var hash string
	for _, line := range strings.Split(string(shadow), "\n") {
		if f := strings.Split(line, ":"); f[0] == UserAlice {
			hash = f[1]
		}
	}
	salt := strings.Split(hash, "$")[2]
	out, err := exec.Command("openssl", "passwd", "-6", "-salt", salt, TestPassword).Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(out)) != hash {
		t.Errorf("ngalice's hash %q is not TestPassword's", hash)
	}
}

func TestUpstreamIsReachable(t *testing.T) {
	Require(t)
	t.Run("up", func(t *testing.T) {
		up := AddUpstream(t, UpstreamOptions{Name: "up1", HostAddr: "192.0.2.1/24", PeerAddr: "192.0.2.2/24", DefaultRoute: true})
		if got := Links(t, "ngup-"); !slices.Equal(got, []string{"ngup-up1"}) {
			t.Fatalf("links %v, want [ngup-up1]", got)
		}
		up.Run(t, "busybox", "ping", "-c", "1", "-W", "5", "192.0.2.1")
		routes, err := exec.Command("ip", "route", "show", "default").Output()
		if err != nil || !strings.Contains(string(routes), "via 192.0.2.2") {
			t.Errorf("default route %q, %v; want via the upstream", routes, err)
		}
	})
	if got := Links(t, "ngup-"); len(got) > 0 {
		t.Errorf("links left after cleanup: %v", got)
	}
	if out, _ := exec.Command("ip", "netns", "list").Output(); len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("namespaces left after cleanup: %s", out)
	}
}

func TestIPTablesSaveShowsSandboxRules(t *testing.T) {
	Require(t)
	before := IPTablesSave(t)
	if strings.Contains(before, "ngtest-chain") {
		t.Fatal("the sandbox starts with the test's chain")
	}
	if out, err := exec.Command("iptables", "-t", "nat", "-N", "ngtest-chain").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	defer exec.Command("iptables", "-t", "nat", "-X", "ngtest-chain").Run()
	after := IPTablesSave(t)
	if !strings.Contains(after, ":ngtest-chain") || strings.Contains(after, "\n#") {
		t.Errorf("iptables-save output lacks the new nat chain or has comments:\n%s", after)
	}
}
