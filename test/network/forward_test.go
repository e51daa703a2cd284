package network_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/test/harness"
)

// forwardRules: ngalice may do everything; ngbob everything but forward a
// system port; ngcarol may create networks but not forward their ports;
// ngdave may not manage others' networks.
const forwardRules = `
polkit.addRule(function(action, subject) {
	if (action.id.indexOf("org.netgrant.") != 0) return polkit.Result.NOT_HANDLED;
	if (subject.user == "ngalice") return polkit.Result.YES;
	if (subject.user == "ngbob") return action.id == "org.netgrant.forward-privileged-port" ? polkit.Result.NO : polkit.Result.YES;
	if (subject.user == "ngcarol") return action.id == "org.netgrant.create-nat-network" ? polkit.Result.YES : polkit.Result.NO;
	if (subject.user == "ngdave") return polkit.Result.NO;
	return polkit.Result.NOT_HANDLED;
});
`

// guestService has the netns guest answer TCP 9100 and UDP 5353 with the
// address it sees the client come from.
func guestService(t *testing.T, ns string) {
	t.Helper()
	tcp := listenIn(t, ns, "0.0.0.0:9100")
	go func() {
		for {
			conn, err := tcp.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(conn, "guest sees %s\n", conn.RemoteAddr())
			conn.Close()
		}
	}()
	var udp net.PacketConn
	var err error
	inNetns(t, ns, func() { udp, err = net.ListenPacket("udp4", "0.0.0.0:5353") })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			_, from, err := udp.ReadFrom(buf)
			if err != nil {
				return
			}
			udp.WriteTo([]byte("guest sees "+from.String()+"\n"), from)
		}
	}()
}

// fetch sends a line to addr from the named network namespace ("" for
// the host's) and returns the first line of the answer, or the error.
func fetch(t *testing.T, ns, proto, addr string) (string, error) {
	var out string
	var err error
	ask := func() { out, err = ask(proto, addr) }
	if ns == "" {
		ask()
	} else {
		inNetns(t, ns, ask)
	}
	return out, err
}

