package bridge

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/nstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

func link(t *testing.T, name string) netlink.Link {
	t.Helper()
	l, err := netlink.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func sysfs(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func create(t *testing.T, name string, mtu int, addr string) Config {
	t.Helper()
	cfg := Config{Name: name, MTU: mtu, MAC: MACFor(name), Address: netip.MustParsePrefix(addr)}
	if err := Create(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Delete(name) })
	return cfg
}

// addLink makes a link with ip(8), gone when t ends.
func addLink(t *testing.T, name string, args ...string) {
	t.Helper()
	ip(t, append([]string{"link", "add", name}, args...)...)
	t.Cleanup(func() { _ = exec.Command("ip", "link", "del", name).Run() })
}

// vethPort makes an up veth pair, its port end carrying mac (random if
// empty), so that a bridge it joins gets carrier.
func vethPort(t *testing.T, name, mac string) {
	t.Helper()
	var args []string
	if mac != "" {
		args = []string{"address", mac}
	}
	addLink(t, name, append(args, "type", "veth", "peer", "name", name+"p")...)
	ip(t, "link", "set", name, "up")
	ip(t, "link", "set", name+"p", "up")
}

func TestCreate(t *testing.T) {
	nstest.Require(t)
	cfg := create(t, "ng-lab", 9000, "10.97.3.1/24")

	br := link(t, "ng-lab")
	if _, ok := br.(*netlink.Bridge); !ok {
		t.Fatalf("ng-lab is a %s, want a bridge", br.Type())
	}
	if isBr, err := IsBridge("ng-lab"); !isBr || err != nil {
		t.Errorf("IsBridge(ng-lab) = %v, %v", isBr, err)
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		t.Error("ng-lab is down")
	}
	if br.Attrs().MTU != 9000 {
		t.Errorf("ng-lab MTU = %d, want 9000", br.Attrs().MTU)
	}
	if got := br.Attrs().HardwareAddr.String(); got != cfg.MAC.String() {
		t.Errorf("ng-lab MAC = %s, want %s", got, cfg.MAC)
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].IPNet.String() != "10.97.3.1/24" {
		t.Errorf("ng-lab IPv4 addresses = %v, want 10.97.3.1/24", addrs)
	}
	if got := sysfs(t, "/sys/class/net/ng-lab/bridge/stp_state"); got != "0" {
		t.Errorf("stp_state = %s, want 0", got)
	}
	if got := sysfs(t, "/sys/class/net/ng-lab/bridge/forward_delay"); got != "0" {
		t.Errorf("forward_delay = %s, want 0", got)
	}
}

func TestNoIPv6Address(t *testing.T) {
	nstest.Require(t)
	create(t, "ng-lab", 1500, "10.97.3.1/24")
	attachFirstPort(t, "ng-lab")

	addrs, err := netlink.AddrList(link(t, "ng-lab"), netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 0 {
		t.Errorf("ng-lab has IPv6 addresses %v, want none", addrs)
	}
}

// With IPv6, the bridge carries exactly the fixed link-local address and
// the gateway's, usable at once, once it has carrier too, and ignores
// router advertisements.
func TestIPv6GatewayAddresses(t *testing.T) {
	nstest.Require(t)
	cfg := Config{Name: "ng-lab", MTU: 1500, MAC: MACFor("ng-lab"), Address: netip.MustParsePrefix("10.97.3.1/24"),
		Address6: netip.MustParsePrefix("fd00:97:3::1/64")}
	if err := Create(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = Delete("ng-lab") })
	attachFirstPort(t, "ng-lab")
	addrs, err := netlink.AddrList(link(t, "ng-lab"), netlink.FAMILY_V6)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.IPNet.String())
		if a.Flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("%s is still tentative", a.IPNet)
		}
	}
	slices.Sort(got)
	if strings.Join(got, " ") != "fd00:97:3::1/64 fe80::1/64" {
		t.Errorf("ng-lab IPv6 addresses %v, want fd00:97:3::1/64 and fe80::1/64", got)
	}
	if got := sysfs(t, "/proc/sys/net/ipv6/conf/ng-lab/accept_ra"); got != "0" {
		t.Errorf("accept_ra = %s, want 0", got)
	}
}

