// Package bridge manages the Linux bridges of netgrant's NAT networks and
// the ports on bridges.
package bridge

import (
	"crypto/sha256"
	"net"
	"strconv"
	"strings"
)

// namePrefix marks bridges netgrant made; nothing else is ever deleted.
const namePrefix = "ngbr"

// maxNameLen is IFNAMSIZ less its terminating NUL.
const maxNameLen = 15

// MACFor derives a stable locally administered unicast MAC from seed, so
// a network recreated under the same name keeps its bridge's MAC and
// guests' ARP caches and DHCP leases stay valid.
func MACFor(seed string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("netgrant bridge\x00" + seed))
	mac := net.HardwareAddr(sum[:6])
	mac[0] = mac[0]&^0x01 | 0x02
	return mac
}

// IsBridgeName reports whether name is of the ngbr<N> form, N a decimal
// number without leading zeros.
func IsBridgeName(name string) bool {
	digits, ok := strings.CutPrefix(name, namePrefix)
	if !ok || len(name) > maxNameLen {
		return false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return err == nil && strconv.FormatUint(n, 10) == digits
}