func ask(proto, addr string) (string, error) {
	conn, err := net.DialTimeout(proto, addr, 3*time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(3 * time.Second))
	if _, err := conn.Write([]byte("hello\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimSpace(line), err
}

func guestAddress(t *testing.T, ns string) string {
	t.Helper()
	fields := strings.Fields(run(t, "ip", "-n", ns, "-4", "-o", "addr", "show", "dev", "eth0"))
	for i, f := range fields {
		if f == "inet" && i+1 < len(fields) {
			addr, _, _ := strings.Cut(fields[i+1], "/")
			return addr
		}
	}
	t.Fatalf("the guest has no IPv4 address: %v", fields)
	return ""
}

func addForward(c *harness.Client, path dbus.ObjectPath, proto string, hostPort uint16, guest string, guestPort uint16, o opts) error {
	if o == nil {
		o = opts{}
	}
	return c.Do(harness.Call{Path: path, Interface: networkIface, Method: "AddPortForward",
		Args: []any{proto, hostPort, guest, guestPort, o}}).Err()
}

func removeForward(c *harness.Client, path dbus.ObjectPath, proto string, hostPort uint16) error {
	return c.Do(harness.Call{Path: path, Interface: networkIface, Method: "RemovePortForward", Args: []any{proto, hostPort}}).Err()
}

// Another machine (the upstream netns) and the host itself reach a
// guest's TCP and UDP services through forwarded host ports, the guest
// seeing the real client; nothing of a forward is left once it is
// removed or its network goes.
func TestPortForwards(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: forwardRules})
	addUpstreamWithDNS(t)
	rulesBefore := harness.FirewallRules(t)
	alice := env.Client(t, harness.UserAlice)
	netPath, info := mustCreateNetwork(t, alice, "fwd", nil)
	g := addNetnsGuest(t, info["bridge"].Value().(string))
	serveHello(t, nil)
	g.check(t, info["gateway"].Value().(string))
	guest := guestAddress(t, g.NS)
	guestService(t, g.NS)

	signals := env.WatchSignals(t)
	if err := addForward(alice, netPath, "tcp", 8080, guest, 9100, nil); err != nil {
		t.Fatalf("AddPortForward tcp 8080: %v", err)
	}
	if err := addForward(alice, netPath, "udp", 5353, guest, 5353, opts{"address": v("198.51.100.1")}); err != nil {
		t.Fatalf("AddPortForward udp 5353 on 198.51.100.1: %v", err)
	}
	want := fmt.Sprintf("[[tcp 8080 %s 9100 ] [udp 5353 %s 5353 198.51.100.1]]", guest, guest)
	if got := fmt.Sprint(env.Property(netPath, networkIface, "PortForwards")); got != want {
		t.Errorf("PortForwards = %s, want %s", got, want)
	}
	for {
		sig := signals.Next(t, "org.freedesktop.DBus.Properties.PropertiesChanged", netPath)
		if changed, ok := sig.Body[1].(map[string]dbus.Variant)["PortForwards"]; ok && fmt.Sprint(changed.Value()) == want {
			break
		}
	}

	if out, err := fetch(t, "up", "tcp", "198.51.100.1:8080"); err != nil || !strings.HasPrefix(out, "guest sees 198.51.100.2:") {
		t.Errorf("another machine through 198.51.100.1:8080: %v %q, want the guest to see 198.51.100.2", err, out)
	} else {
		t.Logf("from another machine to 198.51.100.1:8080: %s", out)
	}
	if out, err := fetch(t, "", "tcp", "198.51.100.1:8080"); err != nil || !strings.HasPrefix(out, "guest sees ") {
		t.Errorf("the host through its own 198.51.100.1:8080: %v %q", err, out)
	} else {
		t.Logf("from the host to its own 198.51.100.1:8080: %s", out)
	}
	if out, err := fetch(t, "", "tcp", "127.0.0.1:8080"); err == nil && strings.Contains(out, "guest") {
		t.Errorf("loopback reached the guest: %q", out)
	}
	if out, err := fetch(t, "up", "udp", "198.51.100.1:5353"); err != nil || !strings.HasPrefix(out, "guest sees 198.51.100.2:") {
		t.Errorf("UDP from another machine: %v %q", err, out)
	} else {
		t.Logf("UDP from another machine to 198.51.100.1:5353: %s", out)
	}

	t.Run("refused", func(t *testing.T) {
		// A program of the host's listening on the port owns it.
		busy, err := net.Listen("tcp", "0.0.0.0:8081")
		if err != nil {
			t.Fatal(err)
		}
		defer busy.Close()
		hostOnly, _ := mustCreateNetwork(t, alice, "fwdhost", opts{"outbound": v(false), "subnet": v("10.97.200.0/24")})
		for _, c := range []struct {
			what  string
			call  func() error
			error string
		}{
			{"a port already forwarded", func() error { return addForward(alice, netPath, "tcp", 8080, guest, 22, nil) }, "Exists"},
			{"a port a host program listens on", func() error { return addForward(alice, netPath, "tcp", 8081, guest, 22, nil) }, "Exists"},
			{"protocol sctp", func() error { return addForward(alice, netPath, "sctp", 8082, guest, 22, nil) }, "InvalidArgument"},
			{"a guest outside the subnet", func() error { return addForward(alice, netPath, "tcp", 8082, "192.0.2.9", 22, nil) }, "InvalidArgument"},
			{"the gateway as guest", func() error {
				return addForward(alice, netPath, "tcp", 8082, info["gateway"].Value().(string), 22, nil)
			}, "InvalidArgument"},
			{"guest port 0", func() error { return addForward(alice, netPath, "tcp", 8082, guest, 0, nil) }, "InvalidArgument"},
			{"an address not the host's", func() error {
				return addForward(alice, netPath, "tcp", 8082, guest, 22, opts{"address": v("192.0.2.77")})
			}, "InvalidArgument"},
			{"a network's gateway as the address", func() error {
				return addForward(alice, netPath, "tcp", 8082, guest, 22, opts{"address": v("10.97.200.1")})
			}, "InvalidArgument"},
			{"an unknown option", func() error { return addForward(alice, netPath, "tcp", 8082, guest, 22, opts{"proto": v("x")}) }, "InvalidArgument"},
			{"a host-only network", func() error { return addForward(alice, hostOnly, "tcp", 8082, "10.97.200.5", 22, nil) }, "Unsupported"},
			{"removing a port not forwarded", func() error { return removeForward(alice, netPath, "tcp", 9999) }, "NotFound"},
		} {
			if err := c.call(); harness.ErrorName(err) != errPrefix+c.error {
				t.Errorf("%s: %v, want %s", c.what, err, c.error)
			}
		}

		bob := env.Client(t, harness.UserBob)
		bobNet, bobInfo := mustCreateNetwork(t, bob, "bobfwd", nil)
		bobGuest := bobInfo["dhcp_start"].Value().(string)
		if err := addForward(bob, bobNet, "tcp", 80, bobGuest, 80, nil); harness.ErrorName(err) != "org.freedesktop.DBus.Error.AccessDenied" ||
			!strings.Contains(err.Error(), "not authorized to forward a host port below 1024 to a guest (polkit org.netgrant.forward-privileged-port)") {
			t.Errorf("ngbob forwarding port 80 without forward-privileged-port: %v", err)
		}
		if err := addForward(bob, bobNet, "tcp", 8083, bobGuest, 80, nil); err != nil {
			t.Errorf("ngbob forwarding port 8083: %v", err)
		}
		carol := env.Client(t, harness.UserCarol)
		carolNet, carolInfo := mustCreateNetwork(t, carol, "carolfwd", nil)
		if err := addForward(carol, carolNet, "tcp", 8084, carolInfo["dhcp_start"].Value().(string), 80, nil); harness.ErrorName(err) != "org.freedesktop.DBus.Error.AccessDenied" ||
			!strings.Contains(err.Error(), "not authorized to forward a host port to a guest (polkit org.netgrant.forward-port)") {
			t.Errorf("ngcarol forwarding without forward-port: %v", err)
		}
		dave := env.Client(t, harness.UserDave)
		if err := addForward(dave, netPath, "tcp", 8085, guest, 80, nil); harness.ErrorName(err) != errPrefix+"NotOwner" {
			t.Errorf("ngdave forwarding into ngalice's network: %v", err)
		}
		if err := removeForward(dave, netPath, "tcp", 8080); harness.ErrorName(err) != errPrefix+"NotOwner" {
			t.Errorf("ngdave removing ngalice's forward: %v", err)
		}
		for _, c := range []*harness.Client{bob, carol} {
			c.Exit()
		}
		if r := callOn(alice, hostOnly, networkIface, "Delete"); r.Err() != nil {
			t.Fatal(r.Err())
		}
		if out, err := fetch(t, "up", "tcp", "198.51.100.1:8080"); err != nil || !strings.HasPrefix(out, "guest sees") {
			t.Errorf("the forward after the refused calls: %v %q", err, out)
		}
	})

	if err := removeForward(alice, netPath, "tcp", 8080); err != nil {
		t.Fatalf("RemovePortForward: %v", err)
	}
	if out, err := fetch(t, "up", "tcp", "198.51.100.1:8080"); err == nil && strings.Contains(out, "guest") {
		t.Errorf("the removed forward still reaches the guest: %q", out)
	}
	if rules := harness.FirewallRules(t); strings.Contains(rules, ":9100") {
		t.Errorf("the removed forward's rule is still there:\n%s", rules)
	}
	if got := fmt.Sprint(env.Property(netPath, networkIface, "PortForwards")); strings.Contains(got, "8080") {
		t.Errorf("PortForwards after the removal: %s", got)
	}

	// The rest goes with the network.
	if r := callOn(alice, netPath, networkIface, "Delete"); r.Err() != nil {
		t.Fatal(r.Err())
	}
	harness.WaitFor(t, "the network to go", func() bool { return len(harness.Links(t, "ng-")) == 0 })
	if after := harness.FirewallRules(t); after != rulesBefore {
		t.Errorf("the firewall differs from before the network:\n--- before\n%s--- after\n%s", rulesBefore, after)
	}
	if out, _ := fetch(t, "up", "udp", "198.51.100.1:5353"); strings.Contains(out, "guest") {
		t.Errorf("the network's UDP forward outlived it: %q", out)
	}
}

