package tap

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// create makes a tap that is closed again when the test ends.
func create(t testing.TB, cfg Config) *Device {
	t.Helper()
	dev, err := Create(cfg)
	if err != nil {
		t.Fatalf("Create(%+v): %v", cfg, err)
	}
	t.Cleanup(func() { closeAll(dev) })
	return dev
}

func closeAll(dev *Device) {
	for _, f := range dev.Files {
		f.Close()
	}
}

func linkExists(t testing.TB, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return false
	}
	if err != nil {
		t.Fatalf("looking up %s: %v", name, err)
	}
	return true
}

func tapLinks(t *testing.T) []string {
	t.Helper()
	links, err := netlink.LinkList()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range links {
		if strings.HasPrefix(l.Attrs().Name, NamePrefix) {
			names = append(names, l.Attrs().Name)
		}
	}
	return names
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v: %s", args, err, out)
	}
}

func TestCreateCloseRemovesLink(t *testing.T) {
	nstest.Require(t)
	dev := create(t, Config{Queues: 1})
	if !linkExists(t, dev.Name) {
		t.Fatalf("%s does not exist after Create", dev.Name)
	}
	closeAll(dev)
	if linkExists(t, dev.Name) {
		t.Fatalf("%s still exists after its fds were closed", dev.Name)
	}
}

func TestNamesLowestFree(t *testing.T) {
	nstest.Require(t)
	first := create(t, Config{Queues: 1})
	second := create(t, Config{Queues: 1})
	if first.Name != "ngtap0" || second.Name != "ngtap1" {
		t.Fatalf("names %s, %s; want ngtap0, ngtap1", first.Name, second.Name)
	}
	closeAll(first)
	third := create(t, Config{Queues: 1})
	if third.Name != "ngtap0" {
		t.Fatalf("name after ngtap0 was freed is %s, want ngtap0", third.Name)
	}
}

func TestNeverAttachesToExistingDevice(t *testing.T) {
	nstest.Require(t)
	run(t, "ip", "tuntap", "add", "ngtap0", "mode", "tap")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "ngtap0").Run() })
	dev := create(t, Config{Queues: 1})
	if dev.Name != "ngtap1" {
		t.Fatalf("got %s next to a persistent ngtap0, want ngtap1", dev.Name)
	}
	// Nothing of ours is attached to the persistent device: closing our fds
	// leaves it as it was, owned by root alone.
	closeAll(dev)
	if !linkExists(t, "ngtap0") {
		t.Fatal("persistent ngtap0 vanished")
	}
	if owner := sysfs(t, "ngtap0", "owner"); owner != "-1" {
		t.Fatalf("persistent ngtap0 has owner %s, want -1", owner)
	}
}

