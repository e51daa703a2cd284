package config

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  func(c *Config)
	}{
		{"empty file", "", func(c *Config) {}},
		{"only comments and blanks", "# a comment\n\n   \n; systemd-style comment\n  # indented\n", func(c *Config) {}},
		{"allow one", "[Bridges]\nAllow=br0\n", func(c *Config) { c.AllowedBridges = []string{"br0"} }},
		{"allow several, extra spaces", "[Bridges]\n  Allow =  br0\tlan0   vm-br.10  \n", func(c *Config) {
			c.AllowedBridges = []string{"br0", "lan0", "vm-br.10"}
		}},
		{"allow 15 byte name", "[Bridges]\nAllow=abcdefghijklmno\n", func(c *Config) {
			c.AllowedBridges = []string{"abcdefghijklmno"}
		}},
		{"empty allow resets", "[Bridges]\nAllow=br0\nAllow=\n", func(c *Config) {}},
		{"last allow wins", "[Bridges]\nAllow=br0\nAllow=lan0\n", func(c *Config) { c.AllowedBridges = []string{"lan0"} }},
		{"comment after value", "[Bridges]\nAllow=br0 lan0          # host bridges\n", func(c *Config) {
			c.AllowedBridges = []string{"br0", "lan0"}
		}},
		{"comment glued to value", "[Limits]\nTapsPerUser=7# seven\n", func(c *Config) { c.TapsPerUser = 7 }},
		{"comment after section header", "[Limits] # limits\nTapsPerUser=7\n", func(c *Config) { c.TapsPerUser = 7 }},
		{"subnet pool 10/8", "[Networks]\nSubnetPool=10.0.0.0/8\n", func(c *Config) {
			c.SubnetPools = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
		}},
		{"subnet pool 172.16/12", "[Networks]\nSubnetPool=172.16.0.0/12\n", func(c *Config) {
			c.SubnetPools = []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")}
		}},
		{"subnet pool single /24", "[Networks]\nSubnetPool=192.168.77.0/24\n", func(c *Config) {
			c.SubnetPools = []netip.Prefix{netip.MustParsePrefix("192.168.77.0/24")}
		}},
		{"several subnet pools", "[Networks]\nSubnetPool=10.97.0.0/16  192.168.77.0/24\n", func(c *Config) {
			c.SubnetPools = []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16"), netip.MustParsePrefix("192.168.77.0/24")}
		}},
		{"largest prefix", "[Networks]\nLargestPrefix=24\n", func(c *Config) { c.LargestPrefix = 24 }},
		{"IPv6 pools", "[Networks]\nSubnetPool6=fd12:3456:789a::/48 2001:db8:5::/56\n", func(c *Config) {
			c.SubnetPools6 = []netip.Prefix{netip.MustParsePrefix("fd12:3456:789a::/48"), netip.MustParsePrefix("2001:db8:5::/56")}
		}},
		{"IPv6 pools empty: the machine's own", "[Networks]\nSubnetPool6=fd12::/48\nSubnetPool6=\n", func(c *Config) {}},
		{"IPv6 off", "[Networks]\nIPv6=no\n", func(c *Config) { c.IPv6 = false }},
		{"domain", "[Networks]\nDomain=vms.example.org\n", func(c *Config) { c.Domain = "vms.example.org" }},
		{"host services", "[Networks]\nHostServices=tcp/22 udp/69\n", func(c *Config) {
			c.HostServices = []Service{{"tcp", 22}, {"udp", 69}}
		}},
		{"host services none", "[Networks]\nHostServices=tcp/22\nHostServices=\n", func(c *Config) {}},
		{"IPv6 off, as false", "[Networks]\nIPv6=false\nIPv6=0\n", func(c *Config) { c.IPv6 = false }},
		{"largest prefix with slash", "[Networks]\nLargestPrefix=/16\n", func(c *Config) { c.LargestPrefix = 16 }},
		{"taps zero", "[Limits]\nTapsPerUser=0\n", func(c *Config) { c.TapsPerUser = 0 }},
		{"networks", "[Limits]\nNetworksPerUser=12\n", func(c *Config) { c.NetworksPerUser = 12 }},
		{"last key wins", "[Limits]\nNetworksPerUser=12\nNetworksPerUser=3\n", func(c *Config) { c.NetworksPerUser = 3 }},
		{"timeout plain", "[Hooks]\nTimeoutSec=30\n", func(c *Config) { c.HookTimeout = 30 * time.Second }},
		{"timeout with s", "[Hooks]\nTimeoutSec=5s\n", func(c *Config) { c.HookTimeout = 5 * time.Second }},
		{"timeout max", "[Hooks]\nTimeoutSec=86400\n", func(c *Config) { c.HookTimeout = 24 * time.Hour }},
		{"idle exit", "[Daemon]\nIdleExitSec=5s\n", func(c *Config) { c.IdleExit = 5 * time.Second }},
		{"idle exit never", "[Daemon]\nIdleExitSec=0\n", func(c *Config) { c.IdleExit = 0 }},
		{"firewall backend", "[Firewall]\nBackend=iptables\n", func(c *Config) { c.FirewallBackend = "iptables" }},
		{"section repeated", "[Limits]\nTapsPerUser=1\n[Hooks]\nTimeoutSec=2\n[Limits]\nNetworksPerUser=3\n", func(c *Config) {
			c.TapsPerUser, c.HookTimeout, c.NetworksPerUser = 1, 2*time.Second, 3
		}},
		{"CRLF line ends", "[Limits]\r\nTapsPerUser=9\r\n", func(c *Config) { c.TapsPerUser = 9 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := Default()
			tt.want(&want)
			got, err := Parse(strings.NewReader(tt.input), "test.conf")
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Parse = %+v, want %+v", got, want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"unknown section", "# hi\n[Limit]\n", `f.conf:2: unknown section [Limit]`},
		{"unknown key", "[Limits]\n\nTapsPerUser=1\nFoo=2\n", `f.conf:4: unknown key "Foo" in section [Limits]`},
		{"key in wrong section", "[Hooks]\nTapsPerUser=1\n", `f.conf:2: unknown key "TapsPerUser" in section [Hooks]`},
		{"keys are case sensitive", "[Limits]\ntapsperuser=1\n", `f.conf:2: unknown key "tapsperuser" in section [Limits]`},
		{"key outside section", "TapsPerUser=1\n", `f.conf:1: key "TapsPerUser" outside of any section`},
		{"line without =", "[Limits]\nTapsPerUser\n", `f.conf:2: malformed line "TapsPerUser", expected [Section] or Key=Value`},
		{"empty key", "[Limits]\n=5\n", `f.conf:2: malformed line "=5", expected [Section] or Key=Value`},
		{"unclosed section", "[Limits\n", `f.conf:1: malformed section header "[Limits"`},
		{"semicolon after value is not a comment", "[Limits]\nTapsPerUser=3 ; three\n", `f.conf:2: bad TapsPerUser=3 ; three: not a whole number`},
		{"bridge name too long", "[Bridges]\nAllow=br0 abcdefghijklmnop\n", `f.conf:2: bad Allow=br0 abcdefghijklmnop: "abcdefghijklmnop" is not a valid interface name`},
		{"bridge name with slash", "[Bridges]\nAllow=br/0\n", `f.conf:2: bad Allow=br/0: "br/0" is not a valid interface name`},
		{"bridge name with colon", "[Bridges]\nAllow=br0:1\n", `f.conf:2: bad Allow=br0:1: "br0:1" is not a valid interface name`},
		{"bridge name dot", "[Bridges]\nAllow=.\n", `f.conf:2: bad Allow=.: "." is not a valid interface name`},
		{"bridge name dotdot", "[Bridges]\nAllow=..\n", `f.conf:2: bad Allow=..: ".." is not a valid interface name`},
		{"pool not a prefix", "[Networks]\nSubnetPool=10.97.0.0\n", `f.conf:2: bad SubnetPool=10.97.0.0: 10.97.0.0: not an IPv4 network in CIDR notation`},
		{"pool IPv6", "[Networks]\nSubnetPool=fd00::/64\n", `f.conf:2: bad SubnetPool=fd00::/64: fd00::/64: not an IPv4 network in CIDR notation`},
		{"pool IPv4-mapped", "[Networks]\nSubnetPool=::ffff:10.0.0.0/104\n", `f.conf:2: bad SubnetPool=::ffff:10.0.0.0/104: ::ffff:10.0.0.0/104: not an IPv4 network in CIDR notation`},
		{"pool host bits", "[Networks]\nSubnetPool=10.97.3.0/16\n", `f.conf:2: bad SubnetPool=10.97.3.0/16: 10.97.3.0/16: host bits are set (the network is 10.97.0.0/16)`},
		{"pool too small", "[Networks]\nSubnetPool=10.97.0.0/25\n", `f.conf:2: bad SubnetPool=10.97.0.0/25: 10.97.0.0/25: prefix is longer than /24, no /24 subnet fits in it`},
		{"pool public", "[Networks]\nSubnetPool=198.51.100.0/24\n", `f.conf:2: bad SubnetPool=198.51.100.0/24: 198.51.100.0/24: not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)`},
		{"pool larger than private range", "[Networks]\nSubnetPool=172.0.0.0/8\n", `f.conf:2: bad SubnetPool=172.0.0.0/8: 172.0.0.0/8: not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)`},
		{"pool empty", "[Networks]\nSubnetPool=\n", `f.conf:2: empty value for SubnetPool`},
		{"second pool public", "[Networks]\nSubnetPool=10.97.0.0/16 8.8.8.0/24\n", `f.conf:2: bad SubnetPool=10.97.0.0/16 8.8.8.0/24: 8.8.8.0/24: not inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16)`},
		{"largest prefix too large", "[Networks]\nLargestPrefix=8\n", `f.conf:2: bad LargestPrefix=8: not a prefix length from 16 to 29`},
		{"IPv6 pool IPv4", "[Networks]\nSubnetPool6=10.0.0.0/8\n", `f.conf:2: bad SubnetPool6=10.0.0.0/8: 10.0.0.0/8 is not an IPv6 network in CIDR notation`},
		{"IPv6 pool too small", "[Networks]\nSubnetPool6=fd12::/80\n", `f.conf:2: bad SubnetPool6=fd12::/80: fd12::/80: its length is outside /16../64`},
		{"IPv6 pool link-local", "[Networks]\nSubnetPool6=fe80::/64\n", `f.conf:2: bad SubnetPool6=fe80::/64: fe80::/64 is not a range of unicast addresses a network may use`},
		{"IPv6 not a boolean", "[Networks]\nIPv6=maybe\n", `f.conf:2: bad IPv6=maybe: not yes or no`},
		{"domain with an empty label", "[Networks]\nDomain=vms..org\n", `f.conf:2: bad Domain=vms..org: label "" is not of letters, digits and inner hyphens, 1 to 63 of them`},
		{"domain with an underscore", "[Networks]\nDomain=my_vms\n", `f.conf:2: bad Domain=my_vms: label "my_vms" is not of letters, digits and inner hyphens, 1 to 63 of them`},
		{"domain empty", "[Networks]\nDomain=\n", `f.conf:2: empty value for Domain`},
		{"host service sctp", "[Networks]\nHostServices=sctp/22\n", `f.conf:2: bad HostServices=sctp/22: sctp/22 is not PROTO/PORT, tcp or udp and 1..65535`},
		{"host service port 0", "[Networks]\nHostServices=tcp/22 udp/0\n", `f.conf:2: bad HostServices=tcp/22 udp/0: udp/0 is not PROTO/PORT, tcp or udp and 1..65535`},
		{"host service without port", "[Networks]\nHostServices=ssh\n", `f.conf:2: bad HostServices=ssh: ssh is not PROTO/PORT, tcp or udp and 1..65535`},
		{"largest prefix too small", "[Networks]\nLargestPrefix=30\n", `f.conf:2: bad LargestPrefix=30: not a prefix length from 16 to 29`},
		{"taps negative", "[Limits]\nTapsPerUser=-1\n", `f.conf:2: bad TapsPerUser=-1: not a whole number`},
		{"taps plus sign", "[Limits]\nTapsPerUser=+1\n", `f.conf:2: bad TapsPerUser=+1: not a whole number`},
		{"taps word", "[Limits]\nTapsPerUser=many\n", `f.conf:2: bad TapsPerUser=many: not a whole number`},
		{"taps empty", "[Limits]\nTapsPerUser=\n", `f.conf:2: empty value for TapsPerUser`},
		{"networks huge", "[Limits]\nNetworksPerUser=99999999999999999999\n", `f.conf:2: bad NetworksPerUser=99999999999999999999: number too large`},
		{"networks fraction", "[Limits]\nNetworksPerUser=1.5\n", `f.conf:2: bad NetworksPerUser=1.5: not a whole number`},
		{"timeout zero", "[Hooks]\nTimeoutSec=0\n", `f.conf:2: bad TimeoutSec=0: not whole seconds from 1 to 86400`},
		{"firewall backend unknown", "[Firewall]\nBackend=ebtables\n", `f.conf:2: bad Backend=ebtables: not auto, nftables or iptables`},
		{"idle exit negative", "[Daemon]\nIdleExitSec=-1\n", `f.conf:2: bad IdleExitSec=-1: not whole seconds from 0 (never) to 86400`},
		{"timeout too long", "[Hooks]\nTimeoutSec=86401\n", `f.conf:2: bad TimeoutSec=86401: not whole seconds from 1 to 86400`},
		{"timeout minutes", "[Hooks]\nTimeoutSec=1min\n", `f.conf:2: bad TimeoutSec=1min: not whole seconds from 1 to 86400`},
		{"timeout milliseconds", "[Hooks]\nTimeoutSec=500ms\n", `f.conf:2: bad TimeoutSec=500ms: not whole seconds from 1 to 86400`},
		{"timeout bare s", "[Hooks]\nTimeoutSec=s\n", `f.conf:2: bad TimeoutSec=s: not whole seconds from 1 to 86400`},
		{"line too long", "[Limits]\n#" + strings.Repeat("x", 70000) + "\n", `f.conf:2: bufio.Scanner: token too long`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tt.input), "f.conf")
			if err == nil || err.Error() != tt.want {
				t.Errorf("Parse error = %v, want %s", err, tt.want)
			}
		})
	}
}

