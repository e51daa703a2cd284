package firewall

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/nstest"
	"golang.org/x/sys/unix"
)

func ip(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// inNetns runs f with the calling thread in the named network namespace,
// so sockets f opens live there.
func inNetns(t *testing.T, name string, f func()) {
	t.Helper()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with its goroutine.
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err == nil {
			runtime.UnlockOSThread()
		}
	}()
	f()
}

func dialFrom(t *testing.T, netns, network, local, remote string) (net.Conn, error) {
	t.Helper()
	var conn net.Conn
	var err error
	inNetns(t, netns, func() {
		d := net.Dialer{Timeout: 5 * time.Second}
		if local != "" {
			if d.LocalAddr, err = net.ResolveTCPAddr(network, local); err != nil {
				return
			}
		}
		conn, err = d.Dial(network, remote)
	})
	return conn, err
}

func ping(netns, addr string) error {
	return exec.Command("ip", "netns", "exec", netns, "busybox", "ping", "-c", "1", "-W", "3", addr).Run()
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go acceptAndClose(l)
	return l
}

// acceptAndClose takes every connection to l, until l is closed.
func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

// setUpTopology builds, in the test's namespace (the host, 198.51.100.1
// upstream, 10.97.0.1 on ngbr0), a guest 10.97.0.2 behind ngbr0 and an
// upstream machine 198.51.100.2 that routes 10.97.0.0/24 to the host.
func setUpTopology(t *testing.T) {
	// A tmpfs keeps ip-netns' files in this mount namespace, off the host.
	if err := unix.Mount("tmpfs", "/run", "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount("/run", unix.MNT_DETACH) })
	for _, ns := range []string{"guest", "upstream"} {
		ip(t, "netns", "add", ns)
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	}
	// A MAC of its own, as netgrant pins it: a port coming or going would
	// otherwise change it under the guests' ARP caches.
	ip(t, "link", "add", "ngbr0", "address", "02:00:00:97:00:01", "type", "bridge")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "ngbr0").Run() })
	ip(t, "addr", "add", "10.97.0.1/24", "dev", "ngbr0")
	ip(t, "link", "set", "ngbr0", "up")
	ip(t, "link", "add", "vguest", "type", "veth", "peer", "name", "eth0", "netns", "guest")
	// Deleting a netns frees its links only later, and the next test
	// makes the same ones: deleting one end of a veth is synchronous.
	t.Cleanup(func() { exec.Command("ip", "link", "del", "vguest").Run() })
	ip(t, "link", "set", "vguest", "master", "ngbr0", "up")
	ip(t, "-n", "guest", "addr", "add", "10.97.0.2/24", "dev", "eth0")
	ip(t, "-n", "guest", "link", "set", "eth0", "up")
	ip(t, "-n", "guest", "link", "set", "lo", "up")
	ip(t, "-n", "guest", "route", "add", "default", "via", "10.97.0.1")
	ip(t, "link", "add", "vup", "type", "veth", "peer", "name", "eth0", "netns", "upstream")
	t.Cleanup(func() { exec.Command("ip", "link", "del", "vup").Run() })
	ip(t, "addr", "add", "198.51.100.1/24", "dev", "vup")
	ip(t, "link", "set", "vup", "up")
	ip(t, "-n", "upstream", "addr", "add", "198.51.100.2/24", "dev", "eth0")
	ip(t, "-n", "upstream", "link", "set", "eth0", "up")
	ip(t, "-n", "upstream", "link", "set", "lo", "up")
	ip(t, "-n", "upstream", "route", "add", "10.97.0.0/24", "via", "198.51.100.1")
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("0"), 0) })
}

func TestTraffic(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { testTraffic(t, b) })
	}
}

