// Package dnsmasq runs and supervises the dnsmasq that gives one netgrant
// NAT network DHCP and DNS, and tracks the leases it grants.
package dnsmasq

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
)

// Config describes the dnsmasq of one network.
type Config struct {
	Network            string // netgrant network name, for logs
	Bridge             string // the network's bridge; it must exist and carry Gateway
	Gateway            netip.Addr
	Prefix             netip.Prefix
	DHCP               bool
	DHCPStart, DHCPEnd netip.Addr
	DNS                bool
	// Domain, with DNS, is the network's DNS domain: dnsmasq answers
	// <hostname>.<Domain> for its guests. LocalDomain holds every
	// network's domain: dnsmasq forwards no query for it, so guests learn
	// nothing of other networks' guests, and nothing loops back to them
	// through the host's resolver.
	Domain, LocalDomain string
	// Gateway6 is the bridge's IPv6 address in Prefix6, the network's
	// /64; both invalid without IPv6.
	Gateway6 netip.Addr
	Prefix6  netip.Prefix
	Dir      string // existing state directory; dnsmasq's files go here
	// Identity is what a child dnsmasq runs under: one no other
	// network's dnsmasq has (see account.go).
	Identity Identity
	// Unit runs dnsmasq as an instance of the netgrant-dnsmasq@ systemd
	// unit rather than as a child, the instance named after the bridge;
	// Dir must then be UnitDir(Bridge).
	// The unit gives it an identity of its own and a directory it may
	// write its lease file in, UnitLeaseDir(Bridge).
	Unit bool
	Log  *slog.Logger
}

const leaseTime = "1h"

func (c Config) leaseFile() string {
	if c.Unit {
		return filepath.Join(UnitLeaseDir(c.Bridge), "leases")
	}
	return filepath.Join(c.Dir, "leases")
}

// leaseFileArg names a child's lease file on its command line; it is also
// how an orphaned dnsmasq of a directory is recognised.
func leaseFileArg(dir string) string { return "--dhcp-leasefile=" + filepath.Join(dir, "leases") }

func (c Config) validate() error {
	switch {
	case c.Bridge == "":
		return errors.New("no bridge")
	case c.Dir == "":
		return errors.New("no state directory")
	case !c.Unit && (c.Identity.UID <= 0 || c.Identity.GID <= 0):
		return errors.New("no identity to run as")
	case c.Unit && c.Dir != UnitDir(c.Bridge):
		return fmt.Errorf("state directory %s is not %s, where the netgrant-dnsmasq@ unit looks", c.Dir, UnitDir(c.Bridge))
	case !c.DHCP && !c.DNS:
		return errors.New("neither DHCP nor DNS requested")
	case strings.ContainsAny(c.Domain, "/ \t\n#,") || c.Domain != "" && !strings.HasSuffix(c.Domain, "."+c.LocalDomain):
		return fmt.Errorf("domain %q is not a DNS name below %q", c.Domain, c.LocalDomain)
	case !c.Gateway.Is4() || !c.Prefix.Addr().Is4() || !c.Prefix.Contains(c.Gateway):
		return fmt.Errorf("gateway %s is not an IPv4 address in %s", c.Gateway, c.Prefix)
	case c.Prefix6.IsValid() && (c.Prefix6.Bits() != 64 || !c.Prefix6.Contains(c.Gateway6)):
		return fmt.Errorf("IPv6 gateway %s is not in the /64 %s", c.Gateway6, c.Prefix6)
	}
	if c.DHCP {
		if !c.Prefix.Contains(c.DHCPStart) || !c.Prefix.Contains(c.DHCPEnd) || c.DHCPEnd.Less(c.DHCPStart) {
			return fmt.Errorf("DHCP range %s-%s is not inside %s", c.DHCPStart, c.DHCPEnd, c.Prefix)
		}
	}
	return nil
}