func TestBridgeAllowed(t *testing.T) {
	c, err := Parse(strings.NewReader("[Bridges]\nAllow=br0 lan0\n"), "f.conf")
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"br0": true, "lan0": true, "br1": false, "": false, "BR0": false} {
		if got := c.BridgeAllowed(name); got != want {
			t.Errorf("BridgeAllowed(%q) = %v, want %v", name, got, want)
		}
	}
	if Default().BridgeAllowed("br0") {
		t.Error("default configuration allows a host bridge")
	}
}

func TestDefault(t *testing.T) {
	want := Config{
		SubnetPools:     []netip.Prefix{netip.MustParsePrefix("10.97.0.0/16")},
		LargestPrefix:   22,
		IPv6:            true,
		Domain:          "netgrant.internal",
		TapsPerUser:     32,
		NetworksPerUser: 4,
		HookTimeout:     10 * time.Second,
		IdleExit:        time.Minute,
		FirewallBackend: "auto",
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
}

func TestLoadMissingFileIsDefault(t *testing.T) {
	got, err := Load(filepath.Join(t.TempDir(), "netgrant.conf"), t.TempDir())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("Load = %+v, want defaults", got)
	}
}

func TestLoadErrorNamesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "netgrant.conf")
	if err := os.WriteFile(path, []byte("[Limits]\nTapsPerUser=x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, t.TempDir())
	if want := path + ":2: bad TapsPerUser=x: not a whole number"; err == nil || err.Error() != want {
		t.Errorf("Load error = %v, want %s", err, want)
	}
}

func TestLoadUnreadableIsError(t *testing.T) {
	// A directory opens but cannot be read: not "missing", so not defaults.
	if _, err := Load(t.TempDir(), t.TempDir()); err == nil {
		t.Error("Load of a directory succeeded")
	}
}

func TestExampleConfigIsDefaults(t *testing.T) {
	// Load treats a missing file as defaults, so make sure it is there.
	if _, err := os.Stat("../../data/netgrant.conf"); err != nil {
		t.Fatalf("example config missing: %v", err)
	}
	got, err := Load("../../data/netgrant.conf", t.TempDir())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("data/netgrant.conf = %+v, want defaults %+v", got, Default())
	}
}

