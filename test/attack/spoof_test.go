package attack_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/harness"
)

// A guest writes forged frames into its tap: as another guest's MAC or
// address, as the gateway (in IPv4 and IPv6, also in neighbour
// advertisements), from outside the network's IPv6 /64, as a DHCP server
// or an IPv6 router, in a VLAN, or asking DHCP for another guest's lease. None may reach the other guest's
// tap or the host's side of the bridge; the guest's honest frames do.
func TestGuestCannotSpoof(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { testGuestCannotSpoof(t, backend) })
	}
}

func testGuestCannotSpoof(t *testing.T, backend string) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob, Config: "[Firewall]\nBackend=" + backend + "\n"})
	alice := env.Client(t, harness.UserAlice)
	_, info, err := alice.CreateNATNetwork("lab", nil)
	if err != nil {
		t.Fatal(err)
	}
	gateway := netip.MustParseAddr(info["gateway"].Value().(string))
	gateway6 := netip.MustParseAddr(info["gateway6"].Value().(string))
	subnet6 := netip.MustParsePrefix(info["subnet6"].Value().(string))
	noVnetHdr := dbus.MakeVariant(false)
	_, attackerFDs, attacker, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("lab"), "vnet_hdr": noVnetHdr})
	if err != nil {
		t.Fatal(err)
	}
	_, victimFDs, victim, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("lab"), "vnet_hdr": noVnetHdr})
	if err != nil {
		t.Fatal(err)
	}
	mac := func(info map[string]dbus.Variant) net.HardwareAddr {
		m, err := net.ParseMAC(info["mac"].Value().(string))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	addr := func(info map[string]dbus.Variant) netip.Addr {
		a, err := netip.ParseAddr(info["ipv4"].Value().(string))
		if err != nil {
			t.Fatalf("tap %v has no reserved address: %v", info, err)
		}
		return a
	}
	myMAC, myIP := mac(attacker), addr(attacker)
	theirMAC, theirIP := mac(victim), addr(victim)
	if myIP == theirIP {
		t.Fatalf("both guests were given %s", myIP)
	}
	bridgeSide := openCapture(t, info["bridge"].Value().(string))

	honest := map[string][]byte{
		"honest-udp":       udpFrame(myMAC, broadcastMAC, myIP, broadcastIP, 5000, 5000, "honest-udp"),
		"honest-arp":       arpFrame(myMAC, myMAC, myIP, theirIP, "honest-arp"),
		"honest-arp-probe": arpFrame(myMAC, myMAC, netip.IPv4Unspecified(), myIP, "honest-arp-probe"),
		"honest-dhcp":      dhcpFrame(myMAC, myMAC, netip.IPv4Unspecified(), 68, 67, "honest-dhcp"),
		"honest-ip6":       udp6Frame(myMAC, subnet6.Addr().Next().Next(), "honest-ip6"),
		"honest-ll6":       udp6Frame(myMAC, netip.MustParseAddr("fe80::5054:ff:fe00:1"), "honest-ll6"),
	}
	forged := map[string][]byte{
		"forged-mac":         udpFrame(theirMAC, broadcastMAC, theirIP, broadcastIP, 5000, 5000, "forged-mac"),
		"forged-ip":          udpFrame(myMAC, broadcastMAC, theirIP, broadcastIP, 5000, 5000, "forged-ip"),
		"forged-gateway-ip":  udpFrame(myMAC, broadcastMAC, gateway, broadcastIP, 5000, 5000, "forged-gateway-ip"),
		"forged-arp-ip":      arpFrame(myMAC, myMAC, gateway, theirIP, "forged-arp-ip"),
		"forged-arp-mac":     arpFrame(myMAC, theirMAC, myIP, theirIP, "forged-arp-mac"),
		"forged-dhcp-server": dhcpFrame(myMAC, theirMAC, myIP, 67, 68, "forged-dhcp-server"),
		"forged-dhcp-client": dhcpFrame(myMAC, theirMAC, netip.IPv4Unspecified(), 68, 67, "forged-dhcp-client"),
		"forged-ra":          routerAdvertisement(myMAC, labelOption("forged-ra")...),
		"forged-vlan":        vlanTagged(udpFrame(myMAC, broadcastMAC, myIP, broadcastIP, 5000, 5000, "forged-vlan")),
		"forged-ip6":         udp6Frame(myMAC, netip.MustParseAddr("2001:db8:9::1"), "forged-ip6"),
		"forged-gateway-ip6": udp6Frame(myMAC, gateway6, "forged-gateway-ip6"),
		"forged-gateway-ll6": udp6Frame(myMAC, netip.MustParseAddr("fe80::1"), "forged-gateway-ll6"),
		"forged-na-gateway":  neighborAdvertisement(myMAC, gateway6, "forged-na-gateway"),
		"forged-na-ll":       neighborAdvertisement(myMAC, netip.MustParseAddr("fe80::1"), "forged-na-ll"),
	}
	for _, frame := range forged {
		alice.Write(attackerFDs[0], frame)
	}
	for _, frame := range honest {
		alice.Write(attackerFDs[0], frame)
	}
	const last = "honest-last"
	alice.Write(attackerFDs[0], udpFrame(myMAC, broadcastMAC, myIP, broadcastIP, 5000, 5000, last))

	// Frames from one port reach another in the order they were sent: by
	// the time the last honest one arrives, every earlier one that passed
	// has arrived too.
	seenByVictim := readUntil(t, func() []byte {
		frame, err := alice.Read(victimFDs[0], 10*time.Second)
		if err != nil {
			t.Fatalf("the victim's tap: %v before %q", err, last)
		}
		return frame
	}, last)
	seenByHost := readUntil(t, bridgeSide.read, last)
	for where, seen := range map[string]map[string]bool{"the other guest's tap": seenByVictim, "the bridge": seenByHost} {
		for label := range forged {
			if seen[label] {
				t.Errorf("%s on %s: it got through", label, where)
			}
		}
		for label := range honest {
			if !seen[label] {
				t.Errorf("%s did not reach %s", label, where)
			}
		}
	}
}

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	broadcastIP  = netip.MustParseAddr("255.255.255.255")
)

