package bridge

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/service/linkconf"
)

// Config describes a network's bridge.
type Config struct {
	Name    string           // the network's (names.BridgeName)
	MTU     int              // 68..65535
	MAC     net.HardwareAddr // pinned, so the MAC never churns as ports come and go
	Address netip.Prefix     // gateway address with the subnet's length, e.g. 10.97.3.1/24
	// Address6 is the IPv6 gateway address with its /64, e.g.
	// fd12:3456:789a:1::1/64; invalid for a bridge without IPv6.
	Address6 netip.Prefix
}

// LinkLocal6 is every bridge's IPv6 link-local address, fixed so the
// guests' filters (firewall.Network.GatewayLinkLocal6) know which address
// they may not claim.
var LinkLocal6 = netip.MustParsePrefix("fe80::1/64")

const (
	minMTU = 68
	maxMTU = 65535
)

// Create makes the bridge described by cfg and brings it up: STP off,
// forward delay 0 (ports forward at once, so a guest's first DHCP request
// is not lost), the pinned MAC, no IPv6 addresses, the gateway address and
// MTU. It fails if a link named cfg.Name exists, leaving that link alone;
// on any other failure it removes what it made. A link of that name
// existing is an error wrapping os.ErrExist.
func Create(cfg Config) (err error) {
	if err := cfg.check(); err != nil {
		return err
	}
	// The kernel makes a bridge's MTU follow its ports' smallest, and fall
	// back to 1500 when the last port leaves, unless the MTU was changed
	// after creation. Creating with another MTU and then changing it pins it.
	placeholderMTU := cfg.MTU + 1
	if cfg.MTU == maxMTU {
		placeholderMTU = cfg.MTU - 1
	}
	if err := add(cfg.Name, placeholderMTU, cfg.MAC); err != nil {
		return fmt.Errorf("creating bridge %s: %w", cfg.Name, err)
	}
	link, err := netlink.LinkByName(cfg.Name)
	if err != nil {
		return fmt.Errorf("finding new bridge %s: %w", cfg.Name, err)
	}
	defer func() {
		if err != nil {
			_ = netlink.LinkDel(link)
		}
	}()

	if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
		return fmt.Errorf("setting MTU of %s: %w", cfg.Name, err)
	}
	if err := configureIPv6(link, cfg.Address6); err != nil {
		return err
	}
	if err := addAddress(link, cfg.Address); err != nil {
		return err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("bringing up %s: %w", cfg.Name, err)
	}
	return nil
}

// configureIPv6 gives the bridge its IPv6 gateway addresses, or none.
func configureIPv6(link netlink.Link, gateway netip.Prefix) error {
	if !gateway.IsValid() {
		return linkconf.DisableIPv6(link)
	}
	if err := linkconf.EnableIPv6Router(link); err != nil {
		return err
	}
	for _, p := range []netip.Prefix{LinkLocal6, gateway} {
		if err := addAddress(link, p); err != nil {
			return err
		}
	}
	return nil
}

func addAddress(link netlink.Link, p netip.Prefix) error {
	addr := &netlink.Addr{IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}}
	if p.Addr().Is6() {
		addr.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("adding address %s to %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

func (cfg Config) check() error {
	switch {
	case !IsBridgeName(cfg.Name):
		return fmt.Errorf("bridge name %q is not a netgrant bridge's", cfg.Name)
	case cfg.MTU < minMTU || cfg.MTU > maxMTU:
		return fmt.Errorf("bridge MTU %d is outside %d..%d", cfg.MTU, minMTU, maxMTU)
	case len(cfg.MAC) != 6 || cfg.MAC[0]&0x01 != 0 || string(cfg.MAC) == "\x00\x00\x00\x00\x00\x00":
		return fmt.Errorf("bridge MAC %q is not a unicast Ethernet address", cfg.MAC)
	case !cfg.Address.Addr().Is4():
		return fmt.Errorf("bridge address %s is not IPv4", cfg.Address)
	case cfg.Address6.IsValid() && (!cfg.Address6.Addr().Is6() || cfg.Address6.Bits() != 64):
		return fmt.Errorf("bridge address %s is not an IPv6 address of a /64", cfg.Address6)
	}
	return nil
}

// add creates the bridge, down, in one request so that STP and forward
// delay, which the netlink package's Bridge type cannot express, are set
// from the start.
func add(name string, mtu int, mac net.HardwareAddr) error {
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(mtu))))
	req.AddData(nl.NewRtAttr(unix.IFLA_ADDRESS, mac))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("bridge"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	data.AddRtAttr(nl.IFLA_BR_STP_STATE, nl.Uint32Attr(0))
	data.AddRtAttr(nl.IFLA_BR_FORWARD_DELAY, nl.Uint32Attr(0))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// Delete removes the bridge name; one already gone is not an error, so
// crash recovery can call it blindly. It refuses links that are not
// netgrant's bridges.
func Delete(name string) error {
	if !IsBridgeName(name) {
		return fmt.Errorf("refusing to delete %q: not a netgrant bridge name", name)
	}
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return fmt.Errorf("refusing to delete %s: it is a %s, not a bridge", name, link.Type())
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting bridge %s: %w", name, err)
	}
	return nil
}

