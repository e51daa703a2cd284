package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/client"
	"github.com/netgrant/netgrant/internal/names"
)

const usageList = `Usage: netgrant list [--json]

Lists every network (with its IPv6 /64 and port forwards) and tap (with
their DHCP leases), whoever owns them.

Options:
  --json   print one JSON object: {"networks": [...], "taps": [...]}
`

const usageNetworkShow = `Usage: netgrant network show NAME [--json]

Shows a network's settings (IPv6 included), its holders, taps, DHCP
leases and port forwards.

Options:
  --json   print the network as a JSON object
`

type leaseJSON struct {
	MAC      string `json:"mac"`
	IPv4     string `json:"ipv4"`
	Hostname string `json:"hostname"`
}

type networkJSON struct {
	Name    string `json:"name"`
	Bridge  string `json:"bridge"`
	Subnet  string `json:"subnet"`
	Gateway string `json:"gateway"`
	// Subnet6 and Gateway6 are empty without IPv6.
	Subnet6  string `json:"subnet6"`
	Gateway6 string `json:"gateway6"`
	// Domain is where the guests are named; empty without DNS.
	Domain     string      `json:"domain"`
	DHCP       bool        `json:"dhcp"`
	DNS        bool        `json:"dns"`
	Outbound   bool        `json:"outbound"`
	Persistent bool        `json:"persistent"`
	Owner      uint32      `json:"owner"`
	OwnerName  string      `json:"owner_name"`
	Holders    uint32      `json:"holders"`
	Taps       []string    `json:"taps"`
	Leases     []leaseJSON `json:"leases"`
	// PortForwards are in the order they were added.
	PortForwards []forwardJSON `json:"port_forwards"`
}

type tapJSON struct {
	Name      string `json:"name"`
	Owner     uint32 `json:"owner"`
	OwnerName string `json:"owner_name"`
	MAC       string `json:"mac"`
	MTU       uint32 `json:"mtu"`
	Queues    uint32 `json:"queues"`
	VnetHdr   bool   `json:"vnet_hdr"`
	Bridge    string `json:"bridge"`
	Network   string `json:"network"`
	IPv4      string `json:"ipv4"`
	// IPv6 are the guest's addresses but link-local, as its network
	// sees it use them.
	IPv6 []string `json:"ipv6"`
}

type listJSON struct {
	Networks []networkJSON `json:"networks"`
	Taps     []tapJSON     `json:"taps"`
}

func prop[T any](props map[string]dbus.Variant, key string) T {
	v, _ := props[key].Value().(T)
	return v
}

func userName(uid uint32) string {
	if u, err := user.LookupId(strconv.Itoa(int(uid))); err == nil {
		return u.Username
	}
	return strconv.Itoa(int(uid))
}

// tapName is the device name in a tap object path.
func tapName(objects client.Objects, path dbus.ObjectPath) string {
	if name := prop[string](objects[path][names.TapInterface], "Name"); name != "" {
		return name
	}
	return string(path[strings.LastIndexByte(string(path), '/')+1:])
}

func networkFromProps(props map[string]dbus.Variant, objects client.Objects) networkJSON {
	n := networkJSON{
		Name:       prop[string](props, "Name"),
		Bridge:     prop[string](props, "Bridge"),
		Subnet:     prop[string](props, "Subnet"),
		Gateway:    prop[string](props, "Gateway"),
		Subnet6:    prop[string](props, "Subnet6"),
		Gateway6:   prop[string](props, "Gateway6"),
		Domain:     prop[string](props, "Domain"),
		DHCP:       prop[bool](props, "DHCP"),
		DNS:        prop[bool](props, "DNS"),
		Outbound:   prop[bool](props, "Outbound"),
		Persistent: prop[bool](props, "Persistent"),
		Owner:      prop[uint32](props, "Owner"),
		Holders:    prop[uint32](props, "Holders"),
		Taps:       []string{},
		Leases:     []leaseJSON{},
	}
	n.OwnerName = userName(n.Owner)
	for _, path := range prop[[]dbus.ObjectPath](props, "Taps") {
		n.Taps = append(n.Taps, tapName(objects, path))
	}
	var leases []struct{ MAC, IPv4, Hostname string }
	if v, ok := props["Leases"]; ok {
		dbus.Store([]any{v.Value()}, &leases)
	}
	for _, l := range leases {
		n.Leases = append(n.Leases, leaseJSON{l.MAC, l.IPv4, l.Hostname})
	}
	n.PortForwards = []forwardJSON{}
	if v, ok := props["PortForwards"]; ok {
		dbus.Store([]any{v.Value()}, &n.PortForwards)
	}
	return n
}

func collect(objects client.Objects) listJSON {
	out := listJSON{Networks: []networkJSON{}, Taps: []tapJSON{}}
	for path, ifaces := range objects {
		if props, ok := ifaces[names.NetworkInterface]; ok {
			out.Networks = append(out.Networks, networkFromProps(props, objects))
		}
		if props, ok := ifaces[names.TapInterface]; ok {
			t := tapJSON{
				Name:    tapName(objects, path),
				Owner:   prop[uint32](props, "Owner"),
				MAC:     prop[string](props, "MAC"),
				MTU:     prop[uint32](props, "MTU"),
				Queues:  prop[uint32](props, "Queues"),
				VnetHdr: prop[bool](props, "VnetHdr"),
				Bridge:  prop[string](props, "Bridge"),
				IPv4:    prop[string](props, "IPv4"),
				IPv6:    append([]string{}, prop[[]string](props, "IPv6")...),
			}
			t.OwnerName = userName(t.Owner)
			if network := prop[dbus.ObjectPath](props, "Network"); network != "/" {
				t.Network = prop[string](objects[network][names.NetworkInterface], "Name")
			}
			out.Taps = append(out.Taps, t)
		}
	}
	sort.Slice(out.Networks, func(i, j int) bool { return out.Networks[i].Name < out.Networks[j].Name })
	sort.Slice(out.Taps, func(i, j int) bool { return out.Taps[i].Name < out.Taps[j].Name })
	return out
}