func testTraffic(t *testing.T, b backend) {
	nstest.Require(t)
	for _, table := range []string{"filter", "nat"} {
		iptablesRun(t, "-t", table, "-F")
		iptablesRun(t, "-t", table, "-X")
	}
	iptablesRun(t, "-P", "FORWARD", "ACCEPT")
	setUpTopology(t)

	var guestListener net.Listener
	inNetns(t, "guest", func() { guestListener = listen(t, "10.97.0.2:9002") })
	// Without netgrant's rules upstream reaches the guest, so a refusal
	// later is the firewall's doing.
	conn, err := dialFrom(t, "upstream", "tcp4", "", guestListener.Addr().String())
	if err != nil {
		t.Fatalf("without rules, upstream cannot reach the guest: %v", err)
	}
	conn.Close()

	baseline := clean(t) // beside Docker: FORWARD policy DROP, DOCKER-USER
	fw := b.new(t)
	mustApply(t, fw, net0)
	t.Cleanup(func() { fw.Apply(nil) })

	t.Run("guest reaches upstream, masqueraded", func(t *testing.T) {
		if err := ping("guest", "198.51.100.2"); err != nil {
			t.Errorf("guest cannot ping upstream: %v", err)
		}
		var upstream net.Listener
		inNetns(t, "upstream", func() {
			var err error
			if upstream, err = net.Listen("tcp4", "198.51.100.2:9000"); err != nil {
				t.Fatal(err)
			}
		})
		defer upstream.Close()
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := upstream.Accept()
			if err == nil {
				accepted <- c
			}
			close(accepted)
		}()
		// From a privileged port, which masquerading must not pass on.
		conn, err := dialFrom(t, "guest", "tcp4", "10.97.0.2:80", "198.51.100.2:9000")
		if err != nil {
			t.Fatalf("guest cannot connect upstream: %v", err)
		}
		defer conn.Close()
		c, ok := <-accepted
		if !ok {
			t.Fatal("upstream accepted nothing")
		}
		defer c.Close()
		peer := c.RemoteAddr().(*net.TCPAddr)
		if peer.IP.String() != "198.51.100.1" || peer.Port < 1024 {
			t.Errorf("upstream sees the guest as %v, want 198.51.100.1 with a port >= 1024", peer)
		}
	})

	t.Run("guest is refused other host services", func(t *testing.T) {
		listen(t, "0.0.0.0:9001")
		for _, addr := range []string{"198.51.100.1:9001", "10.97.0.1:9001"} {
			_, err := dialFrom(t, "guest", "tcp4", "", addr)
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("guest connecting to the host's %s: %v, want connection refused", addr, err)
			}
		}
	})

	t.Run("guest reaches the administrator's host services on the gateway only", func(t *testing.T) {
		listen(t, "0.0.0.0:22")
		udp, err := net.ListenPacket("udp4", "0.0.0.0:69")
		if err != nil {
			t.Fatal(err)
		}
		defer udp.Close()
		reaches := func(addr string) bool {
			conn, err := dialFrom(t, "guest", "tcp4", "", addr)
			if err == nil {
				conn.Close()
			}
			return err == nil
		}
		tftp := func(addr string) bool {
			conn, err := dialFrom(t, "guest", "udp4", "", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Write([]byte(addr))
			udp.SetReadDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 64)
			n, _, err := udp.ReadFrom(buf)
			return err == nil && string(buf[:n]) == addr
		}
		if reaches("10.97.0.1:22") || tftp("10.97.0.1:69") {
			t.Fatal("the guest reaches ssh or tftp on the gateway with no host services configured")
		}
		mustApply(t, fw, withHostServices(net0))
		defer mustApply(t, fw, net0)
		if !reaches("10.97.0.1:22") {
			t.Error("the guest cannot reach tcp/22, a host service, on the gateway")
		}
		if !tftp("10.97.0.1:69") {
			t.Error("the guest cannot reach udp/69, a host service, on the gateway")
		}
		if reaches("198.51.100.1:22") || tftp("198.51.100.1:69") {
			t.Error("the guest reaches a host service on the host's other address")
		}
		if _, err := dialFrom(t, "guest", "tcp4", "", "10.97.0.1:9001"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("guest connecting to the gateway's port 9001, no host service: %v, want connection refused", err)
		}
	})

	t.Run("guest reaches DNS and ICMP on the gateway", func(t *testing.T) {
		dns := listen(t, "10.97.0.1:53")
		conn, err := dialFrom(t, "guest", "tcp4", "", dns.Addr().String())
		if err != nil {
			t.Errorf("guest cannot reach DNS over TCP: %v", err)
		} else {
			conn.Close()
		}

		pc, err := net.ListenPacket("udp4", "10.97.0.1:53")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		conn, err = dialFrom(t, "guest", "udp4", "", "10.97.0.1:53")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("query")); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		if n, from, err := pc.ReadFrom(buf); err != nil || string(buf[:n]) != "query" {
			t.Errorf("DNS over UDP got %q from %v, %v; want the guest's query", buf[:n], from, err)
		}

		if err := ping("guest", "10.97.0.1"); err != nil {
			t.Errorf("guest cannot ping the gateway: %v", err)
		}
	})

	t.Run("guest reaches DHCP on the gateway only", func(t *testing.T) {
		pc, err := net.ListenPacket("udp4", "0.0.0.0:67")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		conn, err := dialFrom(t, "guest", "udp4", "", "198.51.100.1:67")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("dhcp"))
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Read(make([]byte, 16)); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("guest's DHCP to the host's upstream address: %v, want connection refused", err)
		}
	})

	t.Run("a query from a forged outside source is not answered", func(t *testing.T) {
		// Loose or no reverse-path filtering is common on hosts; the
		// firewall must not rely on it.
		for _, dev := range []string{"all", "ngbr0"} {
			os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/rp_filter", []byte("0"), 0)
		}
		ip(t, "-n", "guest", "addr", "add", "198.51.100.7/32", "dev", "eth0")
		defer ip(t, "-n", "guest", "addr", "del", "198.51.100.7/32", "dev", "eth0")
		pc, err := net.ListenPacket("udp4", "10.97.0.1:53")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close()
		for _, local := range []string{"198.51.100.7:5353", "10.97.0.2:5353"} {
			var err error
			inNetns(t, "guest", func() {
				var conn net.Conn
				d := net.Dialer{LocalAddr: &net.UDPAddr{IP: net.ParseIP(strings.Split(local, ":")[0]), Port: 5353}}
				if conn, err = d.Dial("udp4", "10.97.0.1:53"); err == nil {
					_, err = conn.Write([]byte(local))
					conn.Close()
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		// The forged query went first on the same path: had it passed, it
		// would be read first.
		pc.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 32)
		n, _, err := pc.ReadFrom(buf)
		if err != nil || string(buf[:n]) != "10.97.0.2:5353" {
			t.Errorf("the gateway's DNS port got %q, %v; want only the guest's honest query", buf[:n], err)
		}
	})

	t.Run("upstream cannot reach the guest", func(t *testing.T) {
		_, err := dialFrom(t, "upstream", "tcp4", "", guestListener.Addr().String())
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("upstream connecting to the guest: %v, want connection refused", err)
		}
	})

	t.Run("port forwards reach the guest, with the client's address", func(t *testing.T) {
		withForwards := net0
		withForwards.Forwards = []Forward{
			{Proto: "tcp", HostPort: 8080, Guest: netip.MustParseAddr("10.97.0.2"), GuestPort: 9100},
			{Proto: "udp", HostPort: 5353, Guest: netip.MustParseAddr("10.97.0.2"), GuestPort: 9153},
		}
		if err := fw.Apply([]Network{withForwards}); err != nil {
			t.Fatal(err)
		}
		defer fw.Apply([]Network{net0})
		var tcp net.Listener
		var udp net.PacketConn
		inNetns(t, "guest", func() {
			var err error
			if tcp, err = net.Listen("tcp4", "10.97.0.2:9100"); err != nil {
				t.Fatal(err)
			}
			if udp, err = net.ListenPacket("udp4", "10.97.0.2:9153"); err != nil {
				t.Fatal(err)
			}
		})
		defer tcp.Close()
		defer udp.Close()
		peers := make(chan string, 4)
		go func() {
			for {
				c, err := tcp.Accept()
				if err != nil {
					return
				}
				peers <- c.RemoteAddr().(*net.TCPAddr).IP.String()
				c.Close()
			}
		}()
		// Another machine, and the host itself on its own outside address.
		for _, from := range []string{"upstream", ""} {
			var conn net.Conn
			var err error
			if from == "" {
				conn, err = net.DialTimeout("tcp4", "198.51.100.1:8080", 5*time.Second)
			} else {
				conn, err = dialFrom(t, from, "tcp4", "", "198.51.100.1:8080")
			}
			if err != nil {
				t.Errorf("connecting to the forwarded port from %q: %v", from, err)
				continue
			}
			conn.Close()
			if peer := <-peers; from == "upstream" && peer != "198.51.100.2" {
				t.Errorf("the guest saw the client as %s, want 198.51.100.2", peer)
			}
		}
		if _, err := net.DialTimeout("tcp4", "127.0.0.1:8080", 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("loopback port 8080 reached %v, want refused: loopback is never forwarded", err)
		}
		// Another guest of the network reaches the forward through the
		// host's address, and the forward's guest answers through the host.
		ip(t, "netns", "add", "neighbour")
		defer exec.Command("ip", "netns", "del", "neighbour").Run()
		ip(t, "link", "add", "vneighbour", "type", "veth", "peer", "name", "eth0", "netns", "neighbour")
		defer exec.Command("ip", "link", "del", "vneighbour").Run()
		ip(t, "link", "set", "vneighbour", "master", "ngbr0", "up")
		ip(t, "-n", "neighbour", "addr", "add", "10.97.0.3/24", "dev", "eth0")
		ip(t, "-n", "neighbour", "link", "set", "eth0", "up")
		ip(t, "-n", "neighbour", "route", "add", "default", "via", "10.97.0.1")
		if conn, err := dialFrom(t, "neighbour", "tcp4", "", "198.51.100.1:8080"); err != nil {
			t.Errorf("a guest's neighbour through the host's forwarded 198.51.100.1:8080: %v", err)
		} else {
			conn.Close()
			if peer := <-peers; peer != "10.97.0.1" {
				t.Errorf("the forward's guest saw its neighbour as %s, want the gateway 10.97.0.1", peer)
			}
		}
		// What a guest sends its gateway stays the gateway's.
		if _, err := dialFrom(t, "guest", "tcp4", "", "10.97.0.1:8080"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("the guest's connection to its gateway's port 8080: %v, want refused: the gateway is never forwarded", err)
		}
		conn, err := dialFrom(t, "upstream", "udp4", "", "198.51.100.1:5353")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.Write([]byte("over-udp"))
		udp.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 16)
		if n, from, err := udp.ReadFrom(buf); err != nil || string(buf[:n]) != "over-udp" || from.(*net.UDPAddr).IP.String() != "198.51.100.2" {
			t.Errorf("UDP through the forward: %q from %v, %v", buf[:n], from, err)
		}

		if err := fw.Apply([]Network{net0}); err != nil {
			t.Fatal(err)
		}
		if _, err := dialFrom(t, "upstream", "tcp4", "", "198.51.100.1:8080"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("after the forward went, upstream connecting: %v, want refused", err)
		}
	})

	t.Run("Docker started after netgrant", func(t *testing.T) {
		removeDockerUser(t)
		applied := make(chan error, 10)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := WatchDocker(ctx, func() { applied <- fw.Apply([]Network{net0}) }); err != nil {
			t.Fatal(err)
		}
		iptablesRun(t, "-N", "DOCKER-USER")
		iptablesRun(t, "-A", "DOCKER-USER", "-j", "RETURN")
		iptablesRun(t, "-I", "FORWARD", "-j", "DOCKER-USER")
		select {
		case err := <-applied:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("no word of DOCKER-USER being made")
		}
		if err := ping("guest", "198.51.100.2"); err != nil {
			t.Errorf("guest cannot ping upstream: %v", err)
		}
	})

	t.Run("Docker restarted: its FORWARD jump first again", func(t *testing.T) {
		iptablesRun(t, "-D", "FORWARD", "-j", "DOCKER-USER")
		iptablesRun(t, "-I", "FORWARD", "-j", "DOCKER-USER")
		if err := fw.Apply([]Network{net0}); err != nil {
			t.Fatal(err)
		}
		if err := ping("guest", "198.51.100.2"); err != nil {
			t.Errorf("guest cannot ping upstream: %v", err)
		}
	})

	t.Run("Apply leaves intact rules and their counters alone", func(t *testing.T) {
		if b.name != "iptables" {
			t.Skip("nftables rewrites its table in one transaction on every Apply")
		}
		before := ruleCounters(t)
		if before["-A POSTROUTING -j NETGRANT-POSTROUTING"] == 0 {
			t.Fatalf("no traffic counted:\n%v", before)
		}
		if err := fw.Apply([]Network{net0}); err != nil {
			t.Fatal(err)
		}
		// A guest may still send a packet meanwhile, so counters may grow;
		// a rule Apply replaced would start again from nothing.
		after := ruleCounters(t)
		for rule, count := range before {
			if after[rule] < count {
				t.Errorf("after Apply %q counts %d packets, before it %d: the rule was replaced", rule, after[rule], count)
			}
		}
	})

	t.Run("nothing of netgrant's stays, Docker's rules do", func(t *testing.T) {
		if err := fw.Apply(nil); err != nil {
			t.Fatal(err)
		}
		if got := save(t); got != baseline {
			t.Errorf("after the last network:\n%s\nwant as before:\n%s", got, baseline)
		}
	})
}

// ruleCounters returns the rules of iptables-save that counted packets.
// ruleCounters maps each rule that counted traffic to its packet count.
func ruleCounters(t *testing.T) map[string]int {
	out, err := exec.Command("iptables-save", "-c").Output()
	if err != nil {
		t.Fatal(err)
	}
	counted := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		var packets, bytes int
		if _, err := fmt.Sscanf(line, "[%d:%d]", &packets, &bytes); err == nil && packets > 0 {
			counted[line[strings.IndexByte(line, ']')+2:]] = packets
		}
	}
	return counted
}