// Turning IPv6 forwarding on keeps links that accepted router
// advertisements accepting them.
func TestEnableIPv6ForwardingKeepsRouterAdvertisements(t *testing.T) {
	nstest.Require(t)
	addLink(t, "slaac0", "type", "veth", "peer", "name", "slaac0p")
	addLink(t, "static0", "type", "veth", "peer", "name", "static0p")
	write := func(path, value string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(value), 0); err != nil {
			t.Fatal(err)
		}
	}
	write("/proc/sys/net/ipv6/conf/all/forwarding", "0")
	write("/proc/sys/net/ipv6/conf/slaac0/accept_ra", "1")
	write("/proc/sys/net/ipv6/conf/static0/accept_ra", "0")
	changed, err := EnableIPv6Forwarding()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(changed, "slaac0") || slices.Contains(changed, "static0") {
		t.Errorf("changed %v, want slaac0 and not static0", changed)
	}
	for link, want := range map[string]string{"all/forwarding": "1", "slaac0/accept_ra": "2", "static0/accept_ra": "0", "slaac0/forwarding": "1"} {
		if got := sysfs(t, "/proc/sys/net/ipv6/conf/"+link); got != want {
			t.Errorf("%s = %s, want %s", link, got, want)
		}
	}
	if changed, err := EnableIPv6Forwarding(); err != nil || len(changed) != 0 {
		t.Errorf("a second call changed %v: %v", changed, err)
	}
}

// attachFirstPort gives bridge a port, and so carrier, and returns once
// the bridge has configured IPv6 as it does on getting carrier: the
// kernel reports that operstate change only after addrconf has run.
func attachFirstPort(t *testing.T, bridge string) {
	t.Helper()
	vethPort(t, "port0", "")
	updates := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	defer close(done)
	if err := netlink.LinkSubscribe(updates, done); err != nil {
		t.Fatal(err)
	}
	if err := Attach("port0", bridge); err != nil {
		t.Fatal(err)
	}
	waitOperUp(t, updates, bridge)
}

func waitOperUp(t *testing.T, updates <-chan netlink.LinkUpdate, name string) {
	t.Helper()
	if link(t, name).Attrs().OperState == netlink.OperUp {
		return
	}
	hang := time.After(30 * time.Second)
	for {
		select {
		case u := <-updates:
			if u.Attrs().Name == name && u.Attrs().OperState == netlink.OperUp {
				return
			}
		case <-hang:
			t.Fatalf("%s never got carrier", name)
		}
	}
}

func TestMACPinned(t *testing.T) {
	nstest.Require(t)
	cfg := create(t, "ng-lab", 1500, "10.97.3.1/24")
	// Unpinned, a bridge takes the lowest MAC among its ports.
	vethPort(t, "port0", "00:00:00:00:00:01")

	if err := Attach("port0", "ng-lab"); err != nil {
		t.Fatal(err)
	}
	if got := link(t, "ng-lab").Attrs().HardwareAddr.String(); got != cfg.MAC.String() {
		t.Errorf("with port: ng-lab MAC = %s, want %s", got, cfg.MAC)
	}
	ip(t, "link", "set", "port0", "nomaster")
	if got := link(t, "ng-lab").Attrs().HardwareAddr.String(); got != cfg.MAC.String() {
		t.Errorf("after port left: ng-lab MAC = %s, want %s", got, cfg.MAC)
	}
}

func TestAttachMovesPortAndKeepsMTUs(t *testing.T) {
	nstest.Require(t)
	create(t, "ng-lab", 9000, "10.97.3.1/24")
	create(t, "ngbr1", 1400, "10.97.4.1/24")
	vethPort(t, "port0", "")

	steps := []struct {
		bridge string
		mtu    int
	}{{"ng-lab", 9000}, {"ngbr1", 1400}}
	for _, s := range steps {
		if err := Attach("port0", s.bridge); err != nil {
			t.Fatal(err)
		}
		port := link(t, "port0")
		if port.Attrs().MasterIndex != link(t, s.bridge).Attrs().Index {
			t.Errorf("port0 is not on %s after Attach", s.bridge)
		}
		if port.Attrs().MTU != s.mtu {
			t.Errorf("port0 MTU on %s = %d, want %d", s.bridge, port.Attrs().MTU, s.mtu)
		}
	}
	ip(t, "link", "set", "port0", "nomaster")
	// Bridges keep their own MTU when ports come and go.
	for name, want := range map[string]int{"ng-lab": 9000, "ngbr1": 1400} {
		if got, err := MTU(name); got != want || err != nil {
			t.Errorf("MTU(%s) = %d, %v after its ports left; want %d", name, got, err, want)
		}
	}
}

func TestAttachRefusesNonBridge(t *testing.T) {
	nstest.Require(t)
	vethPort(t, "port0", "")
	vethPort(t, "port1", "")
	if err := Attach("port0", "port1"); err == nil {
		t.Fatal("Attach onto a veth succeeded")
	}
	if link(t, "port0").Attrs().MasterIndex != 0 {
		t.Error("port0 got a master")
	}
}

