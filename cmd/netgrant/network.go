package main

import (
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"

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

// networkOptions are the options that make a network, as network create
// and run take them.
type networkOptions struct {
	subnet, subnet6  string
	isolated, noIPv6 bool
}

func (n *networkOptions) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&n.subnet, "subnet", "", "IPv4 subnet")
	cmd.Flags().StringVar(&n.subnet6, "subnet6", "", "IPv6 /64")
	cmd.Flags().BoolVar(&n.isolated, "isolated", false, "no outbound traffic")
	cmd.Flags().BoolVar(&n.noIPv6, "no-ipv6", false, "IPv4 only")
}

// given tells whether any was given.
func (n *networkOptions) given() bool {
	return n.subnet != "" || n.subnet6 != "" || n.isolated || n.noIPv6
}

// options are the CreateNATNetwork options they make.
func (n *networkOptions) options(cmd *cobra.Command) (map[string]dbus.Variant, error) {
	opts := map[string]dbus.Variant{}
	if n.subnet != "" {
		if _, _, err := net.ParseCIDR(n.subnet); err != nil {
			return nil, usageError(cmd, "--subnet %q is no CIDR (like 10.97.5.0/24)", n.subnet)
		}
		opts["subnet"] = dbus.MakeVariant(n.subnet)
	}
	if n.isolated {
		opts["outbound"] = dbus.MakeVariant(false)
	}
	switch {
	case n.subnet6 != "" && n.noIPv6:
		return nil, usageError(cmd, "--subnet6 and --no-ipv6 exclude each other")
	case n.subnet6 != "":
		if ip, _, err := net.ParseCIDR(n.subnet6); err != nil || ip.To4() != nil {
			return nil, usageError(cmd, "--subnet6 %q is no IPv6 CIDR (like fd12:3456:789a:1::/64)", n.subnet6)
		}
		opts["subnet6"] = dbus.MakeVariant(n.subnet6)
	case n.noIPv6:
		opts["ipv6"] = dbus.MakeVariant(false)
	}
	return opts, nil
}

func networkCreateCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "create NAME", Long: usageNetworkCreate, Args: exactArgs("NAME")}
	var network networkOptions
	network.add(cmd)
	noDHCP := cmd.Flags().Bool("no-dhcp", false, "no DHCP server")
	noDNS := cmd.Flags().Bool("no-dns", false, "no DNS forwarder")
	mtu := cmd.Flags().Uint("mtu", 0, "the bridge's MTU")
	holdOnly := cmd.Flags().Bool("hold", false, "hold it until interrupted")
	askPassword := addNoAskPassword(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		opts, err := network.options(cmd)
		if err != nil {
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
		s, err := connect(askPassword())
		if err != nil {
			return err
		}
		defer s.close()
		path, info, err := s.conn.CreateNATNetwork(args[0], opts, s.interactive)
		if err != nil {
			return err
		}
		s.stopAgent()
		stdout := cmd.OutOrStdout()
		str := func(key string) string { v, _ := info[key].Value().(string); return v }
		fmt.Fprintf(stdout, "Network %s: bridge %s, subnet %s, gateway %s", str("name"), str("bridge"), str("subnet"), str("gateway"))
		if str("dhcp_start") != "" {
			fmt.Fprintf(stdout, ", DHCP %s-%s", str("dhcp_start"), str("dhcp_end"))
		}
		if str("subnet6") != "" {
			fmt.Fprintf(stdout, "; IPv6 %s, gateway %s", str("subnet6"), str("gateway6"))
		}
		if str("domain") != "" {
			fmt.Fprintf(stdout, "; guests are HOSTNAME.%s", str("domain"))
		}
		fmt.Fprintln(stdout, ".")
		if !*holdOnly {
			fmt.Fprintf(stdout, "It is persistent: delete it with \"netgrant network delete %s\".\n", args[0])
			return nil
		}
		fmt.Fprintf(stdout, "Holding it until interrupted (Ctrl-C).\n")
		signals := make(chan os.Signal, 1)
		signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		<-signals
		if err := s.conn.Release(path); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Released network %s.\n", args[0])
		return nil
	}
	return cmd
}

func networkDeleteCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "delete NAME", Long: usageNetworkDelete, Args: exactArgs("NAME"), ValidArgsFunction: completeNetworkArg}
	askPassword := addNoAskPassword(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, path, err := connectToNetwork(args[0], askPassword())
		if err != nil {
			return err
		}
		defer s.close()
		if err := s.conn.DeleteNetwork(path, s.interactive); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted network %s.\n", args[0])
		return nil
	}
	return cmd
}

func tapDeleteCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "delete IFNAME", Long: usageTapDelete, Args: exactArgs("IFNAME"), ValidArgsFunction: completeTapArg}
	askPassword := addNoAskPassword(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		s, err := connect(askPassword())
		if err != nil {
			return err
		}
		defer s.close()
		// Deleting an unknown object answers a generic bus error; say it plainly.
		objects, err := s.conn.GetManagedObjects()
		if err != nil {
			return err
		}
		path := names.TapPath(args[0])
		if _, ok := objects[path][names.TapInterface]; !ok {
			return notFoundf("there is no tap called %s (see \"netgrant tap list\")", args[0])
		}
		if err := s.conn.DeleteTap(path, s.interactive); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Deleted tap %s.\n", args[0])
		return nil
	}
	return cmd
}
