// Package nldump lists kernel objects over netlink despite churn: the
// kernel interrupts a dump when the list changes under it (taps come and go
// all the time on a netgrant host), and the answer is to ask again.
package nldump

import (
	"errors"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// attempts bounds the retries: a list that changes this often in a row is
// an error worth reporting. Twenty users creating and deleting taps at
// full speed (test/soak) interrupted five dumps in a row once.
const attempts = 50

// Retry calls dump until the kernel answers without interrupting it.
func Retry[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range attempts {
		var list []T
		if list, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return nil, err
}

// Links lists every link.
func Links() ([]netlink.Link, error) { return Retry(netlink.LinkList) }

// HasAddress reports whether ip is an address of one of the host's links.
func HasAddress(ip netip.Addr) (bool, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, family) })
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if own, ok := netip.AddrFromSlice(a.IP); ok && own.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}