// writeFiles writes each name (relative to dir) with its contents.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, data := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The main file, then the drop-ins by name, /etc's masking the vendor's
// of the same name, later settings winning; the vendor's main file only
// where /etc has none.
func TestDropIns(t *testing.T) {
	etc, vendor := t.TempDir(), t.TempDir()
	main := filepath.Join(etc, "netgrant.conf")
	writeFiles(t, vendor, map[string]string{
		"netgrant.conf":               "[Limits]\nTapsPerUser=1\nNetworksPerUser=1\n",
		"netgrant.conf.d/10-a.conf":   "[Limits]\nTapsPerUser=10\n",
		"netgrant.conf.d/20-b.conf":   "[Limits]\nNetworksPerUser=20\n",
		"netgrant.conf.d/30-c.conf":   "[Daemon]\nIdleExitSec=30\n",
		"netgrant.conf.d/40-d.ignore": "[Daemon]\nIdleExitSec=x\n",
	})
	got, err := Load(main, vendor)
	if err != nil {
		t.Fatal(err)
	}
	if got.TapsPerUser != 10 || got.NetworksPerUser != 20 || got.IdleExit != 30*time.Second {
		t.Errorf("vendor main and drop-ins: %+v", got)
	}
	writeFiles(t, etc, map[string]string{
		"netgrant.conf":             "[Limits]\nTapsPerUser=2\n",
		"netgrant.conf.d/20-b.conf": "[Limits]\nNetworksPerUser=3\n",
		"netgrant.conf.d/25-e.conf": "[Limits]\nTapsPerUser=25\n",
	})
	got, err = Load(main, vendor)
	if err != nil {
		t.Fatal(err)
	}
	// The vendor's main file is not read (NetworksPerUser would be 1 from
	// it, were 20-b not masked); 25-e comes after 10-a.
	if got.TapsPerUser != 25 || got.NetworksPerUser != 3 || got.IdleExit != 30*time.Second {
		t.Errorf("with /etc's main file and drop-ins: TapsPerUser %d NetworksPerUser %d IdleExit %v, want 25, 3, 30s",
			got.TapsPerUser, got.NetworksPerUser, got.IdleExit)
	}
	writeFiles(t, etc, map[string]string{"netgrant.conf.d/50-bad.conf": "\n[Limits]\nTapsPerUser=x\n"})
	_, err = Load(main, vendor)
	if want := filepath.Join(etc, "netgrant.conf.d/50-bad.conf") + ":3: bad TapsPerUser=x: not a whole number"; err == nil || err.Error() != want {
		t.Errorf("a bad drop-in: %v, want %s", err, want)
	}
}

