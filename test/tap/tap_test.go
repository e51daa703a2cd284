// Package tap_test checks CreateTap end to end: the real netgrantd on a
// private system bus, the real polkitd, and clients running as test users.
package tap_test

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// allowAlice lets ngalice do everything, refuses ngmallory everything, and
// leaves ngbob to polkit's defaults (auth_admin for a subject with no
// active session).
var allowAlice = harness.Rules(map[string]string{harness.UserAlice: "YES", harness.UserMallory: "NO"})

const vnetHdrLen = 10 // struct virtio_net_hdr, the kernel's default size

func v(x any) dbus.Variant { return dbus.MakeVariant(x) }

func mustCreateTap(t *testing.T, c *harness.Client, opts map[string]dbus.Variant) (dbus.ObjectPath, []int, map[string]dbus.Variant) {
	t.Helper()
	path, fds, info, err := c.CreateTap(opts)
	if err != nil {
		t.Fatalf("CreateTap(%v) as %s: %v", opts, c.User, err)
	}
	return path, fds, info
}

// testFrame is a broadcast frame of a local experimental EtherType whose
// payload marks it, so frames the kernel sends on its own (IPv6 router
// solicitations and the like) are told apart.
func testFrame(src []byte, marker string) []byte {
	f := append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, src...)
	f = append(f, 0x88, 0xb5)
	f = append(f, []byte(marker)...)
	for len(f) < 60 {
		f = append(f, 0)
	}
	return f
}

func parseMAC(t *testing.T, s string) []byte {
	t.Helper()
	var b [6]byte
	if _, err := fmt.Sscanf(s, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]); err != nil {
		t.Fatalf("bad MAC %q: %v", s, err)
	}
	return b[:]
}

// packetSocket captures and sends frames on one interface, as the host's
// side of the tap.
type packetSocket struct {
	fd    int
	index int
}

func openPacketSocket(t *testing.T, ifname string) *packetSocket {
	t.Helper()
	iface, err := netInterface(ifname)
	if err != nil {
		t.Fatal(err)
	}
	proto := int(htons(unix.ETH_P_ALL))
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: iface}); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 0, Usec: 200_000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &packetSocket{fd: fd, index: iface}
}

func netInterface(name string) (int, error) {
	b, err := os.ReadFile(filepath.Join("/sys/class/net", name, "ifindex"))
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

func htons(x uint16) uint16 { return x<<8 | x>>8 }

func (p *packetSocket) send(t *testing.T, frame []byte) {
	t.Helper()
	addr := &unix.SockaddrLinklayer{Ifindex: p.index, Halen: 6}
	copy(addr.Addr[:], frame[:6])
	if err := unix.Sendto(p.fd, frame, 0, addr); err != nil {
		t.Fatalf("sending a frame into the tap: %v", err)
	}
}

// seen waits a while for a frame carrying marker on the interface.
func (p *packetSocket) seen(marker string) bool {
	buf := make([]byte, 65536)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		n, _, err := unix.Recvfrom(p.fd, buf, 0)
		if err == nil && bytes.Contains(buf[:n], []byte(marker)) {
			return true
		}
	}
	return false
}

// readMarked reads frames from a client's tap fd until one carries marker.
func readMarked(t *testing.T, c *harness.Client, fd int, marker string) []byte {
	t.Helper()
	for i := 0; i < 50; i++ {
		frame, err := c.Read(fd, 5*time.Second)
		if err != nil {
			t.Fatalf("reading from the tap fd: %v", err)
		}
		if bytes.Contains(frame, []byte(marker)) {
			return frame
		}
	}
	t.Fatalf("no frame with %q read from the tap fd", marker)
	return nil
}

