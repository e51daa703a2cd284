package network_test

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

// TestGuestOnNATNetwork boots a real guest on a tap from CreateTap{network}
// and checks what a VM user would, over IPv4 and IPv6: it gets a lease (and
// a SLAAC address), resolves names through the gateway, reaches the
// outside masqueraded, cannot reach the host's own services or be reached
// from outside, and the host can reach it.
func TestGuestOnNATNetwork(t *testing.T) {
	kit := guest.Prepare(t)
	env := harness.Start(t, harness.Options{Rules: rules})
	up := addUpstreamWithDNS(t)

	// An upstream service that notes who connects, on both families.
	seen := make(chan string, 4)
	serveHello(t, seen)

	alice := env.Client(t, harness.UserAlice)
	netPath, info := mustCreateNetwork(t, alice, "e2e", nil)
	gateway, subnet6, gateway6 := info["gateway"].Value().(string), info["subnet6"].Value().(string), info["gateway6"].Value().(string)
	// A service on the host, on the gateway address: guests must not reach it.
	for _, addr := range []string{gateway + ":2222", "[" + gateway6 + "]:2222"} {
		hostService, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer hostService.Close()
	}

	// The guest's address is fixed, as a user pins a server VM's.
	tapPath, fds, tapInfo, err := alice.CreateTap(opts{"network": v("e2e"), "ipv4": v("10.97.0.77")})
	if err != nil {
		t.Fatal(err)
	}
	mac := tapInfo["mac"].Value().(string)
	tapFile := alice.Pass(fds[0])
	vm := guest.Boot(t, kit, tapFile, mac, guest.Checks{
		PingGateway: true,
		ResolveName: "upstream.test",
		IPv6:        true,
		Resolve6:    "upstream.test@" + gateway6,
		Connect:     []string{"198.51.100.2:8080@80", gateway + ":2222", upstreamAddr6 + ":8080", gateway6 + ":2222"},
		ListenPort:  7000,
		StayUp:      true,
		Hostname:    "alpha",
	})
	tapFile.Close()
	results, err := vm.Results(3 * time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	lease := vm.Lease()
	t.Logf("guest lease %s, results %v", lease, results)

	if ip := net.ParseIP(lease).To4(); ip == nil || ip[0] != 10 || ip[1] != 97 || ip[2] != 0 || ip[3] < 2 || ip[3] > 254 {
		t.Fatalf("guest lease %q is not in the range 10.97.0.2-10.97.0.254", lease)
	}
	// The address was the guest's from the moment the tap existed: the
	// firewall let it send from no other.
	if reserved := tapInfo["ipv4"].Value().(string); lease != reserved || lease != "10.97.0.77" {
		t.Errorf("guest lease %s, but its tap was reserved %s, asked for 10.97.0.77", lease, reserved)
	}
	if r := results["ping"]; !r.OK {
		t.Errorf("guest cannot ping the gateway: %s", r.Detail)
	}
	if r := results["resolve"]; !r.OK || !strings.Contains(r.Detail, "198.51.100.2") {
		t.Errorf("guest resolving upstream.test through the gateway: %+v", r)
	}
	if r := results["connect:198.51.100.2:8080@80"]; !r.OK || !strings.Contains(r.Detail, "hello-from-upstream") {
		t.Errorf("guest connecting upstream: %+v", r)
	}
	select {
	case from := <-seen:
		host, port, _ := net.SplitHostPort(from)
		if n, _ := strconv.Atoi(port); host != "198.51.100.1" || n < 1024 {
			t.Errorf("upstream saw the guest's connection from %s, want the host's 198.51.100.1 and a port >= 1024 (the guest used port 80)", from)
		}
	case <-time.After(10 * time.Second):
		t.Error("upstream never saw the guest's connection")
	}
	if r := results["connect:"+gateway+":2222"]; r.OK {
		t.Errorf("guest reached a TCP service on the host's gateway address: %+v", r)
	}

	// IPv6: a SLAAC address in the network's /64, the gateway's router
	// advertisements, DNS over IPv6 on the gateway, NAT66 to the outside.
	r6 := results["ipv6"]
	guest6, _, _ := strings.Cut(r6.Detail, "/")
	if ip := netip.MustParsePrefix(subnet6); !r6.OK || !ip.Contains(netip.MustParseAddr(guest6)) {
		t.Fatalf("guest's IPv6 address: %+v, want one in %s", r6, subnet6)
	}
	t.Logf("guest's IPv6 address and router: %s", r6.Detail)
	if r := results["resolve6"]; !r.OK || !strings.Contains(r.Detail, upstreamAddr6) {
		t.Errorf("guest resolving upstream.test through %s over IPv6: %+v", gateway6, r)
	} else {
		t.Logf("guest resolved upstream.test through %s: %s", gateway6, r.Detail)
	}
	if r := results["connect:"+upstreamAddr6+":8080"]; !r.OK || !strings.Contains(r.Detail, "hello-from-upstream") {
		t.Errorf("guest connecting upstream over IPv6: %+v", r)
	}
	select {
	case from := <-seen:
		if host, _, _ := net.SplitHostPort(from); host != hostAddr6 {
			t.Errorf("upstream saw the guest's IPv6 connection from %s, want the host's %s", from, hostAddr6)
		} else {
			t.Logf("upstream saw the guest's IPv6 connection from %s", from)
		}
	case <-time.After(10 * time.Second):
		t.Error("upstream never saw the guest's IPv6 connection")
	}
	if r := results["connect:"+gateway6+":2222"]; r.OK {
		t.Errorf("guest reached a TCP service on the host's IPv6 gateway address: %+v", r)
	}

	// The tap shows the IPv6 address the guest's console printed, and the
	// gateway answers for the guest's name with both its addresses.
	harness.WaitFor(t, "Tap.IPv6 to show the guest's address "+guest6, func() bool {
		got, _ := env.Property(tapPath, tapIface, "IPv6").([]string)
		return slices.Equal(got, []string{guest6})
	})
	const name = "alpha.e2e.netgrant.internal."
	harness.WaitFor(t, name+" at the gateway to be the guest's "+lease+" and "+guest6, func() bool {
		got4, err4 := lookupAt(gateway, name, "ip4")
		got6, err6 := lookupAt(gateway6, name, "ip6")
		return err4 == nil && err6 == nil && fmt.Sprint(got4) == "["+lease+"]" && fmt.Sprint(got6) == "["+guest6+"]"
	})

	// The host reaches the guest; the outside does not, even with a route.
	if out, err := osexecOutput("busybox", "ping", "-c", "1", "-W", "3", lease); err != nil {
		t.Errorf("host cannot ping the guest: %v: %s", err, out)
	}
	conn, err := net.DialTimeout("tcp", lease+":7000", 10*time.Second)
	if err != nil {
		t.Errorf("host cannot connect to the guest: %v", err)
	} else {
		banner, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.Contains(banner, guest.Banner) {
			t.Errorf("guest's service answered %q", banner)
		}
	}
	up.Run(t, "ip", "route", "add", "10.97.0.0/24", "via", "198.51.100.1")
	var outsideErr error
	inNetns(t, "up", func() {
		var c net.Conn
		c, outsideErr = net.DialTimeout("tcp", lease+":7000", 5*time.Second)
		if outsideErr == nil {
			c.Close()
		}
	})
	if outsideErr == nil {
		t.Error("the upstream host opened a connection to the guest")
	}
	// Likewise over IPv6: the host reaches the guest's address, the
	// upstream does not, though it routes the ULAs to the host.
	if conn, err := net.DialTimeout("tcp", "["+guest6+"]:7000", 10*time.Second); err != nil {
		t.Errorf("host cannot connect to the guest over IPv6: %v", err)
	} else {
		conn.Close()
	}
	up.Run(t, "ip", "-6", "route", "add", "fd00::/8", "via", hostAddr6)
	inNetns(t, "up", func() {
		var c net.Conn
		if c, outsideErr = net.DialTimeout("tcp", "["+guest6+"]:7000", 5*time.Second); outsideErr == nil {
			c.Close()
		}
	})
	if outsideErr == nil {
		t.Error("the upstream host opened a connection to the guest over IPv6")
	}

	// The lease shows on the network and on the tap.
	leaseShows := func() {
		t.Helper()
		harness.WaitFor(t, "the lease to show in Network.Leases", func() bool {
			for _, l := range env.Property(netPath, networkIface, "Leases").([][]any) {
				if l[0] == mac && l[1] == lease {
					return true
				}
			}
			return false
		})
		harness.WaitFor(t, "Tap.IPv4 to show the lease", func() bool {
			return env.Property(tapPath, tapIface, "IPv4") == lease
		})
	}
	leaseShows()

	// A port forward reaches the guest's service through its tap, from
	// the outside, also after a restart.
	if r := alice.Do(harness.Call{Path: netPath, Interface: networkIface, Method: "AddPortForward",
		Args: []any{"tcp", uint16(8070), lease, uint16(7000), opts{}}}); r.Err() != nil {
		t.Fatalf("AddPortForward: %v", r.Err())
	}
	bannerThroughForward := func(when string) {
		t.Helper()
		banner, err := fetch(t, "up", "tcp", "198.51.100.1:8070")
		if err != nil || banner != guest.Banner {
			t.Errorf("%s, the upstream host through the forwarded 198.51.100.1:8070: %q, %v; want the guest's banner", when, banner, err)
		}
	}
	bannerThroughForward("with the forward")

	// netgrantd killed and started again: the running guest keeps its
	// network, protected as before, and its lease is still known.
	env.KillDaemon()
	env.StartDaemon()
	if out, err := osexecOutput("busybox", "ping", "-c", "1", "-W", "3", lease); err != nil {
		t.Errorf("after a restart the host cannot ping the guest: %v: %s", err, out)
	}
	if conn, err := net.DialTimeout("tcp", lease+":7000", 10*time.Second); err != nil {
		t.Errorf("after a restart the host cannot connect to the guest: %v", err)
	} else {
		conn.Close()
	}
	inNetns(t, "up", func() {
		var c net.Conn
		if c, outsideErr = net.DialTimeout("tcp", lease+":7000", 5*time.Second); outsideErr == nil {
			c.Close()
		}
	})
	if outsideErr == nil {
		t.Error("after a restart the upstream host opened a connection to the guest")
	}
	leaseShows()
	bannerThroughForward("after a restart")
}
