package firewall

import (
	"fmt"
	"os/exec"
	"strings"
)

// New returns the backend named by [Firewall] Backend=. "auto" picks
// nftables unless the host's iptables is the legacy flavour, whose rules
// nftables would neither see nor be seen by; it falls back to iptables
// where the kernel lacks nftables.
func New(backend string) (Firewall, error) {
	switch backend {
	case "nftables":
		return NewNFTables()
	case "iptables":
		return NewIPTables()
	case "auto", "":
		if legacyIPTables() {
			return NewIPTables()
		}
		if nft, err := NewNFTables(); err == nil {
			return nft, nil
		}
		return NewIPTables()
	}
	return nil, fmt.Errorf("firewall backend %q is not auto, nftables or iptables", backend)
}

// legacyIPTables tells whether iptables on this host is the legacy
// flavour ("iptables v1.8.9 (legacy)").
func legacyIPTables() bool {
	out, err := exec.Command("iptables", "--version").Output()
	return err == nil && strings.Contains(string(out), "(legacy)")
}

// RemoveLeftovers removes what the backend other than chosen left from an
// earlier run ([Firewall] Backend= changed, or auto chose otherwise): its
// rules would go on filtering the bridges they name, which new networks
// may take. The guests' bridge table, which both backends keep, stays: the
// guests are not to go unfiltered until chosen restores it. The other
// backend not being available means it left nothing.
func RemoveLeftovers(chosen Firewall) error {
	var err error
	switch chosen.Backend() {
	case "nftables":
		if other, unavailable := NewIPTables(); unavailable == nil {
			err = other.removeOwn()
		}
	case "iptables":
		if other, unavailable := NewNFTables(); unavailable == nil {
			err = other.removeOwn()
		}
	}
	if err != nil {
		return fmt.Errorf("removing what the other backend left: %w", err)
	}
	return nil
}
