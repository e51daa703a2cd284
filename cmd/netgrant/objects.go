package main

import (
	"fmt"
	"os/user"
	"sort"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/client"
	"github.com/netgrant/netgrant/internal/names"
)

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
