package harness

import (
	"net/netip"
	"os/exec"
	"testing"
)

// testNets are the TEST-NET ranges (RFC 5737), the only addresses an
// upstream may use.
var testNets = []netip.Prefix{
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
}

// UpstreamOptions describes an upstream host: a named network namespace
// joined to the sandbox by a veth pair.
type UpstreamOptions struct {
	// Name of the namespace, at most 10 bytes; the sandbox's end of the
	// veth is "ngup-" + Name, the upstream's end "eth0".
	Name string
	// HostAddr and PeerAddr are the sandbox's and the upstream's
	// addresses, in CIDR form, inside one TEST-NET range.
	HostAddr, PeerAddr string
	// DefaultRoute makes the upstream the sandbox's default gateway, so it
	// stands for "the internet".
	DefaultRoute bool
}

// Upstream is a running upstream host.
type Upstream struct {
	UpstreamOptions
	Link string // the sandbox's end of the veth
}

// AddUpstream creates an upstream host, removed when t ends.
func AddUpstream(t testing.TB, opts UpstreamOptions) *Upstream {
	t.Helper()
	Require(t)
	if len(opts.Name) == 0 || len(opts.Name) > 10 {
		t.Fatalf("harness: upstream name %q must be 1..10 bytes", opts.Name)
	}
	for _, a := range []string{opts.HostAddr, opts.PeerAddr} {
		p, err := netip.ParsePrefix(a)
		if err != nil || !inTestNet(p) {
			t.Fatalf("harness: upstream address %q is not a CIDR inside a TEST-NET range", a)
		}
	}
	u := &Upstream{UpstreamOptions: opts, Link: "ngup-" + opts.Name}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("harness: ip %v: %v: %s", args, err, out)
		}
	}
	run("netns", "add", opts.Name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", opts.Name).CombinedOutput(); err != nil {
			t.Errorf("harness: removing upstream %s: %v: %s", opts.Name, err, out)
		}
	})
	// The namespace goes away asynchronously; deleting the veth first
	// makes the sandbox's link disappear at once.
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "link", "del", u.Link).CombinedOutput(); err != nil {
			t.Errorf("harness: removing %s: %v: %s", u.Link, err, out)
		}
	})
	run("link", "add", u.Link, "type", "veth", "peer", "name", "eth0", "netns", opts.Name)
	run("addr", "add", opts.HostAddr, "dev", u.Link)
	run("link", "set", u.Link, "up")
	run("-n", opts.Name, "link", "set", "lo", "up")
	run("-n", opts.Name, "addr", "add", opts.PeerAddr, "dev", "eth0")
	run("-n", opts.Name, "link", "set", "eth0", "up")
	if opts.DefaultRoute {
		peer, _ := netip.ParsePrefix(opts.PeerAddr)
		run("route", "add", "default", "via", peer.Addr().String(), "dev", u.Link)
	}
	return u
}

func inTestNet(p netip.Prefix) bool {
	for _, n := range testNets {
		if n.Contains(p.Addr()) && p.Bits() >= n.Bits() {
			return true
		}
	}
	return false
}

// Command is a command to run inside the upstream host.
func (u *Upstream) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", u.Name, name}, args...)...)
}

// Run runs a command inside the upstream host and returns its combined
// output; failure ends the test.
func (u *Upstream) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := u.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("harness: in upstream %s: %s %v: %v: %s", u.Name, name, args, err, out)
	}
	return string(out)
}
