package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/netgrant/netgrant/client"
	"github.com/netgrant/netgrant/internal/names"
)

const usageList = `Usage: netgrant list [OPTIONS]

Lists every network (IPv4 and IPv6), tap, port forward and DHCP lease
netgrantd has, whoever owns them. "network list", "tap list" and
"network forward list" list one kind, one a line.

Options:
` + outputHelp + `
                     (for list, the template sees .Networks and .Taps)
`

const usageNetworkList = `Usage: netgrant network list [OPTIONS]

Lists the networks, one a line: name, owner, subnets, bridge, DNS domain,
holders and settings.

Options:
` + outputHelp + `
`

const usageNetworkShow = `Usage: netgrant network show NAME [OPTIONS]

Shows the network NAME: its settings, taps, DHCP leases and port forwards.

Options:
` + outputHelp + `
`

const usageTapList = `Usage: netgrant tap list [OPTIONS]

Lists the taps, one a line: device, owner, network or bridge, the guest's
MAC, its IPv4 and IPv6 addresses, queues.

Options:
` + outputHelp + `
`

// readObjects connects and reads every network and tap.
func readObjects() (listJSON, error) {
	s, err := connect(false)
	if err != nil {
		return listJSON{}, err
	}
	defer s.close()
	objects, err := s.conn.GetManagedObjects()
	if err != nil {
		return listJSON{}, err
	}
	return collect(objects), nil
}

// readCommand is a command that reads and prints: it takes the output
// options, checked before anything is asked (tmpl is --format's template,
// nil without), and the arguments args names.
func readCommand(use, usage string, args cobra.PositionalArgs, print func(cmd *cobra.Command, args []string, o *outputFlags, tmpl *template.Template) error) *cobra.Command {
	var o *outputFlags
	cmd := &cobra.Command{
		Use:  use,
		Long: usage,
		Args: args,
		RunE: func(cmd *cobra.Command, args []string) error {
			tmpl, err := o.check(cmd)
			if err != nil {
				return err
			}
			return print(cmd, args, o, tmpl)
		},
	}
	o = addOutputFlags(cmd)
	return cmd
}

// eachCommand lists every object of one kind, one a line: items picks
// them from what netgrantd has, table writes them as a table.
func eachCommand(usage string, items func(listJSON) []any, table func(io.Writer, listJSON, *outputFlags)) *cobra.Command {
	return readCommand("list", usage, noArgs, func(cmd *cobra.Command, _ []string, o *outputFlags, tmpl *template.Template) error {
		list, err := readObjects()
		if err != nil {
			return err
		}
		return o.writeEach(cmd.OutOrStdout(), tmpl, items(list), func(tw *tabwriter.Writer) { table(tw, list, o) })
	})
}

func listCommand() *cobra.Command {
	return readCommand("list", usageList, noArgs, func(cmd *cobra.Command, _ []string, o *outputFlags, tmpl *template.Template) error {
		list, err := readObjects()
		if err != nil {
			return err
		}
		return o.writeOne(cmd.OutOrStdout(), tmpl, list, func(w io.Writer) error {
			writeList(w, list, o)
			return nil
		})
	})
}

func networkListCommand() *cobra.Command {
	return eachCommand(usageNetworkList, func(l listJSON) []any { return anys(l.Networks) },
		func(w io.Writer, l listJSON, o *outputFlags) { writeNetworks(w, l.Networks, o) })
}

func tapListCommand() *cobra.Command {
	return eachCommand(usageTapList, func(l listJSON) []any { return anys(l.Taps) },
		func(w io.Writer, l listJSON, o *outputFlags) { writeTaps(w, l.Taps, o) })
}

func networkShowCommand() *cobra.Command {
	cmd := readCommand("show NAME", usageNetworkShow, exactArgs("NAME"), func(cmd *cobra.Command, args []string, o *outputFlags, tmpl *template.Template) error {
		n, err := readNetwork(args[0])
		if err != nil {
			return err
		}
		return o.writeOne(cmd.OutOrStdout(), tmpl, n, func(w io.Writer) error {
			writeNetwork(w, n)
			return nil
		})
	})
	cmd.ValidArgsFunction = completeNetworkArg
	return cmd
}

