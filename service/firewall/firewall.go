// Package firewall keeps the IPv4 firewall rules of netgrant's NAT networks:
// what guests may send to the host, what is forwarded in and out of their
// bridges, masquerading, and, on the bridges, that each guest sends only
// as itself (guests.go). The rules are written once (rules.go) and
// rendered by one of two backends: nftables, a table of netgrant's own
// changed through netlink in one transaction, or iptables, chains of
// netgrant's own jumped to from the built-in chains and changed with one
// iptables-restore. Either way they can be listed and removed as a unit and
// are repaired after other tools flush them.
package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Network is what the firewall needs to know about one NAT network.
type Network struct {
	Bridge   string // the network's bridge; chain names derive from it
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Outbound bool // forward and masquerade to the outside; false = host-only
	// Subnet6 and Gateway6 are the network's IPv6 /64 and the bridge's
	// address in it; invalid for a network without IPv6.
	Subnet6  netip.Prefix
	Gateway6 netip.Addr
	// GatewayLinkLocal6 is the bridge's fixed link-local address, with
	// Subnet6: no guest may claim it.
	GatewayLinkLocal6 netip.Addr
	// Guests are the taps on the bridge. They change while the network
	// lives and are not part of what undoes it.
	Guests []Guest `json:"-"`
	// Forwards send host ports to guests (outbound networks only); like
	// Guests, not part of what undoes the network.
	Forwards []Forward `json:"-"`
	// HostServices are the host's ports the guests may reach on their
	// gateway, beyond DHCP and DNS ([Networks] HostServices=); nor are
	// they part of what undoes the network.
	HostServices []Service `json:"-"`
}

// Service is a port of the host's.
type Service struct {
	Proto string // "tcp" or "udp"
	Port  uint16
}

// Forward sends a port of the host to a guest's.
type Forward struct {
	Proto     string // "tcp" or "udp"
	HostPort  uint16
	Address   netip.Addr // only this host address; invalid: any of the host's
	Guest     netip.Addr
	GuestPort uint16
}

// Firewall keeps netgrant's rules. Implementations are safe for
// concurrent use.
type Firewall interface {
	// Apply makes netgrant's rules those of nets, as one transaction
	// where the backend has them: it adds the networks new since the last
	// Apply, removes those not in nets, and builds everything again where
	// its rules are gone. It never touches rules netgrant did not write.
	Apply(nets []Network) error
	// Restore is Apply that trusts nothing it did before, so it also puts
	// back single rules someone flushed or changed: for after a firewalld
	// reload or a restart.
	Restore(nets []Network) error
	// UpdateGuests makes the guests' filters those of nets, changing only
	// what differs from the last Apply or UpdateGuests where it can: the
	// cheap way when nothing but guests changed.
	UpdateGuests(nets []Network) error
	// Backend names the backend: "nftables" or "iptables".
	Backend() string
}

func (n Network) validate() error {
	if err := validBridge(n.Bridge); err != nil {
		return err
	}
	if !n.Subnet.IsValid() || !n.Subnet.Addr().Is4() || n.Subnet.Bits() < 1 || n.Subnet.Bits() > 30 {
		return fmt.Errorf("network %s: subnet %s is not an IPv4 prefix /1../30", n.Bridge, n.Subnet)
	}
	if !n.Gateway.Is4() || !n.Subnet.Contains(n.Gateway) {
		return fmt.Errorf("network %s: gateway %s is not in subnet %s", n.Bridge, n.Gateway, n.Subnet)
	}
	if n.Subnet6.IsValid() || n.Gateway6.IsValid() {
		if !n.Subnet6.Addr().Is6() || n.Subnet6.Addr().Is4In6() || n.Subnet6.Bits() != 64 || !n.Subnet6.Contains(n.Gateway6) {
			return fmt.Errorf("network %s: IPv6 subnet %s with gateway %s is not a /64 holding its gateway", n.Bridge, n.Subnet6, n.Gateway6)
		}
		if !n.GatewayLinkLocal6.IsLinkLocalUnicast() || !n.GatewayLinkLocal6.Is6() {
			return fmt.Errorf("network %s: gateway link-local address %s is not an IPv6 link-local address", n.Bridge, n.GatewayLinkLocal6)
		}
	}
	for _, svc := range n.HostServices {
		if svc.Proto != "tcp" && svc.Proto != "udp" || svc.Port == 0 {
			return fmt.Errorf("network %s: host service %s/%d is not tcp or udp and a port", n.Bridge, svc.Proto, svc.Port)
		}
	}
	for _, f := range n.Forwards {
		switch {
		case !n.Outbound:
			return fmt.Errorf("network %s: port forward on a host-only network", n.Bridge)
		case f.Proto != "tcp" && f.Proto != "udp":
			return fmt.Errorf("network %s: port forward protocol %q is not tcp or udp", n.Bridge, f.Proto)
		case f.HostPort == 0 || f.GuestPort == 0:
			return fmt.Errorf("network %s: port forward with port 0", n.Bridge)
		case !n.Subnet.Contains(f.Guest) || f.Guest == n.Gateway:
			return fmt.Errorf("network %s: port forward to %s, not a guest address of %s", n.Bridge, f.Guest, n.Subnet)
		case f.Address.IsValid() && !f.Address.Is4():
			return fmt.Errorf("network %s: port forward on %s, not an IPv4 address", n.Bridge, f.Address)
		}
	}
	return nil
}

// validBridge accepts interface names that iptables takes literally: at
// most 15 characters and none that iptables or the kernel treat specially
// ("+" would make -i a wildcard matching other interfaces).
func validBridge(name string) error {
	if name == "" || len(name) > 15 || strings.HasPrefix(name, "-") {
		return fmt.Errorf("bridge name %q is not a valid interface name", name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return fmt.Errorf("bridge name %q is not a valid interface name", name)
		}
	}
	return nil
}

func validateAll(nets []Network) error {
	seen := make(map[string]bool)
	for _, n := range nets {
		if err := n.validate(); err != nil {
			return err
		}
		if seen[n.Bridge] {
			return errors.New("bridge " + n.Bridge + " listed twice")
		}
		seen[n.Bridge] = true
	}
	for _, ng := range allGuests(nets) {
		if err := ng.guest.validate(ng.net); err != nil {
			return err
		}
		if seen[ng.guest.Tap] {
			return errors.New("interface " + ng.guest.Tap + " listed twice")
		}
		seen[ng.guest.Tap] = true
	}
	return nil
}