// Every frame ends in its label, after what its headers cover.
const labelPrefix = "label:"

func labelOf(frame []byte) string {
	i := bytes.LastIndex(frame, []byte(labelPrefix))
	if i < 0 {
		return ""
	}
	return strings.TrimRight(string(frame[i+len(labelPrefix):]), "\x00")
}

// labelOption carries a label inside an ICMPv6 message, as an ND option
// of an experimental type (RFC 4727): the bridge trims what follows an
// IPv6 packet.
func labelOption(label string) []byte {
	body := []byte(labelPrefix + label)
	for (2+len(body))%8 != 0 {
		body = append(body, 0)
	}
	return append([]byte{253, byte((2 + len(body)) / 8)}, body...)
}

func readUntil(t *testing.T, read func() []byte, last string) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		label := labelOf(read())
		seen[label] = true
		if label == last {
			return seen
		}
	}
	t.Fatalf("%q never arrived", last)
	return nil
}

func ethernet(src, dst net.HardwareAddr, etherType uint16) []byte {
	f := append(append([]byte{}, dst...), src...)
	return binary.BigEndian.AppendUint16(f, etherType)
}

func udpFrame(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, sport, dport uint16, label string) []byte {
	payload := []byte(labelPrefix + label)
	return append(ethernet(srcMAC, dstMAC, 0x0800), ipv4UDP(src, dst, sport, dport, payload)...)
}

func ipv4UDP(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	udp := binary.BigEndian.AppendUint16(nil, sport)
	udp = binary.BigEndian.AppendUint16(udp, dport)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(payload)))
	udp = append(udp, 0, 0) // no checksum
	udp = append(udp, payload...)
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
	s, d := src.As4(), dst.As4()
	ip = append(append(ip, s[:]...), d[:]...)
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	return append(ip, udp...)
}

// dhcpFrame is a broadcast DHCP message about client chaddr.
func dhcpFrame(srcMAC, chaddr net.HardwareAddr, src netip.Addr, sport, dport uint16, label string) []byte {
	msg := make([]byte, 240)
	msg[0], msg[1], msg[2] = 1, 1, 6 // BOOTREQUEST, Ethernet
	if sport == 67 {
		msg[0] = 2 // BOOTREPLY
	}
	copy(msg[28:], chaddr)
	copy(msg[236:], []byte{99, 130, 83, 99}) // magic cookie
	msg = append(msg, 255)                   // end option
	msg = append(msg, []byte(labelPrefix+label)...)
	return append(ethernet(srcMAC, broadcastMAC, 0x0800), ipv4UDP(src, broadcastIP, sport, dport, msg)...)
}

