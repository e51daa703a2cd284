// Package config reads netgrantd's configuration file, a keyfile in the
// style of /etc/systemd/*.conf. Parsing is strict: a typo must stop the
// daemon at start rather than silently leave a default in force.
package config

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netgrant/netgrant/service/subnet"
)

// Config is the daemon's configuration.
type Config struct {
	// AllowedBridges are the host bridges taps may join ([Bridges] Allow=).
	AllowedBridges []string
	// SubnetPools hold every network's subnet; default /24s are taken from
	// them in order ([Networks] SubnetPool=).
	SubnetPools []netip.Prefix
	// LargestPrefix is the shortest prefix a caller may ask for
	// ([Networks] LargestPrefix=).
	LargestPrefix int
	// SubnetPools6 hold every network's IPv6 /64 ([Networks]
	// SubnetPool6=); none means the machine's own /48 of fd00::/8.
	SubnetPools6 []netip.Prefix
	// IPv6 off makes every network IPv4 only, and host-wide IPv6
	// forwarding is never switched on ([Networks] IPv6=).
	IPv6 bool
	// Domain is the DNS domain below which each network's guests are
	// named: <hostname>.<network>.<Domain> ([Networks] Domain=).
	Domain string
	// HostServices are the host's ports guests may reach on their
	// gateway ([Networks] HostServices=).
	HostServices []Service
	// TapsPerUser limits live taps per uid ([Limits] TapsPerUser=).
	TapsPerUser int
	// NetworksPerUser limits networks per uid ([Limits] NetworksPerUser=).
	NetworksPerUser int
	// HookTimeout is how long a hook may run before it is killed
	// ([Hooks] TimeoutSec=).
	HookTimeout time.Duration
	// IdleExit is how long netgrantd waits, with nothing held and no call,
	// before it exits; 0 means never ([Daemon] IdleExitSec=).
	IdleExit time.Duration
	// FirewallBackend is "auto", "nftables" or "iptables" ([Firewall]
	// Backend=).
	FirewallBackend string
}

// Service is a port of the host's: Proto "tcp" or "udp".
type Service struct {
	Proto string
	Port  uint16
}

func (s Service) String() string { return s.Proto + "/" + strconv.Itoa(int(s.Port)) }

// maxHookTimeoutSec bounds TimeoutSec: a hook runs before a D-Bus reply, so
// anything longer than a day is a mistake, not a setting.
const maxHookTimeoutSec = 24 * 60 * 60

// Default is the configuration used when the file is missing; every key in
// the file overrides one of these.
func Default() Config {
	return Config{
		SubnetPools:     []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16")},
		LargestPrefix:   22,
		IPv6:            true,
		Domain:          "netgrant.internal",
		TapsPerUser:     32,
		NetworksPerUser: 4,
		HookTimeout:     10 * time.Second,
		IdleExit:        60 * time.Second,
		FirewallBackend: "auto",
	}
}