func TestAuthorizedUserGetsWorkingTap(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	alice := env.Client(t, harness.UserAlice)
	path, fds, info := mustCreateTap(t, alice, map[string]dbus.Variant{"mtu": v(uint32(9000))})

	ifname := info["ifname"].Value().(string)
	if path != dbus.ObjectPath("/org/netgrant/NetGrant1/tap/"+ifname) || !strings.HasPrefix(ifname, "ngtap") {
		t.Fatalf("CreateTap returned %s named %q", path, ifname)
	}
	if len(fds) != 1 {
		t.Fatalf("got %d fds, want 1", len(fds))
	}
	guestMAC := info["mac"].Value().(string)
	if !strings.HasPrefix(guestMAC, "52:54:00:") {
		t.Errorf("guest MAC %s is not a generated 52:54:00 address", guestMAC)
	}
	sysfs := func(attr string) string {
		b, err := os.ReadFile(filepath.Join("/sys/class/net", ifname, attr))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	if got := sysfs("address"); got != "fe"+guestMAC[2:] {
		t.Errorf("tap's own address is %s, want the guest MAC with first byte fe", got)
	}
	if sysfs("owner") != "4001" || sysfs("group") != "4001" {
		t.Errorf("tap owner/group are %s/%s, want ngalice's 4001/4001", sysfs("owner"), sysfs("group"))
	}
	if sysfs("mtu") != "9000" || info["mtu"].Value().(uint32) != 9000 {
		t.Errorf("MTU is %s (info %v), want 9000", sysfs("mtu"), info["mtu"])
	}
	if flags, _ := strconv.ParseUint(sysfs("flags"), 0, 32); flags&unix.IFF_UP == 0 {
		t.Errorf("tap is not up: flags %s", sysfs("flags"))
	}

	host := openPacketSocket(t, ifname)
	// Guest → host: what the client writes to its fd appears on the link.
	alice.Write(fds[0], append(make([]byte, vnetHdrLen), testFrame(parseMAC(t, guestMAC), "to-host")...))
	if !host.seen("to-host") {
		t.Fatal("a frame written to the tap fd was not seen on the interface")
	}
	// Host → guest: a frame sent on the link is read from the fd.
	host.send(t, testFrame(parseMAC(t, "fe"+guestMAC[2:]), "to-guest"))
	frame := readMarked(t, alice, fds[0], "to-guest")
	if !bytes.Equal(frame[vnetHdrLen:vnetHdrLen+6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) {
		t.Errorf("frame read from the fd does not start with a vnet header and then the frame: % x", frame[:16])
	}

	// The last fd closing removes the device and its object.
	alice.CloseFD(fds[0])
	harness.WaitFor(t, "the tap to vanish after its fd closed", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
	harness.WaitFor(t, "the tap object to go", func() bool { return !hasObject(t, env, path) })
}

func TestMultiqueueGivesWorkingFDs(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	alice := env.Client(t, harness.UserAlice)
	_, fds, info := mustCreateTap(t, alice, map[string]dbus.Variant{"queues": v(uint32(4)), "vnet_hdr": v(false)})
	if len(fds) != 4 || info["queues"].Value().(uint32) != 4 {
		t.Fatalf("queues 4 gave %d fds, info %v", len(fds), info["queues"])
	}
	ifname := info["ifname"].Value().(string)
	host := openPacketSocket(t, ifname)
	src := parseMAC(t, info["mac"].Value().(string))
	for i, fd := range fds {
		name, flags := alice.TunGetIff(fd)
		if name != ifname || flags&unix.IFF_MULTI_QUEUE == 0 {
			t.Errorf("fd %d: TUNGETIFF says %s flags %#x, want %s with IFF_MULTI_QUEUE", i, name, flags, ifname)
		}
		marker := fmt.Sprintf("queue-%d", i)
		alice.Write(fd, testFrame(src, marker))
		if !host.seen(marker) {
			t.Errorf("a frame written on queue %d was not seen on %s", i, ifname)
		}
	}
}

func TestVnetHdrIsWhatTheKernelReports(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	alice := env.Client(t, harness.UserAlice)
	for _, want := range []bool{true, false} {
		_, fds, info := mustCreateTap(t, alice, map[string]dbus.Variant{"vnet_hdr": v(want)})
		_, flags := alice.TunGetIff(fds[0])
		if got := flags&unix.IFF_VNET_HDR != 0; got != want || info["vnet_hdr"].Value().(bool) != want {
			t.Errorf("vnet_hdr %v: kernel says %v (flags %#x), info says %v", want, got, flags, info["vnet_hdr"])
		}
		if flags&unix.IFF_TAP == 0 || flags&unix.IFF_NO_PI == 0 {
			t.Errorf("flags %#x lack IFF_TAP|IFF_NO_PI", flags)
		}
	}
}

func TestPolkitRefusalCreatesNothing(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	mallory := env.Client(t, harness.UserMallory)
	_, _, _, err := mallory.CreateTap(nil)
	if harness.ErrorName(err) != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Fatalf("polkit said no, CreateTap answered %v", err)
	}
	// Even when the caller allows interaction, a "no" stays a denial.
	r := mallory.Do(harness.Call{Method: "CreateTap", Args: []any{map[string]dbus.Variant{}}, Interactive: true})
	if r.ErrorName != "org.freedesktop.DBus.Error.AccessDenied" {
		t.Fatalf("interactive call after a polkit no answered %q", r.ErrorName)
	}
	if links := harness.Links(t, "ngtap"); len(links) != 0 {
		t.Fatalf("a refused call left links %v", links)
	}
}

func TestAuthAdminWithoutInteractionNeedsIt(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	bob := env.Client(t, harness.UserBob)
	_, _, _, err := bob.CreateTap(nil)
	if harness.ErrorName(err) != "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" {
		t.Fatalf("auth_admin without the interactive flag answered %v", err)
	}
	if !strings.Contains(err.Error(), "interactive") {
		t.Errorf("the message does not say what to do: %v", err)
	}
	if links := harness.Links(t, "ngtap"); len(links) != 0 {
		t.Fatalf("an unauthorized call left links %v", links)
	}
}

func TestBadOptionsAreRefusedByName(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	alice := env.Client(t, harness.UserAlice)
	for _, tc := range []struct {
		opts    map[string]dbus.Variant
		mention string
	}{
		{map[string]dbus.Variant{"queues": v(int32(2))}, "queues"},
		{map[string]dbus.Variant{"queues": v(uint32(0))}, "queues"},
		{map[string]dbus.Variant{"queues": v(uint32(17))}, "queues"},
		{map[string]dbus.Variant{"vnet_hdr": v(uint32(1))}, "vnet_hdr"},
		{map[string]dbus.Variant{"mac": v("52:54:00:12:34")}, "mac"},
		{map[string]dbus.Variant{"mac": v("01:00:5e:00:00:01")}, "mac"},
		{map[string]dbus.Variant{"mac": v("00:00:00:00:00:00")}, "mac"},
		{map[string]dbus.Variant{"mac": v(uint64(1))}, "mac"},
		{map[string]dbus.Variant{"mtu": v(uint32(67))}, "mtu"},
		{map[string]dbus.Variant{"mtu": v(uint32(65536))}, "mtu"},
		{map[string]dbus.Variant{"mtu": v(int64(1500))}, "mtu"},
		{map[string]dbus.Variant{"network": v("a b")}, "network"},
		{map[string]dbus.Variant{"bridge": v(strings.Repeat("b", 16))}, "bridge"},
		{map[string]dbus.Variant{"network": v("n"), "bridge": v("br0")}, "network"},
		{map[string]dbus.Variant{"ifname": v("evil0")}, "ifname"},
		{map[string]dbus.Variant{"": v("")}, `""`},
	} {
		_, _, _, err := alice.CreateTap(tc.opts)
		if harness.ErrorName(err) != "org.netgrant.NetGrant1.Error.InvalidArgument" || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("CreateTap(%v) = %v, want InvalidArgument naming %s", tc.opts, err, tc.mention)
		}
	}
	r := alice.Call("CreateTap", "not a dict")
	if r.ErrorName != "org.freedesktop.DBus.Error.InvalidArgs" {
		t.Errorf("CreateTap(s) answered %q, want InvalidArgs", r.ErrorName)
	}
	if links := harness.Links(t, "ngtap"); len(links) != 0 {
		t.Fatalf("refused calls left links %v", links)
	}
}

func TestTapQuota(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice, Config: "[Limits]\nTapsPerUser=2\n"})
	alice := env.Client(t, harness.UserAlice)
	_, first, _ := mustCreateTap(t, alice, nil)
	mustCreateTap(t, alice, nil)
	_, _, _, err := alice.CreateTap(nil)
	if harness.ErrorName(err) != "org.netgrant.NetGrant1.Error.QuotaExceeded" {
		t.Fatalf("third tap with TapsPerUser=2: %v", err)
	}
	if n := len(harness.Links(t, "ngtap")); n != 2 {
		t.Fatalf("%d taps exist, want 2", n)
	}
	alice.CloseFD(first[0])
	harness.WaitFor(t, "the closed tap to go", func() bool { return len(harness.Links(t, "ngtap")) == 1 })
	mustCreateTap(t, alice, nil)
}

