package service

import (
	"net"
	"regexp"
	"strings"
)

var networkNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)

// ValidNetworkName reports whether name may name a netgrant network.
func ValidNetworkName(name string) bool {
	return networkNamePattern.MatchString(name)
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