func sysfs(t *testing.T, name, attr string) string {
	t.Helper()
	b, err := os.ReadFile("/sys/class/net/" + name + "/" + attr)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestAttributesApplied(t *testing.T) {
	nstest.Require(t)
	mac := net.HardwareAddr{0xfe, 0x54, 0x00, 0x12, 0x34, 0x56}
	dev := create(t, Config{Queues: 1, UID: 1234, GID: 5678, MTU: 9000, LinkMAC: mac})
	if got := sysfs(t, dev.Name, "owner"); got != "1234" {
		t.Errorf("owner %s, want 1234", got)
	}
	if got := sysfs(t, dev.Name, "group"); got != "5678" {
		t.Errorf("group %s, want 5678", got)
	}
	link, err := netlink.LinkByName(dev.Name)
	if err != nil {
		t.Fatal(err)
	}
	attrs := link.Attrs()
	if attrs.Index != dev.Index {
		t.Errorf("ifindex %d, Device says %d", attrs.Index, dev.Index)
	}
	if !bytes.Equal(attrs.HardwareAddr, mac) {
		t.Errorf("link address %s, want %s", attrs.HardwareAddr, mac)
	}
	if attrs.MTU != 9000 {
		t.Errorf("MTU %d, want 9000", attrs.MTU)
	}
	if attrs.Flags&net.FlagUp == 0 {
		t.Errorf("link is not up")
	}
	// The client shares the file status flags: it must get a blocking fd,
	// as open(2) would have given it.
	fl, err := unix.FcntlInt(dev.Files[0].Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if fl&unix.O_NONBLOCK != 0 {
		t.Errorf("queue fd is non-blocking")
	}
}

func TestFlags(t *testing.T) {
	nstest.Require(t)
	for _, cfg := range []Config{
		{Queues: 1, VnetHdr: false},
		{Queues: 1, VnetHdr: true},
		{Queues: 2, VnetHdr: false},
		{Queues: 3, VnetHdr: true},
	} {
		dev := create(t, cfg)
		if len(dev.Files) != cfg.Queues {
			t.Fatalf("%+v: got %d fds", cfg, len(dev.Files))
		}
		for i, f := range dev.Files {
			flags, err := tunFlags(f)
			if err != nil {
				t.Fatal(err)
			}
			want := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
			if cfg.VnetHdr {
				want |= unix.IFF_VNET_HDR
			}
			if cfg.Queues > 1 {
				want |= unix.IFF_MULTI_QUEUE
			}
			const reported = unix.IFF_TAP | unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_VNET_HDR | unix.IFF_MULTI_QUEUE | unix.IFF_PERSIST
			if flags&reported != want {
				t.Errorf("%+v: queue %d flags %#x, want %#x", cfg, i, flags&reported, want)
			}
		}
		closeAll(dev)
	}
}

func TestDeleteWhileOpen(t *testing.T) {
	nstest.Require(t)
	dev := create(t, Config{Queues: 2})
	if err := Delete(dev.Name, dev.Index); err != nil {
		t.Fatalf("Delete(%s): %v", dev.Name, err)
	}
	if linkExists(t, dev.Name) {
		t.Fatalf("%s still exists after Delete", dev.Name)
	}
	for i, f := range dev.Files {
		if _, err := f.Write(testFrame("after delete")); err == nil {
			t.Errorf("write on queue %d of a deleted tap succeeded", i)
		} else {
			t.Logf("queue %d after Delete: %v", i, err)
		}
	}
	if err := Delete(dev.Name, dev.Index); err != nil {
		t.Fatalf("second Delete(%s): %v", dev.Name, err)
	}
}

func TestDeleteRefusesOtherLinks(t *testing.T) {
	nstest.Require(t)
	run(t, "ip", "link", "add", "ngtap7", "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "ngtap7").Run() })
	bridgeLink, err := net.InterfaceByName("ngtap7")
	if err != nil {
		t.Fatal(err)
	}
	if err := Delete("ngtap7", bridgeLink.Index); err == nil {
		t.Error("Delete accepted a bridge named ngtap7")
	}
	if err := Delete("lo", 1); err == nil {
		t.Error("Delete accepted lo")
	}
	if !linkExists(t, "ngtap7") || !linkExists(t, "lo") {
		t.Fatal("a refused Delete removed the link")
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

func TestFailureLeavesNothing(t *testing.T) {
	nstest.Require(t)
	before := openFDs(t)
	for _, cfg := range []Config{
		{Queues: 1, MTU: 70000},
		{Queues: 0},
		{Queues: 17},
		// multicast: accepted by the package, refused by the kernel after
		// the device exists, so this one exercises the rollback
		{Queues: 4, LinkMAC: net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01}},
		{Queues: 1, LinkMAC: net.HardwareAddr{0, 0, 0, 0, 0, 0}},
	} {
		if dev, err := Create(cfg); err == nil {
			closeAll(dev)
			t.Errorf("Create(%+v) succeeded", cfg)
		} else {
			t.Logf("Create(%+v): %v", cfg, err)
		}
		if names := tapLinks(t); len(names) != 0 {
			t.Fatalf("failed Create(%+v) left %v", cfg, names)
		}
	}
	if after := openFDs(t); after != before {
		t.Fatalf("%d fds open before failed Creates, %d after", before, after)
	}
}

// testEtherType is IEEE's local experimental EtherType, so nothing the
// kernel sends on its own (IPv6 neighbour discovery) matches.
const testEtherType = 0x88b5

// testFrame is a broadcast frame carrying marker.
func testFrame(marker string) []byte {
	frame := []byte{
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination
		0x52, 0x54, 0x00, 0x00, 0x00, 0x01, // source
		testEtherType >> 8, testEtherType & 0xff,
	}
	frame = append(frame, marker...)
	for len(frame) < 60 {
		frame = append(frame, 0)
	}
	return frame
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// packetSocket is an AF_PACKET socket on the interface: it sees frames
// the interface receives and sends frames out through it.
func packetSocket(t *testing.T, ifindex int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex}); err != nil {
		t.Fatal(err)
	}
	return fd
}

// waitMarker reads frames from whichever of fds becomes readable until one
// carries marker and returns the index of that fd. The timeout only keeps a
// lost frame from hanging the test.
func waitMarker(t *testing.T, fds []int, marker string) int {
	t.Helper()
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	buf := make([]byte, 65536)
	for {
		n, err := unix.Poll(pfds, 10000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatalf("no frame with %q arrived", marker)
		}
		for i, p := range pfds {
			if p.Revents&unix.POLLIN == 0 {
				continue
			}
			n, err := unix.Read(fds[i], buf)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(buf[:n], []byte(marker)) {
				return i
			}
		}
	}
}

func TestEveryQueueCarriesFrames(t *testing.T) {
	nstest.Require(t)
	dev := create(t, Config{Queues: 4})
	if len(dev.Files) != 4 {
		t.Fatalf("got %d fds, want 4", len(dev.Files))
	}
	sock := packetSocket(t, dev.Index)
	var queues []int
	for i, f := range dev.Files {
		queues = append(queues, int(f.Fd()))
		marker := "guest to host on queue " + string(rune('0'+i))
		if _, err := f.Write(testFrame(marker)); err != nil {
			t.Fatalf("writing on queue %d: %v", i, err)
		}
		waitMarker(t, []int{sock}, marker)
	}

	const marker = "host to guest"
	to := &unix.SockaddrLinklayer{Protocol: htons(testEtherType), Ifindex: dev.Index}
	if err := unix.Sendto(sock, testFrame(marker), 0, to); err != nil {
		t.Fatalf("sending into %s: %v", dev.Name, err)
	}
	waitMarker(t, queues, marker)
}

func BenchmarkCreateClose(b *testing.B) {
	nstest.Require(b)
	for _, queues := range []int{1, 4} {
		b.Run(fmt.Sprintf("queues=%d", queues), func(b *testing.B) {
			cfg := Config{Queues: queues, VnetHdr: true, UID: 1000, GID: 1000, MTU: 1500, LinkMAC: LinkMAC(GuestMAC())}
			for range b.N {
				dev, err := Create(cfg)
				if err != nil {
					b.Fatal(err)
				}
				closeAll(dev)
			}
		})
	}
}

// A stale removal must not delete the newer device that took the name.
func TestDeleteLeavesNewerDeviceOfSameName(t *testing.T) {
	nstest.Require(t)
	old := create(t, Config{Queues: 1})
	closeAll(old)
	newer := create(t, Config{Queues: 1})
	defer closeAll(newer)
	if newer.Name != old.Name {
		t.Skipf("the kernel gave the new tap %s, not %s", newer.Name, old.Name)
	}
	if err := Delete(old.Name, old.Index); err != nil {
		t.Fatal(err)
	}
	if !linkExists(t, newer.Name) {
		t.Fatalf("Delete of the old %s removed the newer device", old.Name)
	}
}

func TestSetMTU(t *testing.T) {
	nstest.Require(t)
	dev := create(t, Config{Queues: 1, MTU: 1500})
	defer closeAll(dev)
	if err := SetMTU(dev.Name, dev.Index, 9000); err != nil {
		t.Fatal(err)
	}
	link, err := net.InterfaceByName(dev.Name)
	if err != nil {
		t.Fatal(err)
	}
	if link.MTU != 9000 {
		t.Fatalf("MTU is %d after SetMTU 9000", link.MTU)
	}
	if err := SetMTU(dev.Name, dev.Index+1000, 1400); err == nil {
		t.Fatal("SetMTU accepted a device index that is not the tap's")
	}
}

// Inspect finds a tap by name and index together, and nothing once its
// last fd closed: the core's test of whether a tap is still there.
func TestInspectFindsOnlyTheLiveTap(t *testing.T) {
	nstest.Require(t)
	dev := create(t, Config{Queues: 1})
	if _, ok := Inspect(dev.Name, dev.Index); !ok {
		t.Fatalf("Inspect(%s, %d) finds no live tap", dev.Name, dev.Index)
	}
	_, otherIndex := Inspect(dev.Name, dev.Index+1000)
	_, loopback := Inspect("lo", 1)
	if otherIndex || loopback {
		t.Fatal("Inspect finds a tap for a name and index that are not the tap's")
	}
	closeAll(dev)
	if _, ok := Inspect(dev.Name, dev.Index); ok {
		t.Fatalf("Inspect(%s) finds the tap after its last fd closed", dev.Name)
	}
}

// tunFlags reports the TUNGETIFF flags of an open tap fd.
func tunFlags(f *os.File) (uint16, error) {
	ifr, err := unix.NewIfreq("")
	if err != nil {
		return 0, err
	}
	if err := control(f, func(fd int) error { return unix.IoctlIfreq(fd, unix.TUNGETIFF, ifr) }); err != nil {
		return 0, fmt.Errorf("reading tap flags: %w", err)
	}
	return ifr.Uint16(), nil
}
