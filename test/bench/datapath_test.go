package bench_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

// BenchmarkDataPath measures what a guest's traffic gets, the reason to
// pick a tap over user-mode networking: the tests' guest (with iperf3 and
// rr added) measures TCP throughput each way and 1-byte TCP round trips,
// to the host and to an upstream test host behind the host's default
// route, on
//   - a netgrant network (virtio-net on the tap with vnet_hdr, 1 and 4
//     queues),
//   - QEMU's user networking (slirp),
//   - passt (-netdev stream to Debian's passt),
//   - a tap root made by hand on a plain bridge with a masquerade rule:
//     the ceiling without netgrant's filters.
//
// These machines lack /dev/vhost-net, and KVM hangs the guest kernel, so
// QEMU emulates the guest (TCG, 2 vCPUs): the figures are bounded by the
// emulation, and only their ratios mean something.
//
//	go test -run '^$' -bench DataPath -benchtime 1x ./test/bench
func BenchmarkDataPath(b *testing.B) {
	for range b.N {
		dataPath(b)
	}
}

const (
	// perfSeconds each way, perfRoundTrips: what issue 21 asks for.
	perfSeconds    = 10
	perfRoundTrips = 10000
	rrPort         = "7100"
	// upstreamTarget is the upstream test host's service address, behind
	// its router address, which passt maps to the host itself.
	upstreamTarget = "203.0.113.2"
	// nobody is the unprivileged uid and gid passt runs under.
	nobody = 65534
)

// dataRow is one setup's figures on one path.
type dataRow struct {
	setup, path    string
	up, down, rrUS float64
}

func dataPath(b *testing.B) {
	kit := guest.Prepare(b)
	for _, program := range []string{"iperf3", "passt"} {
		if _, err := exec.LookPath(program); err != nil {
			b.Fatalf("%s is missing: sudo ./test/run installs it", program)
		}
	}
	dir := b.TempDir()
	rr := filepath.Join(dir, "rr")
	build := exec.Command("go", "build", "-o", rr, "./rr")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building rr: %v: %s", err, out)
	}
	extra, err := guest.HostProgram("/usr/bin/iperf3")
	if err != nil {
		b.Fatal(err)
	}
	rrData, err := os.ReadFile(rr)
	if err != nil {
		b.Fatal(err)
	}
	kit, err = kit.WithFiles(dir, append(extra, guest.ExtraFile{Path: "bin/rr", Exec: true, Data: rrData}))
	if err != nil {
		b.Fatal(err)
	}

	env := harness.Start(b, harness.Options{Rules: rules,
		Config: "[Networks]\nHostServices=tcp/5201 tcp/" + rrPort + "\n[Firewall]\nBackend=nftables\n"})
	up := harness.AddUpstream(b, harness.UpstreamOptions{Name: "up", HostAddr: "198.51.100.1/24", PeerAddr: "198.51.100.2/24", DefaultRoute: true})
	up.Run(b, "ip", "addr", "add", upstreamTarget+"/32", "dev", "lo")
	serve(b, exec.Command("iperf3", "-s"), "127.0.0.1:5201")
	serve(b, exec.Command(rr, "serve", ":"+rrPort), "127.0.0.1:"+rrPort)
	serve(b, up.Command("iperf3", "-s"), upstreamTarget+":5201")
	serve(b, up.Command(rr, "serve", ":"+rrPort), upstreamTarget+":"+rrPort)

	var rows []dataRow
	measure := func(setup, hostAddr string, netdev []string, files []*os.File, c guest.Checks) {
		c.Perf = []string{hostAddr, upstreamTarget}
		c.PerfSeconds, c.PerfRoundTrips = perfSeconds, perfRoundTrips
		args := append(kit.QEMUArgs(c), "-smp", "2")
		args = append(args, netdev...)
		cmd := exec.Command("qemu-system-x86_64", args...)
		cmd.ExtraFiles = files
		vm := guest.Start(b, cmd)
		for _, f := range files {
			f.Close()
		}
		results, err := vm.Results(time.Duration(4*perfSeconds+300) * time.Second)
		if err != nil {
			b.Fatalf("%s: %v", setup, err)
		}
		vm.Stop()
		for _, path := range []struct{ name, addr string }{{"guest ↔ host", hostAddr}, {"guest ↔ upstream", upstreamTarget}} {
			row := dataRow{setup: setup, path: path.name}
			for _, m := range []struct {
				check string
				into  *float64
			}{{"perf-up:", &row.up}, {"perf-down:", &row.down}, {"rr:", &row.rrUS}} {
				r := results[m.check+path.addr]
				value, err := strconv.ParseFloat(r.Detail, 64)
				if !r.OK || err != nil {
					b.Fatalf("%s, %s: %s%s: %+v", setup, path.name, m.check, path.addr, r)
				}
				*m.into = value
			}
			rows = append(rows, row)
		}
	}

	alice := env.Client(b, harness.UserAlice)
	_, info, err := alice.CreateNATNetwork("perf", nil)
	if err != nil {
		b.Fatal(err)
	}
	gateway := info["gateway"].Value().(string)
	for _, queues := range []int{1, 4} {
		_, fds, tapInfo, err := alice.CreateTap(map[string]dbus.Variant{
			"network": dbus.MakeVariant("perf"), "vnet_hdr": dbus.MakeVariant(true), "queues": dbus.MakeVariant(uint32(queues))})
		if err != nil {
			b.Fatal(err)
		}
		var files []*os.File
		var fdArgs []string
		for i, fd := range fds {
			files = append(files, alice.Pass(fd))
			fdArgs = append(fdArgs, strconv.Itoa(3+i))
		}
		device := "virtio-net-pci,netdev=n0,mac=" + tapInfo["mac"].Value().(string)
		if queues > 1 {
			device += fmt.Sprintf(",mq=on,vectors=%d", 2*queues+2)
		}
		measure(fmt.Sprintf("netgrant tap, %d queue(s)", queues), gateway,
			[]string{"-netdev", "tap,id=n0,vhost=off,fds=" + strings.Join(fdArgs, ":"), "-device", device}, files, guest.Checks{})
	}

	measure("slirp (QEMU user networking)", "10.0.2.2",
		[]string{"-netdev", "user,id=n0", "-device", "virtio-net-pci,netdev=n0"}, nil, guest.Checks{})

	// passt runs as its users run it, unprivileged: started as root it
	// changes to nobody in a way that hides its socket from QEMU.
	// Its directory must be one nobody reaches: the tests' temporary
	// directories are root's alone.
	passtDir, err := os.MkdirTemp("/run", "netgrant-bench-passt-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(passtDir) })
	for _, err := range []error{os.Chmod(passtDir, 0o755), os.Chown(passtDir, nobody, nobody)} {
		if err != nil {
			b.Fatal(err)
		}
	}
	sock := filepath.Join(passtDir, "passt.sock")
	passt := exec.Command("passt", "--foreground", "--socket", sock)
	passt.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	passt.Stderr = os.Stderr
	if err := passt.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		passt.Process.Kill()
		passt.Wait()
	})
	// Not dialled: passt would take that for its guest.
	harness.WaitFor(b, "passt's socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	// passt maps its guest's connections to the gateway to the host.
	measure("passt", "198.51.100.2",
		[]string{"-netdev", "stream,id=n0,server=off,addr.type=unix,addr.path=" + sock, "-device", "virtio-net-pci,netdev=n0"}, nil, guest.Checks{})

	handMadeTap(b)
	measure("tap made by hand, plain bridge", "10.98.0.1",
		[]string{"-netdev", "tap,id=n0,ifname=handtap0,script=no,downscript=no,vnet_hdr=on,vhost=off", "-device", "virtio-net-pci,netdev=n0"},
		nil, guest.Checks{StaticIP: "10.98.0.2/24", Gateway: "10.98.0.1"})

	printDataPath(b, rows)
}

