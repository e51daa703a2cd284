// Package names holds the names and object paths of netgrant's D-Bus API,
// shared by the daemon's D-Bus surface and by clients.
package names

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/godbus/dbus/v5"
)

// Names from the API.
const (
	BusName          = "org.netgrant.NetGrant1"
	ManagerPath      = dbus.ObjectPath("/org/netgrant/NetGrant1")
	ManagerInterface = "org.netgrant.NetGrant1.Manager"
	NetworkInterface = "org.netgrant.NetGrant1.Network"
	TapInterface     = "org.netgrant.NetGrant1.Tap"
	ErrorPrefix      = "org.netgrant.NetGrant1.Error."
)

// BridgePrefix begins the name of every network's bridge.
const BridgePrefix = "ng-"

// maxIfName is IFNAMSIZ less its terminating NUL.
const maxIfName = 15

// BridgeName is the bridge of the network called network (API.md,
// CreateNATNetwork): the same every time, so that it can be written into a
// VM's configuration. "ng-" and the name where that fits an interface
// name, else "ng-", the name's first 7 bytes, "-" and the first 4 hex
// digits of the SHA-256 of the name.
func BridgeName(network string) string {
	if len(BridgePrefix)+len(network) <= maxIfName {
		return BridgePrefix + network
	}
	sum := sha256.Sum256([]byte(network))
	return BridgePrefix + network[:7] + "-" + hex.EncodeToString(sum[:2])
}

// NetworkPath is the object path of the network called name.
func NetworkPath(name string) dbus.ObjectPath {
	return ManagerPath + "/network/" + dbus.ObjectPath(EncodePathLabel(name))
}

// TapPath is the object path of the tap called ifname.
func TapPath(ifname string) dbus.ObjectPath {
	return ManagerPath + "/tap/" + dbus.ObjectPath(EncodePathLabel(ifname))
}

// EncodePathLabel is systemd's bus path encoding: every byte outside
// [A-Za-z0-9] becomes '_' and two lowercase hex digits.
func EncodePathLabel(s string) string {
	const hex = "0123456789abcdef"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// DecodePathLabel reverses EncodePathLabel; ok is false for a label
// EncodePathLabel cannot have produced.
func DecodePathLabel(label string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(label); i++ {
		c := label[i]
		if c != '_' {
			b.WriteByte(c)
			continue
		}
		if i+2 >= len(label) {
			return "", false
		}
		hi, ok1 := unhex(label[i+1])
		lo, ok2 := unhex(label[i+2])
		if !ok1 || !ok2 {
			return "", false
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), EncodePathLabel(b.String()) == label
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
