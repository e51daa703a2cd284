package service

import (
	"net"
	"regexp"
	"strconv"
	"strings"
)

var networkNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)

// ValidNetworkName reports whether name may name a netgrant network.
func ValidNetworkName(name string) bool {
	return networkNamePattern.MatchString(name)
}

// defaultNetworkOwner reports whether name is a default network's,
// user-<uid>, and whose. Only the canonical spelling of a uid names its
// owner; "user-01000" is nobody's, so nobody may create it.
func defaultNetworkOwner(name string) (uid uint32, reserved, owned bool) {
	digits, ok := strings.CutPrefix(name, "user-")
	if !ok || digits == "" || strings.Trim(digits, "0123456789") != "" {
		return 0, false, false
	}
	n, err := strconv.ParseUint(digits, 10, 32)
	if err != nil || strconv.FormatUint(n, 10) != digits {
		return 0, true, false
	}
	return uint32(n), true, true
}

// checkDefaultNetworkName refuses uid a name reserved for another uid's
// default network.
func checkDefaultNetworkName(uid uint32, name string) error {
	owner, reserved, owned := defaultNetworkOwner(name)
	if reserved && (!owned || owner != uid) {
		return Errorf(NotOwner, "network names user-<uid> are each reserved for that uid's default network; %q is not yours: choose another name", name)
	}
	return nil
}

// validIfName reports whether name could be a Linux interface name: the
// kernel's dev_valid_name rules (IFNAMSIZ-1 bytes, no '/', ':' or space).
func validIfName(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	for _, r := range name {
		if r <= ' ' || r >= 0x7f || r == '/' || r == ':' {
			return false
		}
	}
	return true
}

// parseGuestMAC accepts the colon form a user would type for a guest MAC.
func parseGuestMAC(s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	switch {
	case err != nil || len(mac) != 6 || strings.Count(s, ":") != 5:
		return nil, Errorf(InvalidArgument, "option mac: %q is not a MAC address like 52:54:00:12:34:56", s)
	case mac[0]&1 != 0:
		return nil, Errorf(InvalidArgument, "option mac: %s is a multicast address; a guest needs a unicast one", s)
	case isZeroMAC(mac):
		return nil, Errorf(InvalidArgument, "option mac: the all-zero address cannot be used")
	}
	return mac, nil
}

func isZeroMAC(mac net.HardwareAddr) bool {
	for _, b := range mac {
		if b != 0 {
			return false
		}
	}
	return true
}

func validMTU(mtu uint32) bool { return mtu >= 68 && mtu <= 65535 }