// Load reads the configuration as systemd reads its own: the main file
// path (or, if that is missing, vendorDir/netgrant.conf: what a
// distribution ships), then the drop-ins, every *.conf file in path.d and
// in vendorDir/netgrant.conf.d, in the order of their names, a file in
// path.d masking the one of the same name in vendorDir. A later setting
// overrides an earlier one; nothing at all means all defaults.
func Load(path, vendorDir string) (Config, error) {
	c := Default()
	main := path
	if _, err := os.Stat(main); errors.Is(err, fs.ErrNotExist) {
		main = filepath.Join(vendorDir, "netgrant.conf")
	}
	files := []string{main}
	dropIns, err := dropInFiles(path+".d", filepath.Join(vendorDir, "netgrant.conf.d"))
	if err != nil {
		return Config{}, err
	}
	for _, file := range append(files, dropIns...) {
		f, err := os.Open(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Config{}, err
		}
		err = parseInto(&c, f, file)
		f.Close()
		if err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// dropInFiles lists the *.conf files of dirs by name, the first
// directory's file winning where several have one name.
func dropInFiles(dirs ...string) ([]string, error) {
	byName := map[string]string{}
	for i := len(dirs) - 1; i >= 0; i-- {
		entries, err := os.ReadDir(dirs[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".conf") && !e.IsDir() {
				byName[e.Name()] = filepath.Join(dirs[i], e.Name())
			}
		}
	}
	names := slices.Sorted(maps.Keys(byName))
	files := make([]string, len(names))
	for i, name := range names {
		files[i] = byName[name]
	}
	return files, nil
}

// Parse reads a configuration from r, starting from Default(). Errors read
// "filename:line: reason". A repeated key overrides the earlier one, as in
// systemd. Values:
//
//   - Allow: space-separated interface names; empty means none.
//   - SubnetPool: space-separated IPv4 networks, each inside 10.0.0.0/8,
//     172.16.0.0/12 or 192.168.0.0/16, prefix length at most 24, host bits
//     zero.
//   - LargestPrefix: a prefix length from 16 to 29.
//   - SubnetPool6: space-separated IPv6 networks of unicast addresses,
//     prefix length /16 to /64, host bits zero; empty means the machine's
//     own /48 of fd00::/8.
//   - IPv6: yes or no (also true/false, 1/0, on/off, as systemd reads
//     booleans).
//   - Domain: a DNS name of letters, digits and hyphens in dot-separated
//     labels, at most 200 bytes; lower case is kept as given.
//   - HostServices: space-separated PROTO/PORT, PROTO tcp or udp, PORT
//     1..65535; empty means none.
//   - TapsPerUser, NetworksPerUser: whole numbers >= 0.
//   - TimeoutSec: whole seconds from 1 to 86400, optionally suffixed "s".
//   - IdleExitSec: whole seconds from 0 (never) to 86400, optionally
//     suffixed "s".
//   - Backend: auto, nftables or iptables.
//
// An empty value is an error for every key except Allow, SubnetPool6 and
// HostServices.
func Parse(r io.Reader, filename string) (Config, error) {
	c := Default()
	if err := parseInto(&c, r, filename); err != nil {
		return Config{}, err
	}
	return c, nil
}

// parseInto reads r over what c holds already.
func parseInto(c *Config, r io.Reader, filename string) error {
	p := parser{config: c}
	sc := bufio.NewScanner(r)
	lineNo := 1
	for ; sc.Scan(); lineNo++ {
		if err := p.line(sc.Text()); err != nil {
			return fmt.Errorf("%s:%d: %w", filename, lineNo, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s:%d: %w", filename, lineNo, err)
	}
	return nil
}

// BridgeAllowed reports whether taps may join the host bridge name.
func (c Config) BridgeAllowed(name string) bool {
	return slices.Contains(c.AllowedBridges, name)
}

type setter func(c *Config, value string) error

var sections = map[string]map[string]setter{
	"Bridges": {
		"Allow": setAllow,
	},
	"Networks": {
		"SubnetPool":    setSubnetPools,
		"LargestPrefix": setLargestPrefix,
		"SubnetPool6":   setSubnetPools6,
		"IPv6": func(c *Config, v string) (err error) {
			c.IPv6, err = parseBool(v)
			return err
		},
		"Domain":       setDomain,
		"HostServices": setHostServices,
	},
	"Limits": {
		"TapsPerUser": func(c *Config, v string) (err error) {
			c.TapsPerUser, err = parseCount(v)
			return err
		},
		"NetworksPerUser": func(c *Config, v string) (err error) {
			c.NetworksPerUser, err = parseCount(v)
			return err
		},
	},
	"Hooks": {
		"TimeoutSec": setHookTimeout,
	},
	"Daemon": {
		"IdleExitSec": setIdleExit,
	},
	"Firewall": {
		"Backend": func(c *Config, v string) error {
			if v != "auto" && v != "nftables" && v != "iptables" {
				return errors.New("not auto, nftables or iptables")
			}
			c.FirewallBackend = v
			return nil
		},
	},
}

type parser struct {
	config  *Config
	section string
}

func (p *parser) line(line string) error {
	if i := strings.IndexByte(line, '#'); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" || line[0] == ';' {
		return nil
	}
	if line[0] == '[' {
		if !strings.HasSuffix(line, "]") {
			return fmt.Errorf("malformed section header %q", line)
		}
		name := line[1 : len(line)-1]
		if _, ok := sections[name]; !ok {
			return fmt.Errorf("unknown section [%s]", name)
		}
		p.section = name
		return nil
	}
	key, value, ok := strings.Cut(line, "=")
	key, value = strings.TrimSpace(key), strings.TrimSpace(value)
	if !ok || key == "" {
		return fmt.Errorf("malformed line %q, expected [Section] or Key=Value", line)
	}
	if p.section == "" {
		return fmt.Errorf("key %q outside of any section", key)
	}
	set, ok := sections[p.section][key]
	if !ok {
		return fmt.Errorf("unknown key %q in section [%s]", key, p.section)
	}
	if key != "Allow" && key != "SubnetPool6" && key != "HostServices" && value == "" {
		return fmt.Errorf("empty value for %s", key)
	}
	if err := set(p.config, value); err != nil {
		return fmt.Errorf("bad %s=%s: %w", key, value, err)
	}
	return nil
}

func setAllow(c *Config, value string) error {
	var names []string
	for _, name := range strings.Fields(value) {
		if !validIfName(name) {
			return fmt.Errorf("%q is not a valid interface name", name)
		}
		names = append(names, name)
	}
	c.AllowedBridges = names
	return nil
}

// validIfName follows the kernel's dev_valid_name.
func validIfName(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsAny(name, "/: \t\n\v\f\r")
}

func setSubnetPools(c *Config, value string) error {
	var pools []netip.Prefix
	for _, field := range strings.Fields(value) {
		pool, err := parseSubnetPool(field)
		if err != nil {
			return fmt.Errorf("%s: %w", field, err)
		}
		pools = append(pools, pool)
	}
	c.SubnetPools = pools
	return nil
}

func parseSubnetPool(value string) (netip.Prefix, error) {
	pool, err := netip.ParsePrefix(value)
	if err != nil || !pool.Addr().Is4() {
		return netip.Prefix{}, errors.New("not an IPv4 network in CIDR notation")
	}
	if pool != pool.Masked() {
		return netip.Prefix{}, fmt.Errorf("host bits are set (the network is %s)", pool.Masked())
	}
	if pool.Bits() > 24 {
		return netip.Prefix{}, errors.New("prefix is longer than /24, no /24 subnet fits in it")
	}
	if !subnet.Private(pool) {
		return netip.Prefix{}, errors.New("not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)")
	}
	return pool, nil
}

func setSubnetPools6(c *Config, value string) error {
	var pools []netip.Prefix
	for _, field := range strings.Fields(value) {
		pool, err := netip.ParsePrefix(field)
		if err != nil {
			return fmt.Errorf("%s: not an IPv6 network in CIDR notation", field)
		}
		if err := subnet.ValidPool6(pool); err != nil {
			return err
		}
		pools = append(pools, pool)
	}
	c.SubnetPools6 = pools
	return nil
}

// maxDomainLen leaves room, within DNS's 253 bytes, for a hostname of 63
// and a network's name of 32, with their dots.
const maxDomainLen = 200

func setDomain(c *Config, value string) error {
	if len(value) > maxDomainLen {
		return fmt.Errorf("longer than %d bytes", maxDomainLen)
	}
	for _, label := range strings.Split(value, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' ||
			strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("label %q is not of letters, digits and inner hyphens, 1 to 63 of them", label)
		}
	}
	c.Domain = value
	return nil
}

func setHostServices(c *Config, value string) error {
	var services []Service
	for _, field := range strings.Fields(value) {
		proto, port, ok := strings.Cut(field, "/")
		n, err := parseCount(port)
		if !ok || proto != "tcp" && proto != "udp" || err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s is not PROTO/PORT, tcp or udp and 1..65535", field)
		}
		services = append(services, Service{Proto: proto, Port: uint16(n)})
	}
	c.HostServices = services
	return nil
}

// parseBool reads a boolean as systemd does.
func parseBool(value string) (bool, error) {
	switch strings.ToLower(value) {
	case "yes", "true", "on", "1":
		return true, nil
	case "no", "false", "off", "0":
		return false, nil
	}
	return false, errors.New("not yes or no")
}

// minLargestPrefix keeps one network from claiming a large share of the
// private address space whatever the configuration says.
const minLargestPrefix = 16

func setLargestPrefix(c *Config, value string) error {
	n, err := parseCount(strings.TrimPrefix(value, "/"))
	if err != nil || n < minLargestPrefix || n > subnet.SmallestPrefix {
		return fmt.Errorf("not a prefix length from %d to %d", minLargestPrefix, subnet.SmallestPrefix)
	}
	c.LargestPrefix = n
	return nil
}

func setHookTimeout(c *Config, value string) error {
	n, err := parseCount(strings.TrimSuffix(value, "s"))
	if err != nil || n < 1 || n > maxHookTimeoutSec {
		return fmt.Errorf("not whole seconds from 1 to %d", maxHookTimeoutSec)
	}
	c.HookTimeout = time.Duration(n) * time.Second
	return nil
}

func setIdleExit(c *Config, value string) error {
	n, err := parseCount(strings.TrimSuffix(value, "s"))
	if err != nil || n > maxHookTimeoutSec {
		return fmt.Errorf("not whole seconds from 0 (never) to %d", maxHookTimeoutSec)
	}
	c.IdleExit = time.Duration(n) * time.Second
	return nil
}

// parseCount accepts only plain decimal digits: no sign, no spaces, no
// base prefix, so that what the admin wrote is what applies.
func parseCount(value string) (int, error) {
	if value == "" || strings.Trim(value, "0123456789") != "" {
		return 0, errors.New("not a whole number")
	}
	n, err := strconv.Atoi(value)
	if err != nil {
		return 0, errors.New("number too large")
	}
	return n, nil
}