func TestDeleteByOwnerOrManager(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	alice := env.Client(t, harness.UserAlice)
	bob := env.Client(t, harness.UserBob)
	mallory := env.Client(t, harness.UserMallory)
	path, fds, info := mustCreateTap(t, alice, nil)
	ifname := info["ifname"].Value().(string)

	del := harness.Call{Path: path, Interface: "org.netgrant.NetGrant1.Tap", Method: "Delete"}
	if r := mallory.Do(del); r.ErrorName != "org.netgrant.NetGrant1.Error.NotOwner" {
		t.Fatalf("Delete of ngalice's tap by ngmallory answered %q %q", r.ErrorName, r.ErrorMessage)
	}
	if r := bob.Do(del); r.ErrorName != "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" {
		t.Fatalf("Delete of ngalice's tap by ngbob (manage is auth_admin_keep) answered %q", r.ErrorName)
	}
	if len(harness.Links(t, ifname)) != 1 {
		t.Fatal("a refused Delete removed the tap")
	}
	if r := alice.Do(del); r.Err() != nil {
		t.Fatalf("owner's Delete: %v", r.Err())
	}
	if len(harness.Links(t, ifname)) != 0 || hasObject(t, env, path) {
		t.Fatal("the tap or its object outlived Delete")
	}
	// The client still holds the fd of the deleted device; it is dead.
	alice.CloseFD(fds[0])
}

