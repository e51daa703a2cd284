package firewall

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/netgrant/netgrant/test/nstest"
)

// setUpTopology6 adds IPv6 to setUpTopology's machines: the guest
// fd00:97::2 behind ngbr0 (fd00:97::1), the host 2001:db8:1::1 and the
// upstream 2001:db8:1::2, which routes the ULAs to the host; and a second
// guest fd00:97:2::2 behind ngbr2 (hostOnly's bridge, fd00:97:2::1).
func setUpTopology6(t *testing.T) {
	ip(t, "link", "add", "ngbr2", "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "ngbr2").Run() })
	ip(t, "link", "set", "ngbr2", "up")
	ip(t, "netns", "add", "guest2")
	t.Cleanup(func() { exec.Command("ip", "netns", "del", "guest2").Run() })
	ip(t, "link", "add", "vguest2", "type", "veth", "peer", "name", "eth0", "netns", "guest2")
	ip(t, "link", "set", "vguest2", "master", "ngbr2", "up")
	ip(t, "-n", "guest2", "link", "set", "eth0", "up")
	for _, a := range [][]string{
		{"addr", "add", "fd00:97::1/64", "dev", "ngbr0", "nodad"},
		{"addr", "add", "fd00:97:2::1/64", "dev", "ngbr2", "nodad"},
		{"addr", "add", "2001:db8:1::1/64", "dev", "vup", "nodad"},
		{"-n", "guest", "addr", "add", "fd00:97::2/64", "dev", "eth0", "nodad"},
		{"-n", "guest", "-6", "route", "add", "default", "via", "fd00:97::1"},
		{"-n", "guest2", "addr", "add", "fd00:97:2::2/64", "dev", "eth0", "nodad"},
		{"-n", "guest2", "-6", "route", "add", "default", "via", "fd00:97:2::1"},
		{"-n", "upstream", "addr", "add", "2001:db8:1::2/64", "dev", "eth0", "nodad"},
		{"-n", "upstream", "-6", "route", "add", "fd00::/8", "via", "2001:db8:1::1"},
	} {
		ip(t, a...)
	}
	if err := os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	// The refusals come as ICMPv6 errors, which the kernel rate-limits per
	// peer: unlimited, a refusal never waits for a retransmission.
	if err := os.WriteFile("/proc/sys/net/ipv6/icmp/ratelimit", []byte("0"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile("/proc/sys/net/ipv6/conf/all/forwarding", []byte("0"), 0) })
}

// listen6 listens on addr in the named network namespace, "" for the
// host's.
func listen6(t *testing.T, netns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	if netns == "" {
		l, err = net.Listen("tcp6", addr)
	} else {
		inNetns(t, netns, func() { l, err = net.Listen("tcp6", addr) })
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// The IPv6 twins of TestTraffic's protections, on each backend: NAT66 to
// ports >= 1024, host services and other networks refused, DNS on the
// gateway served, unsolicited traffic from outside refused; none of it
// without the rules.
func TestTraffic6(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testTraffic6(t, b) })
	}
}

func testTraffic6(t *testing.T, b backend) {
	nstest.Require(t)
	setUpTopology(t)
	setUpTopology6(t)
	guest := listen6(t, "guest", "[fd00:97::2]:9002")
	guest2 := listen6(t, "guest2", "[fd00:97:2::2]:9002")
	hostService := listen6(t, "", "[::]:9001")
	for _, l := range []net.Listener{guest, guest2, hostService} {
		go acceptAndClose(l)
	}
	reach := func(from, to string) error {
		conn, err := dialFrom(t, from, "tcp6", "", to)
		if err == nil {
			conn.Close()
		}
		return err
	}
	// Without netgrant's rules everything reaches everything, so each
	// refusal below is the firewall's doing.
	for _, c := range [][2]string{{"upstream", "[fd00:97::2]:9002"}, {"guest", "[fd00:97:2::2]:9002"}, {"guest", "[fd00:97::1]:9001"}} {
		if err := reach(c[0], c[1]); err != nil {
			t.Fatalf("without rules, %s cannot reach %s: %v", c[0], c[1], err)
		}
	}

	clean(t)
	fw := b.new(t)
	mustApply(t, fw, net0, hostOnly)
	t.Cleanup(func() { fw.Apply(nil) })

	upstream := listen6(t, "upstream", "[2001:db8:1::2]:9000")
	accepted := make(chan net.Addr, 1)
	go func() {
		if c, err := upstream.Accept(); err == nil {
			accepted <- c.RemoteAddr()
			c.Close()
		}
	}()
	conn, err := dialFrom(t, "guest", "tcp6", "[fd00:97::2]:80", "[2001:db8:1::2]:9000")
	if err != nil {
		t.Fatalf("guest cannot connect upstream over IPv6: %v", err)
	}
	conn.Close()
	if peer := (<-accepted).(*net.TCPAddr); peer.IP.String() != "2001:db8:1::1" || peer.Port < 1024 {
		t.Errorf("upstream sees the guest as %v, want 2001:db8:1::1 with a port >= 1024", peer)
	}

	go acceptAndClose(listen6(t, "", "[fd00:97::1]:53"))
	if err := reach("guest", "[fd00:97::1]:53"); err != nil {
		t.Errorf("guest cannot reach DNS on the IPv6 gateway: %v", err)
	}
	for _, c := range []struct{ from, to, what string }{
		{"guest", "[fd00:97::1]:9001", "a host service on the gateway"},
		{"guest", "[2001:db8:1::1]:9001", "a host service on another address"},
		{"guest", "[fd00:97:2::2]:9002", "a guest of another network"},
		{"guest2", "[fd00:97::2]:9002", "a guest of another network, from a host-only one"},
		{"guest2", "[2001:db8:1::2]:9000", "the outside, from a host-only network"},
		{"upstream", "[fd00:97::2]:9002", "the guest, unsolicited from outside"},
	} {
		if err := reach(c.from, c.to); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("%s reaching %s (%s): %v, want refused", c.from, c.what, c.to, err)
		}
	}
}