func TestDelete(t *testing.T) {
	nstest.Require(t)
	create(t, "ng-lab", 1500, "10.97.3.1/24")
	for i := range 2 {
		if err := Delete("ng-lab"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
		if exists, err := linkExists("ng-lab"); exists || err != nil {
			t.Fatalf("after Delete #%d: Exists(ng-lab) = %v, %v", i+1, exists, err)
		}
	}
}

func TestDeleteSparesOtherLinks(t *testing.T) {
	nstest.Require(t)
	addLink(t, "br0", "type", "bridge")
	vethPort(t, "ng-five", "")
	for _, name := range []string{"br0", "ng-five"} {
		if err := Delete(name); err == nil {
			t.Errorf("Delete(%s) succeeded", name)
		}
		if exists, err := linkExists(name); !exists || err != nil {
			t.Errorf("Exists(%s) = %v, %v after a refused Delete", name, exists, err)
		}
	}
}

func TestCreateOnExistingName(t *testing.T) {
	nstest.Require(t)
	addLink(t, "ng-lab", "address", "02:00:00:00:00:42", "type", "bridge")
	err := Create(Config{Name: "ng-lab", MTU: 1500, MAC: MACFor("x"), Address: netip.MustParsePrefix("10.97.3.1/24")})
	if !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create on an existing name: %v, want an error wrapping EEXIST", err)
	}
	l, err := netlink.LinkByName("ng-lab")
	if err != nil {
		t.Fatalf("the existing ng-lab is gone: %v", err)
	}
	if got := l.Attrs().HardwareAddr.String(); got != "02:00:00:00:00:42" {
		t.Errorf("the existing ng-lab was changed: MAC %s", got)
	}
	if addrs, _ := netlink.AddrList(l, netlink.FAMILY_V4); len(addrs) != 0 {
		t.Errorf("the existing ng-lab got addresses %v", addrs)
	}
}

func TestCreateRejectsBadConfig(t *testing.T) {
	good := Config{Name: "ng-lab", MTU: 1500, MAC: MACFor("x"), Address: netip.MustParsePrefix("10.97.3.1/24")}
	tests := map[string]func(*Config){
		"name":          func(c *Config) { c.Name = "br0" },
		"MTU too small": func(c *Config) { c.MTU = 67 },
		"MTU too large": func(c *Config) { c.MTU = 65536 },
		"multicast MAC": func(c *Config) { c.MAC = net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1} },
		"zero MAC":      func(c *Config) { c.MAC = make(net.HardwareAddr, 6) },
		"short MAC":     func(c *Config) { c.MAC = c.MAC[:4] },
		"IPv6 address":  func(c *Config) { c.Address = netip.MustParsePrefix("fd00::1/64") },
	}
	for what, spoil := range tests {
		cfg := good
		spoil(&cfg)
		if err := Create(cfg); err == nil {
			t.Errorf("Create with bad %s succeeded", what)
			_ = Delete(cfg.Name)
		}
	}
}

func TestEnableForwarding(t *testing.T) {
	nstest.Require(t)
	if err := os.WriteFile(ipForward, []byte("0\n"), 0); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := EnableForwarding(); err != nil {
			t.Fatal(err)
		}
		if got := sysfs(t, ipForward); got != "1" {
			t.Fatalf("ip_forward = %s after EnableForwarding, want 1", got)
		}
	}
}

// linkExists reports whether a link named name exists.
func linkExists(name string) (bool, error) {
	_, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("finding %s: %w", name, err)
	}
	return true, nil
}

// DeleteOwn deletes a bridge only if it has the MAC its creator gave it:
// a link that took the name meanwhile is someone else's.
func TestDeleteOwnLeavesOthersLinks(t *testing.T) {
	nstest.Require(t)
	mine, theirs := MACFor("mine"), MACFor("theirs")
	if err := add("ng-own", 1500, theirs); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Delete("ng-own") })
	if err := DeleteOwn("ng-own", mine); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("ng-own"); err != nil {
		t.Fatalf("a bridge with another MAC was deleted: %v", err)
	}
	if err := DeleteOwn("ng-own", theirs); err != nil {
		t.Fatal(err)
	}
	if _, err := netlink.LinkByName("ng-own"); err == nil {
		t.Fatal("the bridge with its creator's MAC is still there")
	}
	if err := DeleteOwn("ng-own", theirs); err != nil {
		t.Errorf("a name no link has: %v", err)
	}
}