func TestObjectsAndSignals(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	signals := env.WatchSignals(t)
	alice := env.Client(t, harness.UserAlice)
	path, fds, info := mustCreateTap(t, alice, map[string]dbus.Variant{"queues": v(uint32(2)), "mac": v("52:54:00:AB:CD:EF")})
	if info["mac"].Value().(string) != "52:54:00:ab:cd:ef" {
		t.Errorf("info mac %v, want the given one in lower case", info["mac"])
	}
	added := signals.Next(t, "org.freedesktop.DBus.ObjectManager.InterfacesAdded", path)
	if added.Body[0].(dbus.ObjectPath) != path {
		t.Fatalf("InterfacesAdded for %v, want %s", added.Body[0], path)
	}
	props := added.Body[1].(map[string]map[string]dbus.Variant)["org.netgrant.NetGrant1.Tap"]
	want := map[string]any{
		"Name": info["ifname"].Value(), "Owner": uint32(4001), "MAC": "52:54:00:ab:cd:ef", "MTU": uint32(1500),
		"Queues": uint32(2), "VnetHdr": true, "Bridge": "", "Network": dbus.ObjectPath("/"), "IPv4": "",
	}
	for k, w := range want {
		if props[k].Value() != w {
			t.Errorf("property %s = %v, want %v", k, props[k].Value(), w)
		}
	}
	obj := env.Bus().Object("org.netgrant.NetGrant1", path)
	if got, err := obj.GetProperty("org.netgrant.NetGrant1.Tap.Owner"); err != nil || got.Value() != uint32(4001) {
		t.Errorf("Get Owner: %v %v", got, err)
	}
	var managed map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	if err := env.Bus().Object("org.netgrant.NetGrant1", "/org/netgrant/NetGrant1").Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&managed); err != nil {
		t.Fatal(err)
	}
	if _, ok := managed[path]; !ok {
		t.Errorf("GetManagedObjects lacks %s: %v", path, managed)
	}
	version, err := env.Bus().Object("org.netgrant.NetGrant1", "/org/netgrant/NetGrant1").GetProperty("org.netgrant.NetGrant1.Manager.Version")
	if err != nil || version.Value().(string) == "" {
		t.Errorf("Version: %v %v", version, err)
	}
	for _, fd := range fds {
		alice.CloseFD(fd)
	}
	removed := signals.Next(t, "org.freedesktop.DBus.ObjectManager.InterfacesRemoved", path)
	if removed.Body[0].(dbus.ObjectPath) != path {
		t.Fatalf("InterfacesRemoved for %v, want %s", removed.Body[0], path)
	}
}

// The installed introspection data must be what the daemon really answers.
func TestIntrospectionMatchesDaemon(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	root, err := harness.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	installed, err := os.ReadFile(filepath.Join(root, "data", "org.netgrant.NetGrant1.xml"))
	if err != nil {
		t.Fatal(err)
	}
	var file introspect.Node
	if err := xml.Unmarshal(installed, &file); err != nil {
		t.Fatal(err)
	}
	var live string
	if err := env.Bus().Object("org.netgrant.NetGrant1", "/org/netgrant/NetGrant1").Call("org.freedesktop.DBus.Introspectable.Introspect", 0).Store(&live); err != nil {
		t.Fatal(err)
	}
	var node introspect.Node
	if err := xml.Unmarshal([]byte(live), &node); err != nil {
		t.Fatal(err)
	}
	for _, want := range file.Interfaces {
		if want.Name != "org.netgrant.NetGrant1.Manager" {
			continue
		}
		for _, got := range node.Interfaces {
			if got.Name == want.Name {
				if fmt.Sprint(got.Methods, got.Properties) != fmt.Sprint(want.Methods, want.Properties) {
					t.Errorf("live Manager interface differs from the installed XML:\n live %v\n file %v", got, want)
				}
				return
			}
		}
	}
	t.Fatalf("the daemon's introspection lacks the Manager interface: %s", live)
}

