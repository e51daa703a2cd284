package dnsmasq

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
)

// A reservation gives one MAC one address: a file of its own in the
// network's hosts directory, which dnsmasq watches (--dhcp-hostsdir) and
// reads as it appears, without a restart that would disturb the other
// guests. A removed file stays in dnsmasq's memory until Reload.

func (c Config) hostsDir() string { return HostsDir(c.Dir) }

// HostsDir is where the reservations of the dnsmasq of dir live.
func HostsDir(dir string) string { return filepath.Join(dir, "hosts") }

// makeDirs makes the directories dnsmasq reads netgrantd's files from,
// readable by dnsmasq's identity whatever umask netgrantd runs with: the
// DHCP reservations' (with DHCP) and the guests' IPv6 names' (with a DNS
// domain).
func makeDirs(c Config) error {
	dirs := []string{c.Dir}
	if c.DHCP {
		dirs = append(dirs, c.hostsDir())
	}
	if c.DNS && c.Domain != "" {
		dirs = append(dirs, NamesDir(c.Dir))
	}
	for _, dir := range dirs {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// Reserve makes dnsmasq of dir give ip to mac from now on; name (a tap's)
// tells the reservation from others.
func Reserve(dir, name string, mac net.HardwareAddr, ip netip.Addr) error {
	line := fmt.Sprintf("%s,%s\n", mac, ip)
	path := filepath.Join(HostsDir(dir), name)
	// dnsmasq skips names starting with a dot, so it never reads half a file.
	tmp := filepath.Join(HostsDir(dir), "."+name)
	if err := os.WriteFile(tmp, []byte(line), 0o644); err != nil {
		return fmt.Errorf("reserving %s for %s: %w", ip, mac, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return fmt.Errorf("reserving %s for %s: %w", ip, mac, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("reserving %s for %s: %w", ip, mac, err)
	}
	return nil
}

// Unreserve removes name's reservation file; dnsmasq forgets it on Reload.
func Unreserve(dir, name string) error {
	err := os.Remove(filepath.Join(HostsDir(dir), name))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}