// readNetwork reads the network called name.
func readNetwork(name string) (networkJSON, error) {
	s, err := connect(false)
	if err != nil {
		return networkJSON{}, err
	}
	defer s.close()
	path, err := s.conn.GetNetwork(name)
	if err != nil {
		return networkJSON{}, err
	}
	objects, err := s.conn.GetManagedObjects()
	if err != nil {
		return networkJSON{}, err
	}
	props, ok := objects[path][names.NetworkInterface]
	if !ok {
		return networkJSON{}, notFoundf("network %s went away", name)
	}
	return networkFromProps(props, objects), nil
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// writeList is netgrant list: a table of each kind, those without rows
// only when there is something to show.
func writeList(w io.Writer, list listJSON, o *outputFlags) {
	tw := newTable(w)
	defer tw.Flush()
	if len(list.Networks) == 0 {
		o.none(tw, "No networks.")
	} else {
		writeNetworks(tw, list.Networks, o)
	}
	fmt.Fprintln(tw)
	if len(list.Taps) == 0 {
		o.none(tw, "No taps.")
	} else {
		writeTaps(tw, list.Taps, o)
	}
	var forwards []networkForward
	for _, n := range list.Networks {
		for _, f := range n.PortForwards {
			forwards = append(forwards, networkForward{n.Name, f})
		}
	}
	if len(forwards) > 0 {
		fmt.Fprintln(tw)
		writeForwards(tw, forwards, o)
	}
	var leases [][]string
	for _, n := range list.Networks {
		for _, l := range n.Leases {
			leases = append(leases, []string{n.Name, l.MAC, l.IPv4, orDash(guestName(n, l))})
		}
	}
	fmt.Fprintln(tw)
	if len(leases) == 0 {
		o.none(tw, "No DHCP leases.")
		return
	}
	o.heading(tw, "LEASE", "MAC", "IPV4", "HOSTNAME")
	for _, l := range leases {
		fmt.Fprintln(tw, strings.Join(l, "\t"))
	}
}

func writeNetworks(tw io.Writer, networks []networkJSON, o *outputFlags) {
	o.heading(tw, "NETWORK", "OWNER", "SUBNET", "GATEWAY", "SUBNET6", "BRIDGE", "DOMAIN", "HOLDERS", "SETTINGS")
	for _, n := range networks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Name, n.OwnerName, n.Subnet, n.Gateway, orDash(n.Subnet6), n.Bridge, orDash(n.Domain), n.Holders, settings(n))
	}
}

func writeTaps(tw io.Writer, taps []tapJSON, o *outputFlags) {
	o.heading(tw, "TAP", "OWNER", "NETWORK", "BRIDGE", "MAC", "IPV4", "IPV6", "QUEUES")
	for _, t := range taps {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.Name, t.OwnerName, orDash(t.Network), orDash(t.Bridge), orDash(t.MAC), orDash(t.IPv4), orDash(strings.Join(t.IPv6, ",")), t.Queues)
	}
}

// writeNetwork is network show: a line per setting.
func writeNetwork(w io.Writer, n networkJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', 0)
	defer tw.Flush()
	for _, row := range [][2]string{
		{"Name:", n.Name},
		{"Owner:", fmt.Sprintf("%s (%d)", n.OwnerName, n.Owner)},
		{"Bridge:", n.Bridge},
		{"Subnet:", n.Subnet},
		{"Gateway:", n.Gateway},
		{"Subnet6:", orDash(n.Subnet6)},
		{"Gateway6:", orDash(n.Gateway6)},
		{"Domain:", orDash(n.Domain)},
		{"DHCP:", yesNo(n.DHCP)},
		{"DNS:", yesNo(n.DNS)},
		{"Outbound:", yesNo(n.Outbound)},
		{"Persistent:", yesNo(n.Persistent)},
		{"Holders:", strconv.Itoa(int(n.Holders))},
		{"Taps:", orDash(strings.Join(n.Taps, " "))},
	} {
		fmt.Fprintf(tw, "%s\t%s\n", row[0], row[1])
	}
	var leases, forwards []string
	for _, l := range n.Leases {
		leases = append(leases, fmt.Sprintf("%s %s %s", l.IPv4, l.MAC, guestName(n, l)))
	}
	for _, f := range n.PortForwards {
		forwards = append(forwards, fmt.Sprintf("%s %s -> %s:%d", f.Protocol, forwardFrom(f), f.Guest, f.GuestPort))
	}
	writeLabelled(tw, "Leases:", leases)
	writeLabelled(tw, "Forwards:", forwards)
}

// writeLabelled writes one row per line, the first labelled; "-" for none.
func writeLabelled(w io.Writer, label string, lines []string) {
	if len(lines) == 0 {
		lines = []string{"-"}
	}
	for _, line := range lines {
		fmt.Fprintf(w, "%s\t%s\n", label, line)
		label = ""
	}
}

// objectsOrNothing reads what completion offers: nothing when netgrantd
// is not running, which completing must never start.
func objectsOrNothing() listJSON {
	conn, err := client.Connect()
	if err != nil {
		return listJSON{}
	}
	defer conn.Close()
	objects, err := conn.RunningObjects()
	if err != nil {
		return listJSON{}
	}
	return collect(objects)
}