func TestConcurrentClientsGetDistinctTaps(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice, Config: "[Limits]\nTapsPerUser=40\n"})
	const clients = 20
	cs := make([]*harness.Client, clients)
	for i := range cs {
		cs[i] = env.Client(t, harness.UserAlice)
	}
	type result struct {
		name, mac string
		err       error
	}
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i, c := range cs {
		wg.Add(1)
		go func(i int, c *harness.Client) {
			defer wg.Done()
			// One uid has 4 polkit checks at once; its other calls
			// wait their turn (API.md): a VM manager starting 20 VMs
			// gets 20 taps.
			_, _, info, err := c.CreateTap(nil)
			if err == nil {
				results[i] = result{name: info["ifname"].Value().(string), mac: info["mac"].Value().(string)}
			} else {
				results[i] = result{err: err}
			}
		}(i, c)
	}
	wg.Wait()
	names, macs := map[string]bool{}, map[string]bool{}
	for i, r := range results {
		if r.err != nil {
			t.Errorf("client %d: %v", i, r.err)
			continue
		}
		names[r.name], macs[r.mac] = true, true
	}
	if len(names) != clients || len(macs) != clients {
		t.Fatalf("%d clients got %d distinct names and %d distinct MACs", clients, len(names), len(macs))
	}
	if n := len(harness.Links(t, "ngtap")); n != clients {
		t.Fatalf("%d ngtap links exist, want %d", n, clients)
	}
}

// Many create/close cycles must leave neither devices nor fds behind in the
// daemon.
func TestCreateCloseCyclesLeaveNothing(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	alice := env.Client(t, harness.UserAlice)
	// One round first, so lazily opened fds (netlink sockets, polkit's
	// connection) count in the baseline.
	_, fds, _ := mustCreateTap(t, alice, nil)
	alice.CloseFD(fds[0])
	harness.WaitFor(t, "the first tap to go", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
	baseline := harness.OpenFDs(env.DaemonPID())

	cycles := 500
	if testing.Short() {
		cycles = 50
	}
	for i := 0; i < cycles; i++ {
		_, fds, _ := mustCreateTap(t, alice, nil)
		alice.CloseFD(fds[0])
	}
	harness.WaitFor(t, "every tap to go", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
	harness.WaitFor(t, "every tap object to go", func() bool { return len(env.ManagedObjects()) == 0 })
	// A removal's teardown may still hold a netlink socket for a moment,
	// at either count: a leak is an fd that stays.
	var after int
	harness.WaitFor(t, "the daemon's fds to return to their baseline", func() bool {
		after = harness.OpenFDs(env.DaemonPID())
		return after <= baseline
	})
	t.Logf("%d create/close cycles: daemon fds %d before, %d after", cycles, baseline, after)
}

func TestSecondDaemonExitsWhenNameIsTaken(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	dir := t.TempDir()
	out, err := exec.Command(harness.DaemonBinary(), "--config", env.ConfigPath, "--state-dir", dir, "--hooks-dir", env.HooksDir).CombinedOutput()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("second netgrantd: %v, want exit status 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "already owned") {
		t.Fatalf("second netgrantd does not say the name is taken:\n%s", out)
	}
}

func hasObject(t *testing.T, env *harness.Env, path dbus.ObjectPath) bool {
	_, ok := env.ManagedObjects()[path]
	return ok
}

// BenchmarkCreateTap measures a whole CreateTap as a user sees it — bus,
// polkit, the device, the reply with its fd — and closing it again.
func BenchmarkCreateTap(b *testing.B) {
	env := harness.Start(b, harness.Options{Rules: allowAlice})
	alice := env.Client(b, harness.UserAlice)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_, fds, _, err := alice.CreateTap(nil)
		if err != nil {
			b.Fatal(err)
		}
		alice.CloseFD(fds[0])
	}
}
