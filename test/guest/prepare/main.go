// Command prepare builds the test guest's kernel and initramfs (see package
// guest) and prints shell assignments for booting it by hand:
//
//	eval "$(go run ./test/guest/prepare -ping -resolve example.org)"
//	qemu-system-x86_64 -accel tcg -m 256 -nographic -no-reboot \
//	    -kernel "$NETGRANT_GUEST_KERNEL" -initrd "$NETGRANT_GUEST_INITRD" \
//	    -append "$NETGRANT_GUEST_APPEND" -netdev … -device virtio-net-pci,netdev=…
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/netgrant/netgrant/test/guest"
)

func main() {
	out := flag.String("out", "", "cache directory for the kit (default $NETGRANT_GUEST_CACHE, else ~/.cache/netgrant-test)")
	var c guest.Checks
	flag.BoolVar(&c.PingGateway, "ping", false, "ping the gateway")
	flag.StringVar(&c.ResolveName, "resolve", "", "look this name up at the DNS server")
	connect := flag.String("connect", "", "comma-separated host:port list to connect to")
	flag.IntVar(&c.ListenPort, "listen", 0, "serve the banner on this TCP port")
	flag.BoolVar(&c.StayUp, "stay-up", false, "keep running after the checks until stopped")
	flag.StringVar(&c.StaticIP, "static-ip", "", "address/prefix to use instead of DHCP")
	flag.StringVar(&c.Gateway, "gateway", "", "gateway (with -static-ip)")
	flag.Parse()
	if *connect != "" {
		c.Connect = strings.Split(*connect, ",")
	}

	kit, err := guest.PrepareDir(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "prepare:", err)
		os.Exit(1)
	}
	fmt.Printf("NETGRANT_GUEST_KERNEL=%s\n", shellQuote(kit.Kernel))
	fmt.Printf("NETGRANT_GUEST_INITRD=%s\n", shellQuote(kit.Initrd))
	fmt.Printf("NETGRANT_GUEST_APPEND=%s\n", shellQuote(kit.KernelArgs(c)))
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
