// Package firewall keeps the IPv4 firewall rules of netgrant's NAT networks:
// what guests may send to the host, what is forwarded in and out of their
// bridges, and masquerading. Everything lives in chains of netgrant's own,
// jumped to from the built-in chains, so it can be listed and removed as a
// unit and repaired after other tools flush the tables.
package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Network is what the firewall needs to know about one NAT network.
type Network struct {
	Bridge   string // ngbr<N>; chain names derive from it
	Subnet   netip.Prefix
	Gateway  netip.Addr
	Outbound bool // forward and masquerade to the outside; false = host-only
}

// Firewall installs and removes the rules of netgrant's networks.
type Firewall interface {
	// Add installs the rules of n. On failure it removes whatever it added.
	Add(n Network) error
	// Remove removes what Add installed for n; missing pieces are fine.
	// Once no network is left it also removes netgrant's top-level chains
	// and the jumps to them.
	Remove(n Network) error
	// Sync makes the kernel match exactly nets: it re-creates missing
	// chains, jumps and rules and removes the chains of networks not in
	// nets. It never touches rules or chains netgrant did not write.
	Sync(nets []Network) error
}

const (
	tableFilter = "filter"
	tableNAT    = "nat"

	// Per-network chains are named chainPrefix + bridge + one of these.
	chainPrefix = "NG-"
	suffixIn    = "-IN"   // guest to host
	suffixTo    = "-TO"   // forwarded into the bridge
	suffixFrom  = "-FROM" // forwarded out of the bridge
	suffixNAT   = "-NAT"
)

// topChain is one of netgrant's chains that the built-in chains jump to.
type topChain struct {
	table, builtin, name string
}

var topChains = []topChain{
	{tableFilter, "INPUT", "NETGRANT-INPUT"},
	{tableFilter, "FORWARD", "NETGRANT-FORWARD"},
	{tableNAT, "POSTROUTING", "NETGRANT-POSTROUTING"},
}

// chain is a per-network chain with its rules. Rules are written exactly
// as `iptables -S` prints them back, so Sync can compare them as text.
type chain struct {
	table, name string
	rules       [][]string
}

// jump leads from a top-level chain into a per-network chain.
type jump struct {
	table, chain string
	spec         []string
	// first jumps go to the top of their chain: in NETGRANT-FORWARD the
	// checks on traffic into any bridge must precede every network's
	// accept of traffic out of its bridge, or one network could reach
	// another through its outbound accept.
	first bool
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
	return nil
}

func chainName(bridge, suffix string) string { return chainPrefix + bridge + suffix }

// isNetworkChain tells whether name in table is a per-network chain of ours.
func isNetworkChain(table, name string) bool {
	if !strings.HasPrefix(name, chainPrefix) {
		return false
	}
	suffixes := []string{suffixIn, suffixTo, suffixFrom}
	if table == tableNAT {
		suffixes = []string{suffixNAT}
	}
	for _, s := range suffixes {
		if len(name) > len(chainPrefix)+len(s) && strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

const rejectPort = "icmp-port-unreachable"

// networkChains returns the chains of n, mirroring libvirt's NAT networks
// except that guests may reach only DHCP, DNS and ICMP on the host.
func networkChains(n Network) []chain {
	subnet := n.Subnet.Masked().String()
	gateway := netip.PrefixFrom(n.Gateway, 32).String()
	established := []string{"-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"}

	in := chain{tableFilter, chainName(n.Bridge, suffixIn), [][]string{
		established, // replies to the host's own connections, e.g. ssh into a guest
		{"-p", "udp", "-m", "udp", "--dport", "67", "-j", "ACCEPT"},
		{"-d", gateway, "-p", "udp", "-m", "udp", "--dport", "53", "-j", "ACCEPT"},
		{"-d", gateway, "-p", "tcp", "-m", "tcp", "--dport", "53", "-j", "ACCEPT"},
		{"-p", "icmp", "-j", "ACCEPT"},
		// Refuse rather than drop, so a guest fails fast instead of hanging.
		{"-p", "udp", "-j", "REJECT", "--reject-with", rejectPort},
		{"-p", "tcp", "-j", "REJECT", "--reject-with", "tcp-reset"},
		{"-j", "REJECT", "--reject-with", "icmp-host-prohibited"},
	}}
	to := chain{tableFilter, chainName(n.Bridge, suffixTo), [][]string{
		append([]string{"-d", subnet}, established...),
		{"-i", n.Bridge, "-j", "ACCEPT"},
		{"-j", "REJECT", "--reject-with", rejectPort},
	}}
	from := chain{tableFilter, chainName(n.Bridge, suffixFrom), [][]string{
		{"-j", "REJECT", "--reject-with", rejectPort},
	}}
	if !n.Outbound {
		return []chain{in, to, from}
	}
	// Only the subnet's own addresses go out; anything else is spoofed.
	from.rules = append([][]string{{"-s", subnet, "-j", "ACCEPT"}}, from.rules...)
	nat := chain{tableNAT, chainName(n.Bridge, suffixNAT), [][]string{
		{"-d", "224.0.0.0/24", "-j", "RETURN"},
		{"-d", "255.255.255.255/32", "-j", "RETURN"},
		// A guest must never appear to come from a privileged port.
		{"!", "-d", subnet, "-p", "tcp", "-j", "MASQUERADE", "--to-ports", "1024-65535"},
		{"!", "-d", subnet, "-p", "udp", "-j", "MASQUERADE", "--to-ports", "1024-65535"},
		{"!", "-d", subnet, "-j", "MASQUERADE"},
	}}
	return []chain{in, to, from, nat}
}

// networkJumps returns the jumps into n's chains, in the order Add
// installs them.
func networkJumps(n Network) []jump {
	jumps := []jump{
		{tableFilter, "NETGRANT-INPUT", []string{"-i", n.Bridge, "-j", chainName(n.Bridge, suffixIn)}, false},
		{tableFilter, "NETGRANT-FORWARD", []string{"-o", n.Bridge, "-j", chainName(n.Bridge, suffixTo)}, true},
		{tableFilter, "NETGRANT-FORWARD", []string{"-i", n.Bridge, "-j", chainName(n.Bridge, suffixFrom)}, false},
	}
	if n.Outbound {
		jumps = append(jumps, jump{tableNAT, "NETGRANT-POSTROUTING",
			[]string{"-s", n.Subnet.Masked().String(), "-j", chainName(n.Bridge, suffixNAT)}, false})
	}
	return jumps
}
