package attack_test

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// maxAddrsPerGuest is API.md's bound on a tap's IPv6 addresses.
const maxAddrsPerGuest = 16

// A guest that solicits the gateway from a hundred made-up addresses of
// its /64, and from one outside it, has the host's neighbour table learn
// them all; its tap shows at most 16 of them, all inside the /64 (the
// addresses its name would be answered with). Without the bound the guest
// would make netgrantd publish as many as the table holds.
func TestGuestClaimingManyIPv6AddressesIsBounded(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice := env.Client(t, harness.UserAlice)
	_, info, err := alice.CreateNATNetwork("lab", nil)
	if err != nil {
		t.Fatal(err)
	}
	bridge := info["bridge"].Value().(string)
	gateway6 := netip.MustParseAddr(info["gateway6"].Value().(string))
	subnet6 := netip.MustParsePrefix(info["subnet6"].Value().(string))
	tapPath, fds, tapInfo, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("lab"), "vnet_hdr": dbus.MakeVariant(false)})
	if err != nil {
		t.Fatal(err)
	}
	guestMAC, _ := net.ParseMAC(tapInfo["mac"].Value().(string))
	raw, err := os.ReadFile(filepath.Join("/sys/class/net", bridge, "address"))
	if err != nil {
		t.Fatal(err)
	}
	bridgeMAC, _ := net.ParseMAC(strings.TrimSpace(string(raw)))

	// A neighbour solicitation for the gateway, from src, with the guest's
	// MAC as its source link-layer address: the host answers it and
	// records src as the guest's.
	solicit := func(src netip.Addr) []byte {
		target := gateway6.As16()
		msg := append([]byte{135, 0, 0, 0, 0, 0, 0, 0}, target[:]...)
		msg = append(append(msg, 1, 1), guestMAC...)
		return ipv6FrameTo(guestMAC, bridgeMAC, src, gateway6, 58, msg, 2)
	}
	// The test's guest does not answer the host's probes of the addresses
	// it claimed; a real one would, and keep them in the table: so the
	// host waits long before probing.
	if err := os.WriteFile(filepath.Join("/proc/sys/net/ipv6/neigh", bridge, "delay_first_probe_time"), []byte("600"), 0o644); err != nil {
		t.Fatal(err)
	}
	sent := map[string]bool{}
	addr := subnet6.Addr()
	for range 100 {
		addr = addr.Next()
		sent[addr.String()] = true
		alice.Write(fds[0], solicit(addr))
	}
	alice.Write(fds[0], solicit(netip.MustParseAddr("fd00:dead:beef::1")))

	// The host learnt them: its neighbour table holds far more than 16.
	harness.WaitFor(t, "the host's neighbour table to learn the guest's addresses", func() bool {
		out, _ := exec.Command("ip", "-6", "neigh", "show", "dev", bridge).Output()
		return strings.Count(string(out), guestMAC.String()) >= 4*maxAddrsPerGuest
	})
	var shown []string
	harness.WaitFor(t, "Tap.IPv6 to show 16 addresses", func() bool {
		shown, _ = env.Property(tapPath, "org.netgrant.NetGrant1.Tap", "IPv6").([]string)
		return len(shown) >= maxAddrsPerGuest
	})
	if len(shown) != maxAddrsPerGuest {
		t.Errorf("Tap.IPv6 shows %d addresses, want at most %d", len(shown), maxAddrsPerGuest)
	}
	for _, a := range shown {
		if !sent[a] {
			t.Errorf("Tap.IPv6 shows %s, not one of the guest's addresses in %s", a, subnet6)
		}
	}
}
