// Package tap creates the TAP devices netgrant hands to its callers and
// watches the kernel remove them.
//
// Devices are never persistent: each lives exactly as long as one of its
// queue fds is open somewhere, so a client that passes them on to QEMU and
// exits keeps the device, and a crashed VM takes it with it.
package tap

import (
	"crypto/rand"
	"net"
	"os"
	"strconv"
	"strings"
)

// Config describes a device to create.
type Config struct {
	Queues  int              // 1..16; >1 sets IFF_MULTI_QUEUE
	VnetHdr bool             // IFF_VNET_HDR
	UID     uint32           // TUNSETOWNER
	GID     uint32           // TUNSETGROUP
	MTU     int              // 68..65535; 0 = leave kernel default
	LinkMAC net.HardwareAddr // the device's own address; nil = kernel's random one
}

// Device is a created tap and its queue fds. The caller owns the fds: the
// device exists until the last of them, or any copy passed on, is closed.
type Device struct {
	Name  string     // ngtap<N>
	Index int        // ifindex
	Files []*os.File // one per queue
}

// NamePrefix begins every tap's name: the firewall knows the taps by it.
const NamePrefix = "ngtap"

const (
	maxQueues = 16
	minMTU    = 68
	maxMTU    = 65535
	// ifNameSize is the kernel's IFNAMSIZ, which includes the final NUL.
	ifNameSize = 16
)

// IsTapName reports whether name is of the ngtap<N> form this package
// creates: the prefix and a decimal number without leading zeros.
func IsTapName(name string) bool {
	num, ok := strings.CutPrefix(name, NamePrefix)
	if !ok || num == "" || len(name) >= ifNameSize || (num[0] == '0' && len(num) > 1) {
		return false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

func tapName(n int) string { return NamePrefix + strconv.Itoa(n) }

// GuestMAC returns a random address in QEMU's 52:54:00 range; the tail is
// never all-zero.
func GuestMAC() net.HardwareAddr {
	mac := net.HardwareAddr{0x52, 0x54, 0x00, 0, 0, 0}
	for mac[3]|mac[4]|mac[5] == 0 {
		rand.Read(mac[3:])
	}
	return mac
}

// LinkMAC returns the address for the host side of a guest's tap: the guest
// MAC with first byte 0xfe. That keeps it unicast and locally administered,
// and so high that a bridge, which takes its lowest port address unless it
// was given one, does not change address when the tap joins.
func LinkMAC(guest net.HardwareAddr) net.HardwareAddr {
	mac := append(net.HardwareAddr(nil), guest...)
	if len(mac) > 0 {
		mac[0] = 0xfe
	}
	return mac
}