// arpFrame is a broadcast ARP request sent as sha/spa.
func arpFrame(srcMAC, sha net.HardwareAddr, spa, tpa netip.Addr, label string) []byte {
	f := ethernet(srcMAC, broadcastMAC, 0x0806)
	f = append(f, 0, 1, 8, 0, 6, 4, 0, 1)
	s, d := spa.As4(), tpa.As4()
	f = append(append(f, sha...), s[:]...)
	f = append(append(f, make([]byte, 6)...), d[:]...)
	return append(f, []byte(labelPrefix+label)...)
}

// allNodes is ff02::1 and its Ethernet group address.
var (
	allNodes    = netip.MustParseAddr("ff02::1")
	allNodesMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
)

// ipv6Frame wraps an upper-layer message of protocol next, sent from src
// to all nodes, whose checksum at sumAt it fills in.
func ipv6Frame(srcMAC net.HardwareAddr, src netip.Addr, next byte, msg []byte, sumAt int) []byte {
	return ipv6FrameTo(srcMAC, allNodesMAC, src, allNodes, next, msg, sumAt)
}

// ipv6FrameTo is ipv6Frame to dst at dstMAC.
func ipv6FrameTo(srcMAC, dstMAC net.HardwareAddr, src, dst netip.Addr, next byte, msg []byte, sumAt int) []byte {
	s, d := src.As16(), dst.As16()
	pseudo := append(append(append([]byte{}, s[:]...), d[:]...), 0, 0, byte(len(msg)>>8), byte(len(msg)), 0, 0, 0, next)
	var sum uint32
	for _, b := range [][]byte{pseudo, msg} {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(msg[sumAt:], ^uint16(sum))
	f := ethernet(srcMAC, dstMAC, 0x86dd)
	f = append(f, 0x60, 0, 0, 0, byte(len(msg)>>8), byte(len(msg)), next, 255)
	f = append(append(f, s[:]...), d[:]...)
	return append(f, msg...)
}

// udp6Frame is a UDP datagram to all nodes from src.
func udp6Frame(srcMAC net.HardwareAddr, src netip.Addr, label string) []byte {
	payload := []byte(labelPrefix + label)
	udp := []byte{0x13, 0x88, 0x13, 0x88, byte((8 + len(payload)) >> 8), byte(8 + len(payload)), 0, 0}
	return ipv6Frame(srcMAC, src, 17, append(udp, payload...), 6)
}

// neighborAdvertisement claims target for srcMAC, unsolicited, to all
// nodes, as a guest poisoning the others' neighbour caches would.
func neighborAdvertisement(srcMAC net.HardwareAddr, target netip.Addr, label string) []byte {
	t := target.As16()
	msg := append([]byte{136, 0, 0, 0, 0x20, 0, 0, 0}, t[:]...) // override flag
	msg = append(append(msg, 2, 1), srcMAC...)                  // target link-layer address
	msg = append(msg, labelOption(label)...)
	return ipv6Frame(srcMAC, netip.MustParseAddr("fe80::5054:ff:fe00:1"), 58, msg, 2)
}

func vlanTagged(frame []byte) []byte {
	tagged := append([]byte{}, frame[:12]...)
	tagged = append(tagged, 0x81, 0x00, 0, 5) // VLAN 5
	return append(tagged, frame[12:]...)
}

// capture reads every frame the host's side of a bridge receives.
type capture struct {
	t  *testing.T
	fd int
}

func openCapture(t *testing.T, ifname string) *capture {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("/sys/class/net", ifname, "ifindex"))
	if err != nil {
		t.Fatal(err)
	}
	index, _ := strconv.Atoi(strings.TrimSpace(string(raw)))
	all := uint16(unix.ETH_P_ALL)<<8 | uint16(unix.ETH_P_ALL)>>8
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, int(all))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: all, Ifindex: index}); err != nil {
		t.Fatal(err)
	}
	tv := unix.Timeval{Sec: 10}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		t.Fatal(err)
	}
	return &capture{t, fd}
}

func (c *capture) read() []byte {
	buf := make([]byte, 65536)
	for {
		n, from, err := unix.Recvfrom(c.fd, buf, 0)
		if err != nil {
			c.t.Fatalf("capturing on the bridge: %v", err)
		}
		// Frames the host sends itself are no guest's.
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		return append([]byte{}, buf[:n]...)
	}
}