// args is dnsmasq's command line for c. Nothing comes from the system's
// dnsmasq configuration, so a dnsmasq package's own service cannot change
// what guests get.
func (c Config) args() []string {
	args := []string{
		"--keep-in-foreground", // we are its parent and supervise it
		"--conf-file=/dev/null",
		// Sockets only on the bridge: DNS on the gateway address (and the
		// bridge's own IPv6 link-local address, if it has one), DHCP bound
		// to the bridge device. --interface is what makes dnsmasq bind its
		// DHCP socket to the device; without it every network's dnsmasq
		// shares 0.0.0.0:67 and a renewal may reach the wrong one.
		"--bind-interfaces",
		"--interface=" + c.Bridge,
		"--listen-address=" + c.Gateway.String(),
		"--except-interface=lo",
		// No pid file: whoever dnsmasq runs as could write it, and then
		// name any process for root to signal.
		"--pid-file=",
		"--log-facility=-",
		// Even without DHCP: it marks the process as this directory's.
		"--dhcp-leasefile=" + c.leaseFile(),
	}
	if c.DNS {
		// The host's /etc/hosts is about the host (its own name maps to a
		// loopback address there); guests get upstream answers and the
		// names of their DHCP peers only.
		args = append(args, "--strict-order", "--no-hosts")
		if c.Domain != "" {
			// The guests' names, from the files netgrantd writes in
			// NamesDir (see Names); every network's domain is answered
			// here or nowhere, never upstream.
			args = append(args, "--domain="+c.Domain, "--local=/"+c.LocalDomain+"/", "--hostsdir="+NamesDir(c.Dir))
		}
	} else {
		args = append(args, "--port=0")
	}
	if c.DHCP {
		mask := net.IP(net.CIDRMask(c.Prefix.Bits(), 32)).String()
		args = append(args,
			fmt.Sprintf("--dhcp-range=%s,%s,%s,%s", c.DHCPStart, c.DHCPEnd, mask, leaseTime),
			fmt.Sprintf("--dhcp-lease-max=%d", rangeSize(c.DHCPStart, c.DHCPEnd)),
			"--dhcp-authoritative",
			"--dhcp-no-override",
			"--dhcp-hostsdir="+c.hostsDir(),
		)
	}
	return append(args, c.ipv6Args()...)
}

// ipv6Args make dnsmasq advertise the bridge's /64 for SLAAC, answer
// stateless DHCPv6 (with DHCP) and DNS on the IPv6 gateway address (with
// DNS), and name that address as the DNS server in both, not its
// link-local address, which the firewall does not open for DNS.
func (c Config) ipv6Args() []string {
	if !c.Prefix6.IsValid() {
		return nil
	}
	mode := "ra-only"
	if c.DHCP {
		mode = "ra-stateless"
	}
	args := []string{
		"--enable-ra",
		"--dhcp-range=::," + "constructor:" + c.Bridge + "," + mode + ",64," + leaseTime,
	}
	if !c.DNS {
		// An empty option sends none, rather than the link-local default.
		return append(args, "--dhcp-option=option6:dns-server")
	}
	return append(args, "--listen-address="+c.Gateway6.String(), "--dhcp-option=option6:dns-server,["+c.Gateway6.String()+"]")
}

func rangeSize(start, end netip.Addr) uint32 {
	s, e := start.As4(), end.As4()
	be := func(b [4]byte) uint32 { return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) }
	return be(e) - be(s) + 1
}

// binary finds dnsmasq, also in the sbin directories a daemon's PATH may lack.
func binary() (string, error) {
	if p, err := exec.LookPath("dnsmasq"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/sbin/dnsmasq", "/sbin/dnsmasq"} {
		if p, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("dnsmasq is not installed: install the dnsmasq-base package")
}

// Available reports nil if the dnsmasq binary can be found, else an error
// saying what to install.
func Available() error {
	_, err := binary()
	return err
}