// listenLike binds addr as a server restarting does (SO_REUSEADDR) and
// closes it at once; it returns the bind's error.
func listenLike(proto, addr string) error {
	config := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
		return err
	}}
	if proto == "tcp" {
		l, err := config.Listen(context.Background(), "tcp4", addr)
		if err == nil {
			l.Close()
		}
		return err
	}
	c, err := config.ListenPacket(context.Background(), "udp4", addr)
	if err == nil {
		c.Close()
	}
	return err
}

// The forward's check for listeners ran once, before polkit: a forward
// added while a host service restarted took the service's port, and the
// service, binding again without error, was silently shadowed: other
// machines' and the host's own connections went to the guest. Now a
// forward holds its host port while it exists: the service fails loudly
// (EADDRINUSE), on any address, the forward works, and once the forward
// goes the service binds again.
func TestForwardOwnsItsHostPort(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: forwardRules})
	addUpstreamWithDNS(t)
	alice := env.Client(t, harness.UserAlice)
	netPath, info := mustCreateNetwork(t, alice, "own", nil)
	g := addNetnsGuest(t, info["bridge"].Value().(string))
	serveHello(t, nil)
	g.check(t, info["gateway"].Value().(string))
	guest := guestAddress(t, g.NS)
	guestService(t, g.NS)
	for _, c := range []struct {
		proto     string
		guestPort uint16
	}{{"tcp", 9100}, {"udp", 5353}} {
		// The host service runs, then stops to restart.
		if err := listenLike(c.proto, "0.0.0.0:8090"); err != nil {
			t.Fatalf("the host service's %s port 8090: %v", c.proto, err)
		}
		if err := addForward(alice, netPath, c.proto, 8090, guest, c.guestPort, nil); err != nil {
			t.Fatalf("AddPortForward %s 8090: %v", c.proto, err)
		}
		for _, addr := range []string{"0.0.0.0:8090", "198.51.100.1:8090", "127.0.0.1:8090"} {
			if err := listenLike(c.proto, addr); !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("the host service binding %s %s again while forwarded: %v, want EADDRINUSE", c.proto, addr, err)
			}
		}
		if out, err := fetch(t, "up", c.proto, "198.51.100.1:8090"); err != nil || !strings.HasPrefix(out, "guest sees 198.51.100.2:") {
			t.Errorf("another machine through the %s forward: %v %q", c.proto, err, out)
		}
		if err := removeForward(alice, netPath, c.proto, 8090); err != nil {
			t.Fatalf("RemovePortForward %s 8090: %v", c.proto, err)
		}
		if err := listenLike(c.proto, "0.0.0.0:8090"); err != nil {
			t.Errorf("the host service binding %s 8090 once the forward went: %v", c.proto, err)
		}
	}
	// A port the network's teardown gives back.
	if err := addForward(alice, netPath, "tcp", 8091, guest, 9100, nil); err != nil {
		t.Fatal(err)
	}
	if r := callOn(alice, netPath, networkIface, "Delete"); r.Err() != nil {
		t.Fatal(r.Err())
	}
	if err := listenLike("tcp", "0.0.0.0:8091"); err != nil {
		t.Errorf("binding tcp 8091 once its forward's network went: %v", err)
	}
}
