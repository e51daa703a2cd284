package main

import (
	"regexp"

	"bytes"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"slices"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

func TestParseTapSpec(t *testing.T) {
	spec, err := parseTapSpec("network=demo,queues=4,mac=52:54:00:00:00:01,mtu=9000,vnet_hdr=off,ipv4=10.97.0.50")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]dbus.Variant{
		"network":  dbus.MakeVariant("demo"),
		"queues":   dbus.MakeVariant(uint32(4)),
		"mac":      dbus.MakeVariant("52:54:00:00:00:01"),
		"mtu":      dbus.MakeVariant(uint32(9000)),
		"vnet_hdr": dbus.MakeVariant(false),
		"ipv4":     dbus.MakeVariant("10.97.0.50"),
	}
	if spec.network != "demo" || len(spec.opts) != len(want) {
		t.Fatalf("spec %+v", spec)
	}
	for k, v := range want {
		if got := spec.opts[k]; got.Signature() != v.Signature() || got.Value() != v.Value() {
			t.Errorf("option %s = %v, want %v (the API's types)", k, got, v)
		}
	}
	for spec, why := range map[string]string{
		"network=a,bridge=b": "exclude each other",
		"queues=two":         "not a number",
		"color=red":          "unknown key",
		"network":            "not KEY=VALUE",
		"mac=a,mac=b":        "given twice",
		"vnet_hdr=maybe":     "not on or off",
	} {
		if _, err := parseTapSpec(spec); err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("--tap %s: %v, want %q", spec, err, why)
		}
	}
}

func TestSubstitute(t *testing.T) {
	taps := []tapResult{
		{fds: []int{3, 4}, mac: "52:54:00:00:00:01", ifname: "ngtap0"},
		{fds: []int{5}, mac: "52:54:00:00:00:02", ifname: "ngtap1"},
	}
	got, err := substitute([]string{"-netdev", "tap,id=n0,fds={fds},vhost={vhost}", "mac={mac}", "{fd}/{fd0}", "fd={fd1},mac={mac1},{ifname1}", "{}", "{fdx}", "{vhost1}"}, taps, "off")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"-netdev", "tap,id=n0,fds=3:4,vhost=off", "mac=52:54:00:00:00:01", "3/3", "fd=5,mac=52:54:00:00:00:02,ngtap1", "{}", "{fdx}", "{vhost1}"}
	if !slices.Equal(got, want) {
		t.Errorf("substitute = %q, want %q", got, want)
	}
	if _, err := substitute([]string{"{fd2}"}, taps, "off"); err == nil || !strings.Contains(err.Error(), "{fd2} names tap 2, but there are only 2") {
		t.Errorf("a placeholder for a missing tap: %v", err)
	}
	env := tapEnv(taps, "off")
	wantEnv := []string{"NETGRANT_VHOST=off", "NETGRANT_TAP_FDS=3:4", "NETGRANT_MAC=52:54:00:00:00:01", "NETGRANT_IFNAME=ngtap0",
		"NETGRANT_TAP_FDS1=5", "NETGRANT_MAC1=52:54:00:00:00:02", "NETGRANT_IFNAME1=ngtap1"}
	if !slices.Equal(env, wantEnv) {
		t.Errorf("tapEnv = %q, want %q", env, wantEnv)
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{[]string{"--help"}, 0, "  run [OPTIONS] [--] COMMAND [ARGS...]", ""},
		{[]string{"help", "network", "create"}, 0, "Usage: netgrant network create NAME", ""},
		{[]string{"network", "--help"}, 0, "network create NAME [OPTIONS]\n                           create a NAT network that stays until deleted", ""},
		{[]string{"network"}, 2, "", "Usage: netgrant network COMMAND"},
		{[]string{"lst"}, 2, "", `netgrant: unknown command "lst"; did you mean "list"?`},
		{[]string{"network", "crate", "lab"}, 2, "", `netgrant network: unknown command "crate"; did you mean "create"?`},
		{[]string{"version"}, 0, "netgrant devel", ""},
		{[]string{"--version"}, 0, "netgrant devel", ""},
		{[]string{"help", "nope"}, 2, "", `netgrant help: no command "nope"`},
		{[]string{"list", "--json", "--format", "{{.Name}}"}, 2, "", "--json and --format exclude each other"},
		{[]string{"network", "list", "--format", "{{.Name"}, 2, "", "netgrant network list: --format: template: format:1: unclosed action"},
		{[]string{"completion", "--help"}, 0, "Usage: netgrant completion bash|zsh|fish", ""},
		{[]string{"completion", "fish"}, 0, "complete -c netgrant", ""},
		{[]string{"run", "-h"}, 0, "{fds}", ""},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"network", "create"}, 2, "", "netgrant network create: missing NAME"},
		{[]string{"network", "create", "a", "b"}, 2, "", `unexpected argument "b"`},
		{[]string{"network", "create", "lab", "--subnet", "10.97.5.0"}, 2, "", "is no CIDR"},
		{[]string{"run", "--subnet", "10.0.0.0/24", "--", "true"}, 2, "", "--subnet, --subnet6, --no-ipv6 and --isolated need --network"},
		{[]string{"run", "--network", "a", "--no-ipv6", "--subnet6", "fd00::/64", "--", "true"}, 2, "", "--subnet6 and --no-ipv6 exclude each other"},
		{[]string{"network", "create", "a", "--subnet6", "10.97.5.0/24"}, 2, "", "is no IPv6 CIDR"},
		{[]string{"network", "forward", "add", "a", "tcp", "0", "10.97.0.5", "22"}, 2, "", `HOST_PORT "0" is not a port`},
		{[]string{"network", "forward", "add", "a", "tcp", "80", "fd00::5", "22"}, 2, "", `GUEST "fd00::5" is not an IPv4 address`},
		{[]string{"network", "forward", "remove", "a", "sctp", "80"}, 2, "", `PROTO "sctp" is neither tcp nor udp`},
		{[]string{"network", "forward", "--help"}, 0, "network forward add NAME PROTO HOST_PORT GUEST GUEST_PORT", ""},
		{[]string{"run", "--tap", "network=a", "--mac", "52:54:00:00:00:01", "--", "true"}, 2, "", "with --tap, give bridge, queues and mac as --tap keys"},
		{[]string{"run", "--network", "a"}, 2, "", "no command to run"},
		{[]string{"list", "--bogus"}, 2, "", "netgrant list: unknown flag: --bogus\nRun \"netgrant list --help\" for usage."},
		{[]string{"list", "--jsn"}, 2, "", "netgrant list: unknown flag: --jsn (did you mean --json?)"},
		{[]string{"list", "-jsn"}, 2, "", "netgrant list: unknown flag: -jsn (did you mean --json?)"},
		{[]string{"network", "create", "lab", "--no-dchp"}, 2, "", "unknown flag: --no-dchp (did you mean --no-dhcp?)"},
		{[]string{"run", "--tap", "color=red", "--", "true"}, 2, "", `netgrant run: invalid argument "color=red" for "--tap" flag: unknown key`},
		{[]string{"run", "--forward", "sctp:1:2", "--", "true"}, 2, "", `invalid argument "sctp:1:2" for "--forward" flag`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(tc.args, &stdout, &stderr)
		// Usage goes to stdout on --help only.
		if code != tc.code || !strings.Contains(stdout.String(), tc.inStdout) || !strings.Contains(stderr.String(), tc.inStderr) ||
			(code != 0 && stdout.Len() > 0) {
			t.Errorf("netgrant %s: exit %d, stdout %q, stderr %q; want exit %d with %q / %q",
				strings.Join(tc.args, " "), code, stdout.String(), stderr.String(), tc.code, tc.inStdout, tc.inStderr)
		}
	}
}

