package main

import (
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"text/tabwriter"

	"github.com/godbus/dbus/v5"
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

const usageForwardList = `Usage: netgrant network forward list NAME [--json]

Lists network NAME's port forwards.

Options:
  --json   print them as a JSON array
`

type forwardJSON struct {
	Protocol  string `json:"protocol"`
	HostPort  uint16 `json:"host_port"`
	Guest     string `json:"guest"`
	GuestPort uint16 `json:"guest_port"`
	Address   string `json:"address"`
}

// forwardKey parses PROTO and HOST_PORT, the second and third arguments,
// which name a forward.
func forwardKey(command string, rest []string) (string, uint16, error) {
	if rest[1] != "tcp" && rest[1] != "udp" {
		return "", 0, usageError(command, "PROTO %q is neither tcp nor udp", rest[1])
	}
	port, err := parsePort(command, "HOST_PORT", rest[2])
	return rest[1], port, err
}

func parsePort(command, what, s string) (uint16, error) {
	port, err := strconv.ParseUint(s, 10, 16)
	if err != nil || port == 0 {
		return 0, usageError(command, "%s %q is not a port (1-65535)", what, s)
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

func forwardAddCommand(args []string, stdout io.Writer) error {
	const name = "network forward add"
	fs := flagSet(name, usageForwardAdd, stdout)
	address := fs.String("address", "", "")
	noAsk := fs.Bool("no-ask-password", false, "")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionalArgs(name, rest, "NAME", "PROTO", "HOST_PORT", "GUEST", "GUEST_PORT"); err != nil {
		return err
	}
	proto, hostPort, err := forwardKey(name, rest)
	if err != nil {
		return err
	}
	if ip, err := netip.ParseAddr(rest[3]); err != nil || !ip.Is4() {
		return usageError(name, "GUEST %q is not an IPv4 address", rest[3])
	}
	guestPort, err := parsePort(name, "GUEST_PORT", rest[4])
	if err != nil {
		return err
	}
	s, path, err := connectToNetwork(rest[0], !*noAsk)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.conn.AddPortForward(path, proto, hostPort, rest[3], guestPort, *address, s.interactive); err != nil {
		return err
	}
	on := "every address of this host"
	if *address != "" {
		on = *address
	}
	fmt.Fprintf(stdout, "Forwarding %s port %d (%s) to %s port %d on network %s.\n", proto, hostPort, on, rest[3], guestPort, rest[0])
	return nil
}

func forwardRemoveCommand(args []string, stdout io.Writer) error {
	const name = "network forward remove"
	fs := flagSet(name, usageForwardRemove, stdout)
	noAsk := fs.Bool("no-ask-password", false, "")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionalArgs(name, rest, "NAME", "PROTO", "HOST_PORT"); err != nil {
		return err
	}
	proto, hostPort, err := forwardKey(name, rest)
	if err != nil {
		return err
	}
	s, path, err := connectToNetwork(rest[0], !*noAsk)
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.conn.RemovePortForward(path, proto, hostPort, s.interactive); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Removed the forward of %s port %d from network %s.\n", proto, hostPort, rest[0])
	return nil
}

func forwardListCommand(args []string, stdout io.Writer) error {
	n, asJSON, err := readNetwork("network forward list", usageForwardList, args, stdout)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, n.PortForwards)
	}
	if len(n.PortForwards) == 0 {
		fmt.Fprintf(stdout, "Network %s forwards no ports.\n", n.Name)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	fmt.Fprintln(tw, "PROTO\tHOST PORT\tADDRESS\tGUEST\tGUEST PORT")
	for _, f := range n.PortForwards {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\n", f.Protocol, f.HostPort, orDash(f.Address), f.Guest, f.GuestPort)
	}
	return nil
}
