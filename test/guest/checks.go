// Package guest boots a tiny Linux guest in QEMU for end-to-end tests: a
// Debian cloud kernel and a busybox initramfs whose init takes a DHCP lease
// on its virtio NIC, runs the network checks named on the kernel command
// line and reports each on the serial console.
package guest

import (
	"fmt"
	"strconv"
	"strings"
)

// Kit is a kernel and initramfs ready to boot.
type Kit struct {
	Kernel, Initrd string
}

// Banner is the line the guest's ListenPort listener sends to every client.
const Banner = "netgrant-guest"

// Checks is what the guest does once eth0 has an address. Each check
// prints "NETGRANT-RESULT <name> ok|fail <detail>" on the console; the
// names are given below.
type Checks struct {
	// PingGateway pings the gateway ("ping"; detail: the gateway).
	PingGateway bool
	// ResolveName is looked up with nslookup at the lease's DNS server, else
	// the gateway ("resolve"; detail: the addresses found, comma-separated).
	ResolveName string
	// IPv6 waits for an address and a default route from router
	// advertisements ("ipv6"; detail: the address/prefix, then the
	// router's address).
	IPv6 bool
	// Ping6, after IPv6, pings this IPv6 address ("ping6"; detail: the
	// address).
	Ping6 string
	// Resolve6 ("name@server") looks name's AAAA records up at an IPv6
	// server ("resolve6"; detail: the addresses, comma-separated).
	Resolve6 string
	// Connect opens a TCP connection to each "host:port", or "host:port@src"
	// to connect from local port src ("connect:" + the entry;
	// detail: "connected <first line the peer sent>", or nc's error).
	Connect []string
	// ListenPort, if not 0, serves Banner on this TCP port until power-off
	// ("listen"; detail: the port).
	ListenPort int
	// StayUp keeps the guest running after the checks until it is stopped,
	// so its listener can be reached and its tap and lease stay while the
	// test looks at them; otherwise it powers off.
	StayUp bool
	// StaticIP ("10.97.0.50/24") is configured instead of asking DHCP.
	StaticIP string
	// Gateway is the default route (and DNS server) with StaticIP; with DHCP
	// it overrides the lease's router as the target of the checks.
	Gateway string
	// NICs, if above 1, asks DHCP on eth1… too ("lease:eth1", …; detail:
	// the address).
	NICs int
	// Hostname, if set, is the name eth0's DHCP client asks for.
	Hostname string
	// Perf measures the data path to each host, last: TCP throughput with
	// iperf3 for PerfSeconds each way ("perf-up:"/"perf-down:" + host;
	// detail: Mbit/s) and PerfRoundTrips 1-byte round trips over TCP to
	// port 7100 ("rr:" + host; detail: µs per round trip). iperf3 and rr
	// are not in the kit: add them with WithFiles.
	Perf           []string
	PerfSeconds    int
	PerfRoundTrips int
}

// Result is one check's outcome.
type Result struct {
	OK     bool
	Detail string
}

// KernelArgs is the kernel command line that boots k's guest with checks c
// and its console on the first serial port. It panics if a value contains
// whitespace or a comma where one would split it: the command line cannot
// carry those.
func (k Kit) KernelArgs(c Checks) string {
	args := []string{"console=ttyS0", "quiet", "panic=-1"}
	add := func(key, value string) {
		if strings.ContainsAny(value, " \t\n\"") {
			panic(fmt.Sprintf("guest: %s %q cannot go on a kernel command line", key, value))
		}
		args = append(args, "netgrant."+key+"="+value)
	}
	if c.PingGateway {
		add("ping", "1")
	}
	if c.ResolveName != "" {
		add("resolve", c.ResolveName)
	}
	if c.IPv6 {
		add("ipv6", "1")
	}
	if c.Ping6 != "" {
		add("ping6", c.Ping6)
	}
	if c.Resolve6 != "" {
		add("resolve6", c.Resolve6)
	}
	for _, target := range c.Connect {
		if strings.Contains(target, ",") {
			panic(fmt.Sprintf("guest: connect target %q contains a comma", target))
		}
	}
	if len(c.Connect) > 0 {
		add("connect", strings.Join(c.Connect, ","))
	}
	if c.ListenPort != 0 {
		add("listen", strconv.Itoa(c.ListenPort))
	}
	if c.StayUp {
		add("stayup", "1")
	}
	if c.StaticIP != "" {
		add("ip", c.StaticIP)
	}
	if c.Gateway != "" {
		add("gateway", c.Gateway)
	}
	if c.NICs > 1 {
		add("nics", strconv.Itoa(c.NICs))
	}
	if c.Hostname != "" {
		add("hostname", c.Hostname)
	}
	if len(c.Perf) > 0 {
		add("perf", strings.Join(c.Perf, ","))
		add("perfsecs", strconv.Itoa(c.PerfSeconds))
		add("perfrr", strconv.Itoa(c.PerfRoundTrips))
	}
	return strings.Join(args, " ")
}

// QEMUArgs are the qemu-system-x86_64 arguments that boot k's guest with
// checks c, console on stdout; the caller adds the -netdev and -device for
// the NIC (virtio-net-pci).
func (k Kit) QEMUArgs(c Checks) []string {
	return []string{
		"-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none",
		"-serial", "stdio", "-no-reboot",
		"-kernel", k.Kernel, "-initrd", k.Initrd, "-append", k.KernelArgs(c),
	}
}