// handMadeTap is what a user without netgrant sets up as root: a bridge
// with the gateway address, a tap QEMU opens by name, forwarding and a
// masquerade rule; no filters.
func handMadeTap(b *testing.B) {
	for _, args := range [][]string{
		{"ip", "link", "add", "handbr0", "type", "bridge"},
		{"ip", "addr", "add", "10.98.0.1/24", "dev", "handbr0"},
		{"ip", "link", "set", "handbr0", "up"},
		{"ip", "tuntap", "add", "dev", "handtap0", "mode", "tap", "vnet_hdr"},
		{"ip", "link", "set", "handtap0", "master", "handbr0", "up"},
		{"sysctl", "-q", "-w", "net.ipv4.ip_forward=1"},
		{"nft", "add", "table", "ip", "handmade"},
		{"nft", "add", "chain", "ip", "handmade", "post", "{ type nat hook postrouting priority srcnat; }"},
		{"nft", "add", "rule", "ip", "handmade", "post", "ip", "saddr", "10.98.0.0/24", "oifname", "!=", "handbr0", "masquerade"},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", args, err, out)
		}
	}
	b.Cleanup(func() {
		for _, args := range [][]string{{"ip", "link", "del", "handtap0"}, {"ip", "link", "del", "handbr0"}, {"nft", "delete", "table", "ip", "handmade"}} {
			exec.Command(args[0], args[1:]...).Run()
		}
	})
}

// serve starts a server, stopped when b ends, and returns once addr
// accepts connections.
func serve(b *testing.B, cmd *exec.Cmd, addr string) {
	b.Helper()
	if err := cmd.Start(); err != nil {
		b.Fatalf("%v: %v", cmd.Args, err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	harness.WaitFor(b, addr+" to accept connections", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

func printDataPath(b *testing.B, rows []dataRow) {
	passt := map[string]dataRow{}
	for _, r := range rows {
		if r.setup == "passt" {
			passt[r.path] = r
		}
	}
	var out strings.Builder
	fmt.Fprintf(&out, "\nData path (TCG, 2 vCPUs, no vhost-net: ratios only; × is against passt on the same path)\n\n")
	fmt.Fprintf(&out, "| setup | path | TCP guest→ Gbit/s | TCP →guest Gbit/s | TCP round trip µs |\n|---|---|---|---|---|\n")
	for _, r := range rows {
		p := passt[r.path]
		fmt.Fprintf(&out, "| %s | %s | %.2f (%.2f×) | %.2f (%.2f×) | %.0f (%.2f×) |\n", r.setup, r.path,
			r.up/1000, r.up/p.up, r.down/1000, r.down/p.down, r.rrUS, r.rrUS/p.rrUS)
	}
	hand := map[string]dataRow{}
	for _, r := range rows {
		if strings.HasPrefix(r.setup, "tap made by hand") {
			hand[r.path] = r
		}
	}
	fmt.Fprintf(&out, "\nnetgrant's filters and NAT against the hand-made tap (1 queue):\n")
	for _, r := range rows {
		if h := hand[r.path]; r.setup == "netgrant tap, 1 queue(s)" {
			fmt.Fprintf(&out, "  %s: throughput %.2f× / %.2f×, round trip %.2f×\n", r.path, r.up/h.up, r.down/h.down, r.rrUS/h.rrUS)
		}
	}
	b.Log(out.String())
	fmt.Print(out.String())
}
