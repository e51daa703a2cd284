package subnet

import (
	"net/netip"
	"os/exec"
	"testing"

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
	ip(t, "route", "add", "default", "dev", "v0")
	ip(t, "route", "add", "0.0.0.0/1", "dev", "v0")
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
	}
	for _, c := range conflicts {
		got, ok := Conflict(netip.MustParsePrefix(c.subnet), uses)
		if !ok || got.What != c.want {
			t.Errorf("Conflict(%s) = %q, %v; want %q", c.subnet, got.What, ok, c.want)
		}
	}
	// Default routes, netgrant's own bridges and loopback leave these free.
	for _, free := range []string{"192.168.100.0/24", "10.97.3.0/24", "10.98.0.0/24", "10.5.5.8/29"} {
		if got, ok := Conflict(netip.MustParsePrefix(free), uses); ok {
			t.Errorf("Conflict(%s) = %q, want none", free, got.What)
		}
	}
}
