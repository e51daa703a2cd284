// Package bridge manages the Linux bridges of netgrant's NAT networks and
// the ports on bridges.
package bridge

import (
	"crypto/sha256"
	"net"
	"strconv"
	"strings"

	"github.com/netgrant/netgrant/internal/names"
)

// legacyPrefix began the bridges of earlier versions, ngbr<N>: a journal
// they left may still name one to delete.
const legacyPrefix = "ngbr"

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

// IsBridgeName reports whether name is of the form netgrant names its
// bridges (names.BridgeName), or earlier versions' ngbr<N>: nothing else
// is ever made or deleted.
func IsBridgeName(name string) bool {
	if len(name) > maxNameLen {
		return false
	}
	if rest, ok := strings.CutPrefix(name, names.BridgePrefix); ok {
		return rest != "" && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == ""
	}
	digits, ok := strings.CutPrefix(name, legacyPrefix)
	n, err := strconv.ParseUint(digits, 10, 64)
	return ok && err == nil && strconv.FormatUint(n, 10) == digits
}