// netgrant.conf(5) names every key netgrantd takes, and only those, each
// with its default: the page's "*Key=*value" entries, under their
// sections, are a configuration that parses to the defaults.
func TestManualNamesEveryKeyWithItsDefault(t *testing.T) {
	data, err := os.ReadFile("../../data/man/netgrant.conf.5.scd")
	if err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	documented := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if section, ok := strings.CutPrefix(line, "# ["); ok && strings.HasSuffix(section, "]") {
			fmt.Fprintf(&conf, "[%s\n", section)
			continue
		}
		if m := regexp.MustCompile(`^\*([A-Za-z0-9]+)=\*(\S*)$`).FindStringSubmatch(line); m != nil {
			fmt.Fprintf(&conf, "%s=%s\n", m[1], m[2])
			documented[m[1]] = true
		}
	}
	got, err := Parse(strings.NewReader(conf.String()), "netgrant.conf.5")
	if err != nil {
		t.Fatalf("the manual's keys and defaults do not parse: %v\n%s", err, conf.String())
	}
	if !reflect.DeepEqual(got, Default()) {
		t.Errorf("the manual's defaults %+v differ from Default() %+v", got, Default())
	}
	for section, keys := range sections {
		for key := range keys {
			if !documented[key] {
				t.Errorf("netgrant.conf(5) does not document [%s] %s=", section, key)
			}
		}
	}
}
