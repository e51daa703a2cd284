package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"text/tabwriter"
	"text/template"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"
)

const usageForwardAdd = `Usage: netgrant network forward add NAME PROTO HOST_PORT GUEST GUEST_PORT [OPTIONS]

Forwards PROTO (tcp or udp) port HOST_PORT of this host to port GUEST_PORT
of the guest with IPv4 address GUEST on network NAME: other machines, and
this host through its own non-loopback addresses, reach the guest's
service there, and the guest sees their real address. The forward lives
as long as the network. Ports below 1024 need an administrator by default.

Options:
  --address ADDR     forward only this address of the host (default: all)
  --no-ask-password  ` + noAskPasswordHelp + `

Example:
  netgrant network forward add demo tcp 2222 10.97.0.10 22
`

const usageForwardRemove = `Usage: netgrant network forward remove NAME PROTO HOST_PORT

Removes network NAME's forward of PROTO (tcp or udp) port HOST_PORT.

Options:
  --no-ask-password  ` + noAskPasswordHelp + `
`

const usageForwardList = `Usage: netgrant network forward list [NAME] [OPTIONS]

Lists network NAME's port forwards, or every network's.

Options:
` + outputHelp + `
`

type forwardJSON struct {
	Protocol  string `json:"protocol"`
	HostPort  uint16 `json:"host_port"`
	Guest     string `json:"guest"`
	GuestPort uint16 `json:"guest_port"`
	Address   string `json:"address"`
}

// networkForward is a forward with its network, as forward list without
// NAME shows it.
type networkForward struct {
	Network string `json:"network"`
	forwardJSON
}

// forwardKey parses PROTO and HOST_PORT, the second and third arguments,
// which name a forward.
func forwardKey(cmd *cobra.Command, args []string) (string, uint16, error) {
	if args[1] != "tcp" && args[1] != "udp" {
		return "", 0, usageError(cmd, "PROTO %q is neither tcp nor udp", args[1])
	}
	port, err := parsePort(cmd, "HOST_PORT", args[2])
	return args[1], port, err
}

func parsePort(cmd *cobra.Command, what, s string) (uint16, error) {
	port, err := strconv.ParseUint(s, 10, 16)
	if err != nil || port == 0 {
		return 0, usageError(cmd, "%s %q is not a port (1-65535)", what, s)
	}
	return uint16(port), nil
}

// connectToNetwork connects and finds the network called name.
func connectToNetwork(name string, askPassword bool) (*session, dbus.ObjectPath, error) {
	s, err := connect(askPassword)
	if err != nil {
		return nil, "", err
	}
	path, err := s.conn.GetNetwork(name)
	if err != nil {
		s.close()
		return nil, "", err
	}
	return s, path, nil
}

func forwardAddCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "add NAME PROTO HOST_PORT GUEST GUEST_PORT",
		Long:              usageForwardAdd,
		Args:              exactArgs("NAME", "PROTO", "HOST_PORT", "GUEST", "GUEST_PORT"),
		ValidArgsFunction: completeForwardArgs,
	}
	address := cmd.Flags().String("address", "", "forward only this address of the host")
	askPassword := addNoAskPassword(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		proto, hostPort, err := forwardKey(cmd, args)
		if err != nil {
			return err
		}
		if ip, err := netip.ParseAddr(args[3]); err != nil || !ip.Is4() {
			return usageError(cmd, "GUEST %q is not an IPv4 address", args[3])
		}
		guestPort, err := parsePort(cmd, "GUEST_PORT", args[4])
		if err != nil {
			return err
		}
		s, path, err := connectToNetwork(args[0], askPassword())
		if err != nil {
			return err
		}
		defer s.close()
		if err := s.conn.AddPortForward(path, proto, hostPort, args[3], guestPort, *address, s.interactive); err != nil {
			return err
		}
		on := "every address of this host"
		if *address != "" {
			on = *address
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Forwarding %s port %d (%s) to %s port %d on network %s.\n", proto, hostPort, on, args[3], guestPort, args[0])
		return nil
	}
	return cmd
}

func forwardRemoveCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:               "remove NAME PROTO HOST_PORT",
		Long:              usageForwardRemove,
		Args:              exactArgs("NAME", "PROTO", "HOST_PORT"),
		ValidArgsFunction: completeForwardArgs,
	}
	askPassword := addNoAskPassword(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		proto, hostPort, err := forwardKey(cmd, args)
		if err != nil {
			return err
		}
		s, path, err := connectToNetwork(args[0], askPassword())
		if err != nil {
			return err
		}
		defer s.close()
		if err := s.conn.RemovePortForward(path, proto, hostPort, s.interactive); err != nil {
			return err
		}
		fmt.Fprintf(cmd.OutOrStdout(), "Removed the forward of %s port %d from network %s.\n", proto, hostPort, args[0])
		return nil
	}
	return cmd
}

func forwardListCommand() *cobra.Command {
	cmd := readCommand("list [NAME]", usageForwardList, optionalArgs("NAME"), func(cmd *cobra.Command, args []string, o *outputFlags, tmpl *template.Template) error {
		if len(args) == 0 {
			list, err := readObjects()
			if err != nil {
				return err
			}
			var forwards []networkForward
			for _, n := range list.Networks {
				for _, f := range n.PortForwards {
					forwards = append(forwards, networkForward{n.Name, f})
				}
			}
			return o.writeEach(cmd.OutOrStdout(), tmpl, anys(forwards), func(tw *tabwriter.Writer) {
				writeForwards(tw, forwards, o)
			})
		}
		n, err := readNetwork(args[0])
		if err != nil {
			return err
		}
		if len(n.PortForwards) == 0 && !o.json && tmpl == nil {
			o.none(cmd.OutOrStdout(), fmt.Sprintf("Network %s forwards no ports.", n.Name))
			return nil
		}
		return o.writeEach(cmd.OutOrStdout(), tmpl, anys(n.PortForwards), func(tw *tabwriter.Writer) {
			o.heading(tw, "PROTO", "HOST PORT", "ADDRESS", "GUEST", "GUEST PORT")
			for _, f := range n.PortForwards {
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", f.Protocol, f.HostPort, orDash(f.Address), f.Guest, f.GuestPort)
			}
		})
	})
	cmd.ValidArgsFunction = completeNetworkArg
	return cmd
}

// writeForwards is the table of forwards of every network.
func writeForwards(tw io.Writer, forwards []networkForward, o *outputFlags) {
	o.heading(tw, "FORWARD", "PROTO", "HOST", "GUEST")
	for _, f := range forwards {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Network, f.Protocol, forwardFrom(f.forwardJSON), fmt.Sprintf("%s:%d", f.Guest, f.GuestPort))
	}
}
