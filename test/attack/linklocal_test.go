package attack_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// A guest sent its frames to an IEEE link-local group address
// (01:80:c2:00:00:0X): the bridge does not forward those but hands them up
// the tap's own stack, past the bridge's prerouting hook where the guests'
// filters hung, to host input rules that matched the bridge, not the tap.
// With any MAC and the source 203.0.113.66 it reached UDP 7777 on the
// gateway and on the host's other address, where its honest frames were
// refused. Now whatever its destination MAC — every link-local group
// address, the bridge's own, the tap's own — a forged frame reaches
// nothing on the host or another guest, and honest traffic still flows.
func TestGuestFramesToAnyMACAreFiltered(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { testGuestFramesToAnyMACAreFiltered(t, backend) })
	}
}

func testGuestFramesToAnyMACAreFiltered(t *testing.T, backend string) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob, Config: "[Firewall]\nBackend=" + backend + "\n"})
	// The host's other address, on the subnet the forged source claims.
	harness.AddUpstream(t, harness.UpstreamOptions{Name: "lan", HostAddr: "203.0.113.1/24", PeerAddr: "203.0.113.2/24"})
	hostAddr := netip.MustParseAddr("203.0.113.1")
	alice := env.Client(t, harness.UserAlice)
	_, info, err := alice.CreateNATNetwork("lab", nil)
	if err != nil {
		t.Fatal(err)
	}
	gateway := netip.MustParseAddr(info["gateway"].Value().(string))
	bridge := info["bridge"].Value().(string)
	noVnetHdr := map[string]dbus.Variant{"network": dbus.MakeVariant("lab"), "vnet_hdr": dbus.MakeVariant(false)}
	_, attackerFDs, attacker, err := alice.CreateTap(noVnetHdr)
	if err != nil {
		t.Fatal(err)
	}
	_, victimFDs, _, err := alice.CreateTap(noVnetHdr)
	if err != nil {
		t.Fatal(err)
	}
	myMAC, err := net.ParseMAC(attacker["mac"].Value().(string))
	if err != nil {
		t.Fatal(err)
	}
	myIP := netip.MustParseAddr(attacker["ipv4"].Value().(string))

	listener, err := net.ListenPacket("udp4", "0.0.0.0:7777")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	var mu sync.Mutex
	var reached []string
	go func() {
		buf := make([]byte, 2048)
		for {
			n, _, err := listener.ReadFrom(buf)
			if err != nil {
				return
			}
			mu.Lock()
			reached = append(reached, labelOf(buf[:n]))
			mu.Unlock()
		}
	}()

	destinations := map[string]net.HardwareAddr{
		"bridge": linkMAC(t, bridge),
		"tap":    linkMAC(t, attacker["ifname"].Value().(string)),
	}
	for last := byte(0); last <= 0x0f; last++ {
		destinations[fmt.Sprintf("01:80:c2:00:00:%02x", last)] = net.HardwareAddr{0x01, 0x80, 0xc2, 0, 0, last}
	}
	forgedMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x66}
	forgedIP := netip.MustParseAddr("203.0.113.66")
	var sent []string
	for name, dst := range destinations {
		for _, to := range []netip.Addr{gateway, hostAddr} {
			for _, src := range []struct {
				mac net.HardwareAddr
				ip  netip.Addr
			}{{forgedMAC, forgedIP}, {myMAC, forgedIP}, {forgedMAC, myIP}} {
				label := "forged " + src.mac.String() + " " + src.ip.String() + " → " + name + " " + to.String()
				alice.Write(attackerFDs[0], udpFrame(src.mac, dst, src.ip, to, 5555, 7777, label))
				sent = append(sent, label)
			}
		}
	}

	// The host answers the guest's honest ping, after every frame sent
	// before it: by then anything that got through has been delivered.
	alice.Write(attackerFDs[0], arpFrame(myMAC, myMAC, myIP, gateway, "honest-arp"))
	alice.Write(attackerFDs[0], icmpEcho(myMAC, destinations["bridge"], myIP, gateway, "honest-ping"))
	readUntil(t, func() []byte {
		frame, err := alice.Read(attackerFDs[0], 10*time.Second)
		if err != nil {
			t.Fatalf("no answer to the guest's honest ping: %v", err)
		}
		return frame
	}, "honest-ping")
	alice.Write(attackerFDs[0], udpFrame(myMAC, broadcastMAC, myIP, broadcastIP, 5000, 5000, "honest-last"))
	seenByVictim := readUntil(t, func() []byte {
		frame, err := alice.Read(victimFDs[0], 10*time.Second)
		if err != nil {
			t.Fatalf("the other guest's tap: %v before the honest frame", err)
		}
		return frame
	}, "honest-last")

	mu.Lock()
	defer mu.Unlock()
	for _, label := range reached {
		t.Errorf("reached UDP 7777 on the host: %s", label)
	}
	for _, label := range sent {
		if seenByVictim[label] {
			t.Errorf("reached the other guest: %s", label)
		}
	}
	t.Logf("%d forged frames to %d destination MACs; %d reached the host", len(sent), len(destinations), len(reached))
}

