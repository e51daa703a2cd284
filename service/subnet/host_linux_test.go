package subnet

import (
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/netgrant/netgrant/test/nstest"

	"github.com/netgrant/netgrant/service/nldump"
)

func TestMain(m *testing.M) { nstest.Main(m) }

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %v: %v: %s", args, err, out)
	}
}

func TestHostUses(t *testing.T) {
	nstest.Require(t)
	ip(t, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ip(t, "link", "set", "v0", "up")
	ip(t, "link", "set", "v1", "up")
	ip(t, "addr", "add", "10.0.0.5/24", "dev", "v0")
	ip(t, "addr", "add", "10.5.5.5/32", "dev", "v0")
	ip(t, "route", "add", "10.8.0.0/16", "dev", "v0")
	ip(t, "route", "add", "10.9.0.0/16", "dev", "v0", "table", "100")
	ip(t, "route", "add", "default", "via", "10.0.0.1", "dev", "v0")
	ip(t, "route", "add", "0.0.0.0/1", "dev", "v0")
	ip(t, "addr", "add", "fd77:1:2:3::5/64", "dev", "v0", "nodad")
	ip(t, "-6", "route", "add", "default", "via", "fd77:1:2:3::1", "dev", "v0")
	ip(t, "-6", "route", "add", "fd88::/48", "via", "fd77:1:2:3::2", "dev", "v0")
	ip(t, "-6", "route", "add", "default", "via", "fd44::1", "dev", "v0", "onlink", "table", "101")
	ip(t, "link", "add", "ngbr0", "type", "bridge")
	ip(t, "link", "set", "ngbr0", "up")
	ip(t, "addr", "add", "10.97.3.1/24", "dev", "ngbr0")
	ip(t, "route", "add", "10.98.0.0/16", "dev", "ngbr0")

	links, err := nldump.Links()
	if err != nil {
		t.Fatal(err)
	}
	uses, err := HostUses(links)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("host uses: %v", uses)

	conflicts := []struct{ subnet, want string }{
		{"10.0.0.0/24", "address 10.0.0.5/24 on v0"},
		{"10.5.5.0/29", "address 10.5.5.5/32 on v0"},
		{"10.8.3.0/24", "route 10.8.0.0/16 dev v0"},
		{"10.9.0.0/24", "route 10.9.0.0/16 dev v0 table 100"},
		// A default route's gateway is an address the host reaches
		// over another link: a network holding it would capture all
		// the host sends out.
		{"fd77:1:2:3::/64", "address fd77:1:2:3::5/64 on v0"},
		{"fd88:0:0:1::/64", "route fd88::/48 dev v0"},
		{"fd44::/64", "gateway fd44::1 of route default dev v0"},
		// netgrant's own bridges are the host's too (the service names
		// its networks first).
		{"10.97.3.0/24", "address 10.97.3.1/24 on ngbr0"},
		{"10.98.0.0/24", "route 10.98.0.0/16 dev ngbr0"},
	}
	for _, c := range conflicts {
		got, ok := Conflict(netip.MustParsePrefix(c.subnet), uses)
		if !ok || got.What != c.want {
			t.Errorf("Conflict(%s) = %q, %v; want %q", c.subnet, got.What, ok, c.want)
		}
	}
	// Default routes and loopback leave these free.
	for _, free := range []string{"192.168.100.0/24", "10.5.5.8/29"} {
		if got, ok := Conflict(netip.MustParsePrefix(free), uses); ok {
			t.Errorf("Conflict(%s) = %q, want none", free, got.What)
		}
	}
}

// A resolver's address, or a route's gateway, in a subnet would send the
// host's traffic to a network's guests; loopback resolvers (the host's
// own stub) are the host's.
func TestGatewaysAndResolvers(t *testing.T) {
	uses := gatewayUses(netlink.Route{Gw: net.ParseIP("fd66::1"), LinkIndex: 2}, map[int]string{2: "eth0"})
	if len(uses) != 1 || uses[0].Prefix != netip.MustParsePrefix("fd66::1/128") || uses[0].What != "gateway fd66::1 of route default dev eth0" {
		t.Errorf("a default route's gateway: %v", uses)
	}
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("# a comment\nnameserver 127.0.0.53\nnameserver fd55:1:2:3::53\nnameserver 192.0.2.53\nnameserver fe80::1%eth0\nsearch example\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	uses = resolverUses([]string{conf, "/nonexistent"})
	var got []string
	for _, u := range uses {
		got = append(got, u.Prefix.String()+" "+u.What)
	}
	want := []string{"fd55:1:2:3::53/128 resolver fd55:1:2:3::53 (" + conf + ")", "192.0.2.53/32 resolver 192.0.2.53 (" + conf + ")", "fe80::1/128 resolver fe80::1 (" + conf + ")"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("resolvers:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