// Scripts written for netgrant's earlier, single-dash options keep
// working; the options of the command netgrant run runs are its own.
func TestSingleDashOptionsStillWork(t *testing.T) {
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	for _, tc := range []struct{ in, want []string }{
		{[]string{"list", "-json"}, []string{"list", "--json"}},
		{[]string{"network", "create", "lab", "-subnet", "10.97.5.0/24", "-hold"}, []string{"network", "create", "lab", "--subnet", "10.97.5.0/24", "--hold"}},
		{[]string{"network", "create", "lab", "-subnet=10.97.5.0/24"}, []string{"network", "create", "lab", "--subnet=10.97.5.0/24"}},
		{[]string{"run", "-network", "demo", "qemu", "-network", "x", "-m", "1G"}, []string{"run", "--network", "demo", "qemu", "-network", "x", "-m", "1G"}},
		{[]string{"run", "-tap", "network=a", "--", "qemu", "-mac", "x"}, []string{"run", "--tap", "network=a", "--", "qemu", "-mac", "x"}},
		{[]string{"network", "forward", "list", "-h"}, []string{"network", "forward", "list", "-h"}},
	} {
		if got := singleDashCompat(root, tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Every option a command takes is in its help text, and every option its
// help text names is one it takes: the text is hand-written.
func TestHelpNamesEveryOption(t *testing.T) {
	root := newRoot(&bytes.Buffer{}, &bytes.Buffer{})
	var visit func(*cobra.Command)
	visit = func(cmd *cobra.Command) {
		for _, c := range cmd.Commands() {
			visit(c)
		}
		if cmd.Long == "" || cmd.Name() == "completion" || cmd.Parent() != nil && cmd.Parent().Name() == "completion" {
			return
		}
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name != "help" && !strings.Contains(cmd.Long, "--"+f.Name) {
				t.Errorf("%s --help does not name --%s", cmd.CommandPath(), f.Name)
			}
		})
		for _, m := range regexp.MustCompile(`(?m)^  (--[a-z0-9-]+)`).FindAllStringSubmatch(cmd.Long, -1) {
			if cmd.Flags().Lookup(strings.TrimPrefix(m[1], "--")) == nil {
				t.Errorf("%s --help names %s, which it does not take", cmd.CommandPath(), m[1])
			}
		}
	}
	visit(root)
}
