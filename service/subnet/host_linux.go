package subnet

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/netgrant/netgrant/service/nldump"
	"golang.org/x/sys/unix"
)

// broadestRouteBits: routes broader than a /8 are default routes in
// disguise (OpenVPN's 0.0.0.0/1 + 128.0.0.0/1); a more specific bridge route
// wins over them just as over 0.0.0.0/0, and counting them would leave no
// private subnet free.
const broadestRouteBits = 8

// resolvConfs name the host's DNS resolvers: the file programs read, and
// systemd-resolved's list of the servers behind its stub (127.0.0.53).
var resolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// HostUses lists what a network's subnet must not contain: the host's
// IPv4 and IPv6 addresses, its unicast routes in all routing tables but
// default routes, the gateways of all its routes (default routes' too),
// and its DNS resolvers: a network holding one of those would capture
// traffic the host sends elsewhere. netgrant's own networks are among
// them; links are the host's links, to name them.
func HostUses(links []netlink.Link) ([]Use, error) {
	names := make(map[int]string, len(links))
	for _, l := range links {
		names[l.Attrs().Index] = l.Attrs().Name
	}
	addrs, err := nldump.Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return nil, fmt.Errorf("listing addresses: %w", err)
	}
	routes, err := nldump.Retry(func() ([]netlink.Route, error) {
		return netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: unix.RT_TABLE_UNSPEC}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}

	var uses []Use
	for _, a := range addrs {
		if u, ok := addrUse(a, names[a.LinkIndex]); ok {
			uses = append(uses, u)
		}
	}
	for _, r := range routes {
		if u, ok := routeUse(r, names); ok {
			uses = append(uses, u)
		}
		uses = append(uses, gatewayUses(r, names)...)
	}
	return append(uses, resolverUses(resolvConfs)...), nil
}

// gatewayUses are the next hops of r.
func gatewayUses(r netlink.Route, names map[int]string) []Use {
	dst := "default"
	if p, ok := toPrefix(r.Dst); ok && p.Bits() > 0 {
		dst = p.Masked().String()
	}
	hops := []struct {
		gw  net.IP
		dev int
	}{{r.Gw, r.LinkIndex}}
	for _, hop := range r.MultiPath {
		hops = append(hops, struct {
			gw  net.IP
			dev int
		}{hop.Gw, hop.LinkIndex})
	}
	var uses []Use
	for _, hop := range hops {
		gw, ok := netip.AddrFromSlice(hop.gw)
		if !ok {
			continue
		}
		gw = gw.Unmap()
		uses = append(uses, Use{Prefix: netip.PrefixFrom(gw, gw.BitLen()), What: fmt.Sprintf("gateway %s of route %s dev %s", gw, dst, names[hop.dev])})
	}
	return uses
}

// resolverUses are the nameservers that files list, but loopback ones
// (the host's own).
func resolverUses(files []string) []Use {
	var uses []Use
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 2 || fields[0] != "nameserver" {
				continue
			}
			addr, err := netip.ParseAddr(fields[1])
			if err != nil || addr.IsLoopback() {
				continue
			}
			addr = addr.WithZone("").Unmap()
			uses = append(uses, Use{Prefix: netip.PrefixFrom(addr, addr.BitLen()), What: fmt.Sprintf("resolver %s (%s)", addr, file)})
		}
	}
	return uses
}

func addrUse(a netlink.Addr, dev string) (Use, bool) {
	local, ok := toPrefix(a.IPNet)
	if !ok {
		return Use{}, false
	}
	// On a point-to-point address the length belongs to the peer, whose
	// prefix comes with its own route; only the local address is ours.
	if a.Peer != nil && !a.Peer.IP.Equal(a.IP) {
		local = netip.PrefixFrom(local.Addr(), local.Addr().BitLen())
	}
	return Use{Prefix: local.Masked(), What: fmt.Sprintf("address %s on %s", local, dev)}, true
}

func routeUse(r netlink.Route, names map[int]string) (Use, bool) {
	// Local and broadcast routes mirror addresses, reported already.
	if r.Type != unix.RTN_UNICAST {
		return Use{}, false
	}
	dst, ok := toPrefix(r.Dst)
	if !ok || dst.Bits() < broadestRouteBits {
		return Use{}, false
	}
	var devs []string
	if r.LinkIndex != 0 {
		devs = append(devs, names[r.LinkIndex])
	}
	for _, hop := range r.MultiPath {
		devs = append(devs, names[hop.LinkIndex])
	}
	what := "route " + dst.Masked().String()
	for _, dev := range devs {
		what += " dev " + dev
	}
	if r.Table != unix.RT_TABLE_MAIN {
		what += fmt.Sprintf(" table %d", r.Table)
	}
	return Use{Prefix: dst.Masked(), What: what}, true
}

func toPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	ip := n.IP
	if v4 := ip.To4(); v4 != nil {
		ip = v4
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits != addr.BitLen() {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(addr, ones), true
}
