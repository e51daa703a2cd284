package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
)

const usageNetworkCreate = `Usage: netgrant network create NAME [OPTIONS]

Creates the private NAT network NAME: a bridge, ng-NAME, with the gateway
address, DHCP and DNS for guests, masquerading to the outside. It stays
until "netgrant network delete NAME" or the machine reboots (polkit's
org.netgrant.persist: no password at your desktop session). With --hold it
lives only until this command is interrupted (Ctrl-C). Your own network,
user-UID (bridge ng-user-UID), needs no creating: VMs that use it make it.

Options:
  --subnet CIDR      IPv4 subnet inside the configured SubnetPool, /22 to /29
                     (default: a free /24 from the configured pool)
  --subnet6 CIDR     IPv6 /64 inside the configured SubnetPool6 (default:
                     derived from the machine and NAME)
  --no-ipv6          IPv4 only: no IPv6 addresses, router advertisements
                     or NAT66
  --isolated         no outbound traffic: the host and the guests only
  --no-dhcp          no DHCP server on the network
  --no-dns           no DNS forwarder on the gateway
  --mtu N            the bridge's MTU (default 1500)
  --hold             don't make it persistent; hold it until interrupted
  --no-ask-password  ` + noAskPasswordHelp + `
`

const usageNetworkDelete = `Usage: netgrant network delete NAME

Tears the network NAME down now, whoever holds it: its taps are detached
(they keep working, unconnected), DHCP and firewall rules go away.

Options:
  --no-ask-password  ` + noAskPasswordHelp + `
`

const usageTapDelete = `Usage: netgrant tap delete IFNAME

Deletes the tap device IFNAME now, though a VM may still hold its fds.

Options:
  --no-ask-password  ` + noAskPasswordHelp + `
`

func networkCreateCommand(args []string, stdout io.Writer) error {
	const name = "network create"
	fs := flagSet(name, usageNetworkCreate, stdout)
	subnet := fs.String("subnet", "", "")
	isolated := fs.Bool("isolated", false, "")
	noDHCP := fs.Bool("no-dhcp", false, "")
	noDNS := fs.Bool("no-dns", false, "")
	subnet6 := fs.String("subnet6", "", "")
	noIPv6 := fs.Bool("no-ipv6", false, "")
	mtu := fs.Uint("mtu", 0, "")
	holdOnly := fs.Bool("hold", false, "")
	noAsk := fs.Bool("no-ask-password", false, "")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionalArgs(name, rest, "NAME"); err != nil {
		return err
	}
	opts := map[string]dbus.Variant{}
	if *subnet != "" {
		if _, _, err := net.ParseCIDR(*subnet); err != nil {
			return usageError(name, "--subnet %q is no CIDR (like 10.97.5.0/24)", *subnet)
		}
		opts["subnet"] = dbus.MakeVariant(*subnet)
	}
	if *isolated {
		opts["outbound"] = dbus.MakeVariant(false)
	}
	if err := addIPv6Options(name, opts, *subnet6, *noIPv6); err != nil {
		return err
	}
	if *noDHCP {
		opts["dhcp"] = dbus.MakeVariant(false)
	}
	if *noDNS {
		opts["dns"] = dbus.MakeVariant(false)
	}
	if *mtu != 0 {
		opts["mtu"] = dbus.MakeVariant(uint32(*mtu))
	}
	if !*holdOnly {
		opts["persistent"] = dbus.MakeVariant(true)
	}

	s, err := connect(!*noAsk)
	if err != nil {
		return err
	}
	defer s.close()
	path, info, err := s.conn.CreateNATNetwork(rest[0], opts, s.interactive)
	if err != nil {
		return err
	}
	s.stopAgent()
	str := func(key string) string { v, _ := info[key].Value().(string); return v }
	fmt.Fprintf(stdout, "Network %s: bridge %s, subnet %s, gateway %s", str("name"), str("bridge"), str("subnet"), str("gateway"))
	if str("dhcp_start") != "" {
		fmt.Fprintf(stdout, ", DHCP %s-%s", str("dhcp_start"), str("dhcp_end"))
	}
	if str("subnet6") != "" {
		fmt.Fprintf(stdout, "; IPv6 %s, gateway %s", str("subnet6"), str("gateway6"))
	}
	fmt.Fprintln(stdout, ".")
	if !*holdOnly {
		fmt.Fprintf(stdout, "It is persistent: delete it with \"netgrant network delete %s\".\n", rest[0])
		return nil
	}
	fmt.Fprintf(stdout, "Holding it until interrupted (Ctrl-C).\n")
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	<-signals
	if err := s.conn.Release(path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Released network %s.\n", rest[0])
	return nil
}

// deleteCommand parses the arguments of a command that acts on one named
// object, allowing a password prompt unless --no-ask-password, and
// connects.
func deleteCommand(name, usage, argName string, args []string, stdout io.Writer) (string, *session, error) {
	fs := flagSet(name, usage, stdout)
	noAsk := fs.Bool("no-ask-password", false, "")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return "", nil, err
	}
	if err := positionalArgs(name, rest, argName); err != nil {
		return "", nil, err
	}
	s, err := connect(!*noAsk)
	if err != nil {
		return "", nil, err
	}
	return rest[0], s, nil
}

func networkDeleteCommand(args []string, stdout io.Writer) error {
	network, s, err := deleteCommand("network delete", usageNetworkDelete, "NAME", args, stdout)
	if err != nil {
		return err
	}
	defer s.close()
	path, err := s.conn.GetNetwork(network)
	if err != nil {
		return err
	}
	if err := s.conn.DeleteNetwork(path, s.interactive); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Deleted network %s.\n", network)
	return nil
}

func tapDeleteCommand(args []string, stdout io.Writer) error {
	ifname, s, err := deleteCommand("tap delete", usageTapDelete, "IFNAME", args, stdout)
	if err != nil {
		return err
	}
	defer s.close()
	// Deleting an unknown object answers a generic bus error; say it plainly.
	objects, err := s.conn.GetManagedObjects()
	if err != nil {
		return err
	}
	path := names.TapPath(ifname)
	if _, ok := objects[path][names.TapInterface]; !ok {
		return fmt.Errorf("there is no tap called %s (see \"netgrant list\")", ifname)
	}
	if err := s.conn.DeleteTap(path, s.interactive); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Deleted tap %s.\n", ifname)
	return nil
}