func listCommand(args []string, stdout io.Writer) error {
	fs := flagSet("list", usageList, stdout)
	asJSON := fs.Bool("json", false, "")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionalArgs("list", rest); err != nil {
		return err
	}
	s, err := connect(false)
	if err != nil {
		return err
	}
	defer s.close()
	objects, err := s.conn.GetManagedObjects()
	if err != nil {
		return err
	}
	list := collect(objects)
	if *asJSON {
		return writeJSON(stdout, list)
	}
	writeList(stdout, list)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
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

func writeList(w io.Writer, list listJSON) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	if len(list.Networks) == 0 {
		fmt.Fprintln(tw, "No networks.")
	} else {
		fmt.Fprintln(tw, "NETWORK\tOWNER\tSUBNET\tGATEWAY\tSUBNET6\tBRIDGE\tDOMAIN\tHOLDERS\tSETTINGS")
		for _, n := range list.Networks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", n.Name, n.OwnerName, n.Subnet, n.Gateway, orDash(n.Subnet6), n.Bridge, orDash(n.Domain), n.Holders, settings(n))
		}
	}
	fmt.Fprintln(tw)
	if len(list.Taps) == 0 {
		fmt.Fprintln(tw, "No taps.")
	} else {
		fmt.Fprintln(tw, "TAP\tOWNER\tNETWORK\tBRIDGE\tMAC\tIPV4\tIPV6\tQUEUES")
		for _, t := range list.Taps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", t.Name, t.OwnerName, orDash(t.Network), orDash(t.Bridge), orDash(t.MAC), orDash(t.IPv4), orDash(strings.Join(t.IPv6, ",")), t.Queues)
		}
	}
	var forwards [][]string
	for _, n := range list.Networks {
		for _, f := range n.PortForwards {
			forwards = append(forwards, []string{n.Name, f.Protocol, forwardFrom(f), fmt.Sprintf("%s:%d", f.Guest, f.GuestPort)})
		}
	}
	if len(forwards) > 0 {
		fmt.Fprintln(tw)
		fmt.Fprintln(tw, "FORWARD\tPROTO\tHOST\tGUEST")
		for _, f := range forwards {
			fmt.Fprintln(tw, strings.Join(f, "\t"))
		}
	}
	var leases [][]string
	for _, n := range list.Networks {
		for _, l := range n.Leases {
			leases = append(leases, []string{n.Name, l.MAC, l.IPv4, orDash(guestName(n, l))})
		}
	}
	fmt.Fprintln(tw)
	if len(leases) == 0 {
		fmt.Fprintln(tw, "No DHCP leases.")
		return
	}
	fmt.Fprintln(tw, "LEASE\tMAC\tIPV4\tHOSTNAME")
	for _, l := range leases {
		fmt.Fprintln(tw, strings.Join(l, "\t"))
	}
}

// guestName is the name the host reaches a guest by: <hostname>.<domain>.
func guestName(n networkJSON, l leaseJSON) string {
	if l.Hostname == "" || n.Domain == "" {
		return l.Hostname
	}
	return l.Hostname + "." + n.Domain
}

// forwardFrom is where a forward listens: "*:8080" on every address.
func forwardFrom(f forwardJSON) string {
	address := f.Address
	if address == "" {
		address = "*"
	}
	return fmt.Sprintf("%s:%d", address, f.HostPort)
}

// settings are a network's switches in a few words.
func settings(n networkJSON) string {
	var s []string
	if n.DHCP {
		s = append(s, "dhcp")
	}
	if n.DNS {
		s = append(s, "dns")
	}
	if n.Outbound {
		s = append(s, "outbound")
	} else {
		s = append(s, "isolated")
	}
	if n.Persistent {
		s = append(s, "persistent")
	}
	return strings.Join(s, ",")
}

// readNetwork is what "network show NAME [--json]" and commands like it
// read: the network called NAME, and whether to print it as JSON.
func readNetwork(command, usage string, args []string, stdout io.Writer) (networkJSON, bool, error) {
	fs := flagSet(command, usage, stdout)
	asJSON := fs.Bool("json", false, "")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return networkJSON{}, false, err
	}
	if err := positionalArgs(command, rest, "NAME"); err != nil {
		return networkJSON{}, false, err
	}
	s, path, err := connectToNetwork(rest[0], false)
	if err != nil {
		return networkJSON{}, false, err
	}
	defer s.close()
	objects, err := s.conn.GetManagedObjects()
	if err != nil {
		return networkJSON{}, false, err
	}
	props, ok := objects[path][names.NetworkInterface]
	if !ok {
		return networkJSON{}, false, fmt.Errorf("network %s went away", rest[0])
	}
	return networkFromProps(props, objects), *asJSON, nil
}

func networkShowCommand(args []string, stdout io.Writer) error {
	n, asJSON, err := readNetwork("network show", usageNetworkShow, args, stdout)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(stdout, n)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', 0)
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
	return nil
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
