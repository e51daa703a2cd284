package firewall

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// sendFrame writes a raw Ethernet frame out of ifname in netns ns.
func sendFrame(t *testing.T, ns, ifname string, frame []byte) {
	t.Helper()
	var err error
	inNetns(t, ns, func() {
		var fd int
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return
		}
		defer unix.Close(fd)
		var iface *net.Interface
		if iface, err = net.InterfaceByName(ifname); err != nil {
			return
		}
		err = unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: iface.Index, Halen: 6})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// dhcpDiscover is a broadcast DHCP request from a client without an
// address, sent as mac.
func dhcpDiscover(mac net.HardwareAddr) []byte {
	msg := make([]byte, 240)
	msg[0], msg[1], msg[2] = 1, 1, 6
	copy(msg[28:], mac)
	copy(msg[236:], []byte{99, 130, 83, 99})
	udp := binary.BigEndian.AppendUint16(nil, 68)
	udp = binary.BigEndian.AppendUint16(udp, 67)
	udp = binary.BigEndian.AppendUint16(udp, uint16(8+len(msg)))
	udp = append(append(udp, 0, 0), msg...)
	ip := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, 17, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255}
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(udp)))
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	frame := append(append([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, mac...), 0x08, 0x00)
	return append(append(frame, ip...), udp...)
}

// A learning tap's guest reaches nobody, and the frames it sends first
// reach netgrantd with their source MAC and the tap they came in on;
// once the MAC is set, frames from it pass, frames from any other do not.
func TestLearningGuest(t *testing.T) {
	forEachBackend(t, func(t *testing.T, fw Firewall) {
		setUpTopology(t)
		// Only the frames the test sends: no IPv6 of the guest's own.
		ip(t, "netns", "exec", "guest", "sh", "-c", "echo 1 > /proc/sys/net/ipv6/conf/eth0/disable_ipv6")
		learner, err := ListenLearning()
		if err != nil {
			t.Fatal(err)
		}
		learned := make(chan string, 16)
		ctx, cancel := context.WithCancel(context.Background())
		go learner.Run(ctx, func(ifindex int, mac net.HardwareAddr) { learned <- strconv.Itoa(ifindex) + " " + mac.String() })
		t.Cleanup(func() { cancel(); learner.Close() })

		n := net0
		n.Guests = []Guest{{Tap: "vguest", IPv4: netip.MustParseAddr("10.97.0.2")}}
		mustApply(t, fw, n)
		index, err := net.InterfaceByName("vguest")
		if err != nil {
			t.Fatal(err)
		}
		guestMAC := net.HardwareAddr{0x52, 0x54, 0, 0xab, 0xcd, 0xef}
		sendFrame(t, "guest", "eth0", dhcpDiscover(guestMAC))
		select {
		case got := <-learned:
			if want := strconv.Itoa(index.Index) + " " + guestMAC.String(); got != want {
				t.Errorf("learnt %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the guest's first frame did not reach the learner")
		}
		// Nothing of a learning guest's reaches the host.
		if err := ping("guest", "10.97.0.1"); err == nil {
			t.Error("a learning guest's ping was answered")
		}

		n.Guests[0].MAC = guestMAC
		if err := fw.UpdateGuests([]Network{n}); err != nil {
			t.Fatal(err)
		}
		ip(t, "-n", "guest", "link", "set", "eth0", "address", guestMAC.String())
		if err := ping("guest", "10.97.0.1"); err != nil {
			t.Errorf("the learnt guest's ping: %v", err)
		}
		ip(t, "-n", "guest", "link", "set", "eth0", "address", "52:54:00:00:00:99")
		if err := ping("guest", "10.97.0.1"); err == nil {
			t.Error("the learnt guest's ping from another MAC was answered")
		}
		select {
		case got := <-learned:
			t.Errorf("a learnt guest's frames still reach the learner: %s", got)
		default:
		}
	})
}
