// Package linkconf holds per-link kernel settings that netgrant applies to
// the links it makes.
package linkconf

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
)

// DisableIPv6 keeps a link free of link-local and autoconfigured
// addresses and deaf to router advertisements: a tap or bridge with IPv6
// would make the host reachable from guests past the IPv4 firewall, and a
// guest's advertisement would give the host an address and a default route
// through it. Call it before the link goes up. A link without IPv6 (IPv6
// off on the host, or an MTU below 1280) has no conf directory and needs
// nothing.
func DisableIPv6(link netlink.Link) error {
	name := link.Attrs().Name
	conf := filepath.Join("/proc/sys/net/ipv6/conf", name)
	if _, err := os.Stat(conf); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := netlink.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		return fmt.Errorf("turning off IPv6 address generation on %s: %w", name, err)
	}
	for _, setting := range []string{"accept_ra", "disable_ipv6"} {
		value := "0\n"
		if setting == "disable_ipv6" {
			value = "1\n"
		}
		if err := os.WriteFile(filepath.Join(conf, setting), []byte(value), 0); err != nil {
			return fmt.Errorf("setting %s on %s: %w", setting, name, err)
		}
	}
	return nil
}

// StrictReversePath makes the kernel drop what arrives on a link from an
// address it would not route back over that link (rp_filter 1): on a tap,
// which has no address or route, that is everything, so a frame a bridge
// hands up a guest's tap's own stack (one to a link-local group address
// it does not forward) reaches nothing. The kernel applies the stricter
// of this and net.ipv4.conf.all.rp_filter.
func StrictReversePath(link netlink.Link) error {
	name := link.Attrs().Name
	path := filepath.Join("/proc/sys/net/ipv4/conf", name, "rp_filter")
	if err := os.WriteFile(path, []byte("1\n"), 0); err != nil {
		return fmt.Errorf("setting rp_filter on %s: %w", name, err)
	}
	return nil
}

// EnableIPv6Router gives a bridge IPv6 as a router's interface has it:
// only the addresses netgrant adds (no generated link-local address, so
// the gateway's is the fixed one the guests' filters protect), no
// duplicate address detection (nothing else on the bridge may hold them,
// and dnsmasq must bind them at once) and deaf to router advertisements,
// which only guests could send. Call it before the link goes up.
func EnableIPv6Router(link netlink.Link) error {
	name := link.Attrs().Name
	conf := filepath.Join("/proc/sys/net/ipv6/conf", name)
	if _, err := os.Stat(conf); err != nil {
		return fmt.Errorf("%s has no IPv6 (is IPv6 off on this host, or its MTU below 1280?): %w", name, err)
	}
	if err := netlink.LinkSetIP6AddrGenMode(link, nl.IN6_ADDR_GEN_MODE_NONE); err != nil {
		return fmt.Errorf("turning off IPv6 address generation on %s: %w", name, err)
	}
	for _, setting := range [][2]string{{"accept_ra", "0"}, {"accept_dad", "0"}, {"disable_ipv6", "0"}} {
		if err := os.WriteFile(filepath.Join(conf, setting[0]), []byte(setting[1]+"\n"), 0); err != nil {
			return fmt.Errorf("setting %s on %s: %w", setting[0], name, err)
		}
	}
	return nil
}
