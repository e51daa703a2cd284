// Command netgrant-bridge-helper is a drop-in for qemu-bridge-helper that
// needs no setuid bit: it asks netgrantd (polkit decides) for a tap on the
// bridge and hands its fd to QEMU or libvirt over the socket they pass.
//
// The protocol is qemu-bridge-helper's: arguments --br=BRIDGE, --fd=N (a
// unix socket) and optionally --use-vnet (IFF_VNET_HDR); the tap fd is sent
// over fd N with SCM_RIGHTS and a 1-byte payload, and the exit status says
// whether it worked.
package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/client"
	"github.com/netgrant/netgrant/internal/names"
)

var version = "devel"

// usageText names HELPER where the helper's own path goes: it lives in
// the libexec directory the build chose, which differs between
// distributions.
const usageText = `Usage: netgrant-bridge-helper [--use-vnet] --br=BRIDGE --fd=UNIXFD

QEMU's bridge helper protocol, without setuid: asks netgrantd for a tap
device on BRIDGE (a netgrant network's bridge, or a host bridge the
administrator allows; polkit decides who may) and sends its fd over the
unix socket UNIXFD. --use-vnet gives the tap a virtio-net header.

A netgrant network's bridge is ng-NAME (netgrant network show NAME). Your
own network's, ng-user-UID, needs no setting up: it is created on the
first tap. The tap keeps its network alive for as long as the VM runs.

With QEMU:
  qemu-system-x86_64 ... -netdev bridge,id=n0,br=BRIDGE,helper=HELPER \
      -device virtio-net-pci,netdev=n0
On a netgrant network the guest may send only from its NIC's MAC: the
helper reads it from QEMU's command line where that names exactly one, and
otherwise (several NICs, or libvirt, which runs the helper itself) the
network learns it from the guest's first frame.
With libvirt (qemu:///session), in ~/.config/libvirt/qemu.conf:
  bridge_helper = "HELPER"
and <interface type='bridge'><source bridge='BRIDGE'/></interface>.
`

// usage is usageText with this program's own path.
func usage() string {
	self, err := os.Executable()
	if err != nil {
		self = "/usr/libexec/netgrant-bridge-helper"
	}
	return strings.ReplaceAll(usageText, "HELPER", self)
}

type options struct {
	bridge  string
	fd      int
	useVnet bool
}

// parseArgs reads qemu-bridge-helper's arguments, in any order.
func parseArgs(args []string) (options, error) {
	opts := options{fd: -1}
	for _, arg := range args {
		switch {
		case arg == "--use-vnet":
			opts.useVnet = true
		case strings.HasPrefix(arg, "--br="):
			opts.bridge = strings.TrimPrefix(arg, "--br=")
		case strings.HasPrefix(arg, "--fd="):
			fd, err := strconv.Atoi(strings.TrimPrefix(arg, "--fd="))
			if err != nil || fd < 0 {
				return options{}, fmt.Errorf("bad %s: not a file descriptor", arg)
			}
			opts.fd = fd
		default:
			return options{}, fmt.Errorf("unknown argument %q", arg)
		}
	}
	if opts.bridge == "" || opts.fd < 0 {
		return options{}, fmt.Errorf("--br=BRIDGE and --fd=UNIXFD are required")
	}
	return opts, nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 1 && (args[0] == "--help" || args[0] == "-h") {
		fmt.Fprint(stdout, usage())
		return 0
	}
	if len(args) == 1 && args[0] == "--version" {
		fmt.Fprintln(stdout, "netgrant-bridge-helper", version)
		return 0
	}
	opts, err := parseArgs(args)
	if err != nil {
		fmt.Fprintf(stderr, "netgrant-bridge-helper: %v\n\n%s", err, usage())
		return 1
	}
	if err := sendTap(opts); err != nil {
		fmt.Fprintf(stderr, "netgrant-bridge-helper: cannot get a tap on bridge %s: %s\n", opts.bridge, client.Explain(err))
		return 1
	}
	return 0
}

func sendTap(opts options) error {
	conn, err := client.Connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	stopAgent := conn.StartTTYAgent()
	defer stopAgent()
	tapOpts, err := tapOptions(conn, opts)
	if err != nil {
		return err
	}
	_, fds, _, err := conn.CreateTap(tapOpts, true)
	if err != nil {
		return err
	}
	// The tap lives as long as its fd: ours closes when we exit, QEMU's
	// copy keeps it.
	defer func() {
		for _, f := range fds {
			f.Close()
		}
	}()
	if len(fds) != 1 {
		return fmt.Errorf("netgrantd returned %d fds for a single-queue tap", len(fds))
	}
	rights := unix.UnixRights(int(fds[0].Fd()))
	if err := unix.Sendmsg(opts.fd, []byte{0}, rights, nil, 0); err != nil {
		return fmt.Errorf("sending the tap's fd over fd %d: %w", opts.fd, err)
	}
	return nil
}

// tapOptions asks for a tap on opts.bridge. On a netgrant network, which
// the bridge's name tells for the caller's own user-<uid> (created if
// missing) and the networks' objects for the others, the tap holds the
// network, since the helper exits once QEMU has the fd, and the guest's MAC
// is QEMU's NIC's if its command line names exactly one, else learnt.
func tapOptions(conn *client.Conn, opts options) (map[string]dbus.Variant, error) {
	tapOpts := map[string]dbus.Variant{"vnet_hdr": dbus.MakeVariant(opts.useVnet)}
	mac := parentGuestMAC()
	network := ""
	if own := "user-" + strconv.Itoa(os.Getuid()); opts.bridge == names.BridgeName(own) {
		network = own
	} else {
		objects, err := conn.GetManagedObjects()
		if err != nil {
			return nil, err
		}
		for _, ifaces := range objects {
			if props, ok := ifaces[names.NetworkInterface]; ok && props["Bridge"].Value() == opts.bridge {
				network, _ = props["Name"].Value().(string)
			}
		}
	}
	switch {
	case network == "":
		tapOpts["bridge"] = dbus.MakeVariant(opts.bridge)
		if mac != "" {
			tapOpts["mac"] = dbus.MakeVariant(mac)
		}
	case mac != "":
		tapOpts["network"], tapOpts["hold"], tapOpts["mac"] = dbus.MakeVariant(network), dbus.MakeVariant(true), dbus.MakeVariant(mac)
	default:
		tapOpts["network"], tapOpts["hold"], tapOpts["learn_mac"] = dbus.MakeVariant(network), dbus.MakeVariant(true), dbus.MakeVariant(true)
	}
	return tapOpts, nil
}
