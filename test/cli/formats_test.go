package cli_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/harness"
)

// network list, tap list and network forward list (of every network), in
// tables with and without headings, as JSON and through a Go template;
// options written with one dash, as netgrant took them before, still work.
func TestListsAndFormats(t *testing.T) {
	harness.Start(t, harness.Options{Rules: rules})
	for _, name := range []string{"lab", "other", "old"} {
		t.Cleanup(func() { netgrant(t, harness.UserAlice, "network", "delete", name) })
	}
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "create", "lab", "--subnet", "10.97.5.0/24"))
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "create", "other", "--subnet", "10.97.6.0/24", "--no-ipv6"))
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "forward", "add", "lab", "tcp", "2222", "10.97.5.10", "22"))
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "forward", "add", "other", "udp", "5353", "10.97.6.10", "53"))

	r := netgrant(t, harness.UserBob, "network", "list")
	mustSucceed(t, r)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NETWORK ") || !strings.HasPrefix(lines[1], "lab ") || !strings.HasPrefix(lines[2], "other ") {
		t.Errorf("network list: want a heading and a line per network:\n%s", r.stdout)
	}
	r = netgrant(t, harness.UserBob, "network", "list", "--no-legend")
	if lines := strings.Split(strings.TrimSpace(r.stdout), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "lab ") {
		t.Errorf("network list --no-legend:\n%s", r.stdout)
	}
	r = netgrant(t, harness.UserBob, "network", "list", "--format", "{{.Name}} {{.Subnet}} {{.Domain}} {{.OwnerName}}")
	if want := "lab 10.97.5.0/24 lab.netgrant.internal ngalice\nother 10.97.6.0/24 other.netgrant.internal ngalice\n"; r.stdout != want {
		t.Errorf("network list --format: %q, want %q", r.stdout, want)
	}
	var networks []struct{ Name, Subnet6 string }
	r = netgrant(t, harness.UserBob, "network", "list", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &networks); err != nil || len(networks) != 2 || networks[1].Subnet6 != "" {
		t.Errorf("network list --json: %v %+v", err, networks)
	}
	// --format json is --json, as podman has it.
	if r2 := netgrant(t, harness.UserBob, "network", "list", "--format", "json"); r2.stdout != r.stdout {
		t.Errorf("--format json differs from --json:\n%s\n%s", r2.stdout, r.stdout)
	}

	r = netgrant(t, harness.UserBob, "network", "forward", "list", "--no-legend")
	if want := []string{"lab", "tcp", "*:2222", "10.97.5.10:22", "other", "udp", "*:5353", "10.97.6.10:53"}; strings.Join(strings.Fields(r.stdout), " ") != strings.Join(want, " ") {
		t.Errorf("forward list of every network:\n%s", r.stdout)
	}
	r = netgrant(t, harness.UserBob, "network", "forward", "list", "--format", "{{.Network}}/{{.Protocol}}/{{.HostPort}}")
	if r.stdout != "lab/tcp/2222\nother/udp/5353\n" {
		t.Errorf("forward list --format: %q", r.stdout)
	}

	r = netgrant(t, harness.UserBob, "tap", "list")
	if strings.TrimSpace(r.stdout) != "TAP  OWNER  NETWORK  BRIDGE  MAC  IPV4  IPV6  QUEUES" {
		t.Errorf("tap list with no taps: %q", r.stdout)
	}
	if r = netgrant(t, harness.UserBob, "tap", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("tap list --json with no taps: %q", r.stdout)
	}

	// The overview takes the same options; its template sees the lists.
	r = netgrant(t, harness.UserBob, "list", "--format", "{{len .Networks}} networks, {{len .Taps}} taps")
	if r.stdout != "2 networks, 0 taps\n" {
		t.Errorf("list --format: %q", r.stdout)
	}
	if r = netgrant(t, harness.UserBob, "list", "--no-legend"); strings.Contains(r.stdout, "NETWORK") || strings.Contains(r.stdout, "No taps.") || !strings.Contains(r.stdout, "lab") {
		t.Errorf("list --no-legend:\n%s", r.stdout)
	}
	var list struct{ Networks []any }
	r = netgrant(t, harness.UserBob, "list", "-json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Networks) != 2 {
		t.Errorf("list -json (an option with one dash): %v, %q", err, r.stdout)
	}
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "create", "old", "-subnet", "10.97.7.0/24", "-no-ask-password", "-isolated"))
	var old struct {
		Subnet   string
		Outbound bool
	}
	r = netgrant(t, harness.UserAlice, "network", "show", "old", "-json")
	if err := json.Unmarshal([]byte(r.stdout), &old); err != nil || old.Subnet != "10.97.7.0/24" || old.Outbound {
		t.Errorf("network create with one-dash options: %v %+v", err, old)
	}
}