// Attach makes port a port of bridge, moving it off any other bridge, and
// gives it the bridge's MTU.
func Attach(port, bridge string) (err error) {
	br, err := bridgeByName(bridge)
	if err != nil {
		return err
	}
	link, err := netlink.LinkByName(port)
	if err != nil {
		return fmt.Errorf("finding port %s: %w", port, err)
	}
	if oldMTU := link.Attrs().MTU; oldMTU != br.Attrs().MTU {
		if err := netlink.LinkSetMTU(link, br.Attrs().MTU); err != nil {
			return fmt.Errorf("setting MTU of %s to %s's: %w", port, bridge, err)
		}
		defer func() {
			if err != nil {
				_ = netlink.LinkSetMTU(link, oldMTU)
			}
		}()
	}
	if err := netlink.LinkSetMaster(link, br); err != nil {
		return fmt.Errorf("attaching %s to %s: %w", port, bridge, err)
	}
	return nil
}

// MTU reports the MTU of the link name.
func MTU(name string) (int, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("finding %s: %w", name, err)
	}
	return link.Attrs().MTU, nil
}

// IsBridge reports whether name is an existing bridge.
func IsBridge(name string) (bool, error) {
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("finding %s: %w", name, err)
	}
	return link.Type() == "bridge", nil
}

// LinkNames are the names (alternative names too) of links.
func LinkNames(links []netlink.Link) map[string]bool {
	names := make(map[string]bool, len(links))
	for _, l := range links {
		names[l.Attrs().Name] = true
		for _, alt := range l.Attrs().AltNames {
			names[alt] = true
		}
	}
	return names
}

const ipForward = "/proc/sys/net/ipv4/ip_forward"

// EnableForwarding turns on IPv4 forwarding, which outbound networks need.
// It never turns it off: other software on the host may rely on it.
func EnableForwarding() error {
	current, err := os.ReadFile(ipForward)
	if err != nil {
		return fmt.Errorf("reading %s: %w", ipForward, err)
	}
	// Skipping the write when already on also works where /proc/sys is
	// read-only, as in some containers.
	if strings.TrimSpace(string(current)) == "1" {
		return nil
	}
	if err := os.WriteFile(ipForward, []byte("1\n"), 0); err != nil {
		return fmt.Errorf("enabling IPv4 forwarding: %w", err)
	}
	return nil
}

// IPv6 is what the host's kernel says about IPv6 forwarding.
const (
	ipv6Conf       = "/proc/sys/net/ipv6/conf"
	ipv6Forwarding = ipv6Conf + "/all/forwarding"
)

// IPv6Available tells whether the kernel has IPv6 (not booted with
// ipv6.disable=1).
func IPv6Available() bool {
	_, err := os.Stat(ipv6Forwarding)
	return err == nil
}

// EnableIPv6Forwarding turns on IPv6 forwarding, which outbound networks
// with IPv6 need, and never off. With forwarding on, the kernel ignores
// router advertisements on links whose accept_ra is 1, and the host would
// lose its own SLAAC addresses and default route as they expire: such
// links get accept_ra 2 first ("accept even when forwarding"), which is
// what they did until then; so does "default", for links yet to come. It
// returns the links it changed.
func EnableIPv6Forwarding() (changed []string, err error) {
	current, err := os.ReadFile(ipv6Forwarding)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", ipv6Forwarding, err)
	}
	if strings.TrimSpace(string(current)) == "1" {
		return nil, nil
	}
	entries, err := os.ReadDir(ipv6Conf)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", ipv6Conf, err)
	}
	for _, e := range entries {
		acceptRA := filepath.Join(ipv6Conf, e.Name(), "accept_ra")
		// "all" has no say in accept_ra, and loopback hears no routers.
		if value, err := os.ReadFile(acceptRA); e.Name() == "all" || e.Name() == "lo" || err != nil || strings.TrimSpace(string(value)) != "1" {
			continue
		}
		if err := os.WriteFile(acceptRA, []byte("2\n"), 0); err != nil {
			return changed, fmt.Errorf("keeping router advertisements on %s: %w", e.Name(), err)
		}
		changed = append(changed, e.Name())
	}
	if err := os.WriteFile(ipv6Forwarding, []byte("1\n"), 0); err != nil {
		return changed, fmt.Errorf("enabling IPv6 forwarding: %w", err)
	}
	return changed, nil
}

func bridgeByName(name string) (netlink.Link, error) {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("finding bridge %s: %w", name, err)
	}
	if link.Type() != "bridge" {
		return nil, fmt.Errorf("%s is not a bridge", name)
	}
	return link, nil
}

func isNotFound(err error) bool {
	var notFound netlink.LinkNotFoundError
	return errors.As(err, &notFound)
}

// Index is the interface index of bridge name.
func Index(name string) (int, error) {
	link, err := bridgeByName(name)
	if err != nil {
		return 0, err
	}
	return link.Attrs().Index, nil
}

// DeleteOwn deletes bridge name if it has mac, the address its creator
// gave it; a link of that name with another address is someone else's,
// and is left alone, as is a name no link has.
func DeleteOwn(name string, mac net.HardwareAddr) error {
	link, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("finding bridge %s: %w", name, err)
	}
	if !bytes.Equal(link.Attrs().HardwareAddr, mac) {
		return nil
	}
	return Delete(name)
}
