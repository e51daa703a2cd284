package attack_test

import (
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// routerAdvertisement is what a guest sends to make itself the host's IPv6
// router: an RA from guestMAC for 2001:db8:1::/64 with autoconfiguration
// and a default-router lifetime, with any further options.
func routerAdvertisement(guestMAC net.HardwareAddr, options ...byte) []byte {
	src := net.ParseIP("fe80::5054:ff:fe12:3456").To16()
	dst := net.ParseIP("ff02::1").To16()
	icmp := []byte{
		134, 0, 0, 0, // type RA, code, checksum
		64, 0, 0x07, 0x08, // hop limit, flags, router lifetime 1800 s
		0, 0, 0, 0, 0, 0, 0, 0, // reachable, retrans timers
		3, 4, 64, 0xc0, // prefix information: on-link, autonomous
		0, 0, 0x0e, 0x10, 0, 0, 0x0e, 0x10, 0, 0, 0, 0, // lifetimes, reserved
	}
	icmp = append(icmp, net.ParseIP("2001:db8:1::").To16()...)
	icmp = append(icmp, 1, 1) // source link-layer address option
	icmp = append(icmp, guestMAC...)
	icmp = append(icmp, options...)
	// The ICMPv6 checksum covers a pseudo-header of the addresses, length
	// and next header.
	var sum uint32
	pseudo := append(append(append([]byte{}, src...), dst...), 0, 0, byte(len(icmp)>>8), byte(len(icmp)), 0, 0, 0, 58)
	for _, b := range [][]byte{pseudo, icmp} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(icmp[2:], ^uint16(sum))

	frame := append([]byte{0x33, 0x33, 0, 0, 0, 1}, guestMAC...)
	frame = append(frame, 0x86, 0xdd)
	ipv6 := []byte{0x60, 0, 0, 0, byte(len(icmp) >> 8), byte(len(icmp)), 58, 255}
	frame = append(frame, ipv6...)
	frame = append(frame, src...)
	frame = append(frame, dst...)
	return append(frame, icmp...)
}

func ipOutput(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// assertNoHostIPv6 checks that tap carries no IPv6 for the host: IPv6 is
// off on it, it has no address, and no route (a default route above all)
// goes through it.
func assertNoHostIPv6(t *testing.T, tap string) {
	t.Helper()
	disabled, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv6/conf", tap, "disable_ipv6"))
	if err != nil || strings.TrimSpace(string(disabled)) != "1" {
		t.Errorf("%s: disable_ipv6 is %q (%v), want 1", tap, disabled, err)
	}
	if addrs := ipOutput(t, "-6", "addr", "show", "dev", tap); addrs != "" {
		t.Errorf("%s has IPv6 addresses:\n%s", tap, addrs)
	}
	if routes := ipOutput(t, "-6", "route", "show", "dev", tap); routes != "" {
		t.Errorf("routes through %s:\n%s", tap, routes)
	}
	if routes := ipOutput(t, "-6", "route", "show", "default"); strings.Contains(routes, tap) {
		t.Errorf("a default route goes through %s:\n%s", tap, routes)
	}
}

// A standalone tap, and one left detached when its network went, came up
// with IPv6 and accept_ra=1: a guest's router advertisement gave the host
// an address and a default route through the tap.
func TestGuestCannotConfigureTheHostThroughItsTap(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice := env.Client(t, harness.UserAlice)

	_, fds, info, err := alice.CreateTap(map[string]dbus.Variant{"vnet_hdr": dbus.MakeVariant(false)})
	if err != nil {
		t.Fatal(err)
	}
	standalone := info["ifname"].Value().(string)
	mac, _ := net.ParseMAC(info["mac"].Value().(string))
	alice.Write(fds[0], routerAdvertisement(mac))
	assertNoHostIPv6(t, standalone)

	mustCreateNetwork(t, alice, "lab", nil)
	_, fds, info, err = alice.CreateTap(map[string]dbus.Variant{"vnet_hdr": dbus.MakeVariant(false), "network": dbus.MakeVariant("lab")})
	if err != nil {
		t.Fatal(err)
	}
	detached := info["ifname"].Value().(string)
	alice.Call("GetNetwork", "lab")
	r := alice.Do(harness.Call{Path: networkPath("lab"), Interface: "org.netgrant.NetGrant1.Network", Method: "Delete"})
	if r.ErrorName != "" {
		t.Fatalf("deleting lab: %s: %s", r.ErrorName, r.ErrorMessage)
	}
	mac, _ = net.ParseMAC(info["mac"].Value().(string))
	alice.Write(fds[0], routerAdvertisement(mac))
	assertNoHostIPv6(t, detached)
}

// A tap's fd holder can make it persistent (it would outlive every fd and
// escape teardown) or give it to another uid; either way netgrant deletes
// it.
func TestTapMadePersistentOrGivenAwayIsDeleted(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice, mallory := env.Client(t, harness.UserAlice), env.Client(t, harness.UserMallory)
	for _, tc := range []struct {
		ioctl string
		value int
	}{
		{"persist", 1},
		{"owner", int(mallory.UID)},
	} {
		path, fds, info, err := alice.CreateTap(nil)
		if err != nil {
			t.Fatal(err)
		}
		name := info["ifname"].Value().(string)
		alice.TunIoctl(fds[0], tc.ioctl, tc.value)
		harness.WaitFor(t, name+" to be deleted after TUNSET"+strings.ToUpper(tc.ioctl), func() bool {
			_, exported := env.ManagedObjects()[path]
			return !exported && !linkExists(name)
		})
	}
	if logs := strings.Join(env.DaemonLog(), "\n"); !strings.Contains(logs, "made persistent or gave to another user") {
		t.Errorf("netgrantd did not log why it deleted the taps:\n%s", logs)
	}
}

func linkExists(name string) bool {
	_, err := os.Stat(filepath.Join("/sys/class/net", name))
	return err == nil
}