func linkMAC(t *testing.T, ifname string) net.HardwareAddr {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("/sys/class/net", ifname, "address"))
	if err != nil {
		t.Fatal(err)
	}
	mac, err := net.ParseMAC(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return mac
}

// icmpEcho is an ICMP echo request carrying label, which the reply echoes.
func icmpEcho(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, label string) []byte {
	msg := append([]byte{8, 0, 0, 0, 0x12, 0x34, 0, 1}, []byte(labelPrefix+label)...)
	var sum uint32
	for i := 0; i+1 < len(msg); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(msg[i:]))
	}
	if len(msg)%2 == 1 {
		sum += uint32(msg[len(msg)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(msg[2:], ^uint16(sum))
	ip := ipv4UDP(src, dst, 0, 0, nil)[:20]
	ip[9] = 1 // ICMP
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(msg)))
	ip[10], ip[11] = 0, 0
	var hsum uint32
	for i := 0; i < 20; i += 2 {
		hsum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for hsum > 0xffff {
		hsum = hsum&0xffff + hsum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(hsum))
	return append(append(ethernet(srcMAC, dstMAC, 0x0800), ip...), msg...)
}

// A tap on no bridge is a guest's link to nothing: what its guest sends
// goes up the tap's own stack, where no netgrant rule applies (there may
// be no network at all). It reached UDP services on every host address,
// from any source it claimed; the tap's strict reverse-path filter drops
// it, since nothing routes back over a tap.
func TestStandaloneTapReachesNoHostService(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	harness.AddUpstream(t, harness.UpstreamOptions{Name: "lan", HostAddr: "203.0.113.1/24", PeerAddr: "203.0.113.2/24"})
	alice := env.Client(t, harness.UserAlice)
	_, fds, info, err := alice.CreateTap(map[string]dbus.Variant{"vnet_hdr": dbus.MakeVariant(false)})
	if err != nil {
		t.Fatal(err)
	}
	tap := info["ifname"].Value().(string)
	if rp, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + tap + "/rp_filter"); err != nil || strings.TrimSpace(string(rp)) != "1" {
		t.Errorf("%s: rp_filter %q (%v), want 1", tap, rp, err)
	}
	listener, err := net.ListenPacket("udp4", "0.0.0.0:7777")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	tapMAC := linkMAC(t, tap)
	guestMAC, _ := net.ParseMAC(info["mac"].Value().(string))
	for _, src := range []string{"203.0.113.66", "10.0.0.5", "203.0.113.1"} {
		alice.Write(fds[0], udpFrame(guestMAC, tapMAC, netip.MustParseAddr(src), netip.MustParseAddr("203.0.113.1"), 5555, 7777, "from "+src))
	}
	// A datagram the host does take, sent after them from the host
	// itself, arrives after any of theirs that got through.
	sender, err := net.Dial("udp4", "203.0.113.1:7777")
	if err != nil {
		t.Fatal(err)
	}
	defer sender.Close()
	if _, err := sender.Write([]byte(labelPrefix + "last")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2048)
	for {
		listener.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, _, err := listener.ReadFrom(buf)
		if err != nil {
			t.Fatalf("the host's own datagram: %v", err)
		}
		label := labelOf(buf[:n])
		if label == "last" {
			break
		}
		t.Errorf("the guest of a standalone tap reached UDP 7777 on the host: %s", label)
	}
}
