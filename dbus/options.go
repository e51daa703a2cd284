package dbus

import (
	"net/netip"
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/service"
)

// optionTypes maps each option a method accepts to its D-Bus type.
type optionTypes map[string]string

// check refuses unknown keys and wrongly typed values, naming the key.
func (spec optionTypes) check(method string, opts map[string]godbus.Variant) error {
	for key, v := range opts {
		want, known := spec[key]
		if !known {
			if len(spec) == 0 {
				return service.Errorf(service.InvalidArgument, "unknown option %q: %s takes no options in version 1", key, method)
			}
			return service.Errorf(service.InvalidArgument, "unknown option %q: %s takes %s", key, method, spec.names())
		}
		if got := v.Signature().String(); got != want {
			return service.Errorf(service.InvalidArgument, "option %q must be of type %q, not %q", key, want, got)
		}
	}
	return nil
}

func (spec optionTypes) names() string {
	keys := make([]string, 0, len(spec))
	for k := range spec {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

var (
	tapOptions = optionTypes{
		"network": "s", "bridge": "s", "queues": "u", "vnet_hdr": "b", "mac": "s", "mtu": "u", "ipv4": "s",
		"learn_mac": "b", "hold": "b",
	}
	networkOptions = optionTypes{
		"subnet": "s", "dhcp": "b", "dns": "b", "outbound": "b", "mtu": "u", "persistent": "b",
		"ipv6": "b", "subnet6": "s",
	}
	attachOptions  = optionTypes{}
	forwardOptions = optionTypes{"address": "s"}
)

// decodeForwardRequest decodes AddPortForward's (protocol, host_port,
// guest, guest_port, options).
func decodeForwardRequest(network string, args []any) (service.ForwardRequest, error) {
	opts := args[4].(map[string]godbus.Variant)
	if err := forwardOptions.check("AddPortForward", opts); err != nil {
		return service.ForwardRequest{}, err
	}
	req := service.ForwardRequest{
		Network: network, Protocol: args[0].(string), HostPort: args[1].(uint16),
		Guest: args[2].(string), GuestPort: args[3].(uint16),
	}
	if v, ok := opts["address"]; ok {
		req.Address = v.Value().(string)
	}
	return req, nil
}

func decodeTapRequest(opts map[string]godbus.Variant) (service.TapRequest, error) {
	if err := tapOptions.check("CreateTap", opts); err != nil {
		return service.TapRequest{}, err
	}
	req := service.TapRequest{Queues: 1, VnetHdr: true}
	for key, v := range opts {
		switch key {
		case "network":
			req.Network = v.Value().(string)
		case "bridge":
			req.Bridge = v.Value().(string)
		case "queues":
			req.Queues = v.Value().(uint32)
		case "vnet_hdr":
			req.VnetHdr = v.Value().(bool)
		case "mac":
			req.MAC = v.Value().(string)
		case "learn_mac":
			req.LearnMAC = v.Value().(bool)
		case "hold":
			req.Hold = v.Value().(bool)
		case "ipv4":
			ip, err := netip.ParseAddr(v.Value().(string))
			if err != nil || !ip.Is4() {
				return req, service.Errorf(service.InvalidArgument, "option ipv4: %q is not an IPv4 address", v.Value())
			}
			req.IPv4 = ip
		case "mtu":
			req.MTU = v.Value().(uint32)
			if req.MTU == 0 {
				return req, service.Errorf(service.InvalidArgument, "option mtu: 0 is out of range 68..65535")
			}
		}
	}
	return req, nil
}

func decodeNetworkRequest(name string, opts map[string]godbus.Variant) (service.NetworkRequest, error) {
	if err := networkOptions.check("CreateNATNetwork", opts); err != nil {
		return service.NetworkRequest{}, err
	}
	req := service.NetworkRequest{Name: name}
	for key, v := range opts {
		switch value := v.Value().(type) {
		case string:
			if key == "subnet6" {
				req.Subnet6 = &value
			} else {
				req.Subnet = &value
			}
		case uint32:
			req.MTU = &value
		case bool:
			switch key {
			case "dhcp":
				req.DHCP = &value
			case "dns":
				req.DNS = &value
			case "outbound":
				req.Outbound = &value
			case "persistent":
				req.Persistent = &value
			case "ipv6":
				req.IPv6 = &value
			}
		}
	}
	return req, nil
}

func tapInfoMap(info service.TapInfo) map[string]godbus.Variant {
	return map[string]godbus.Variant{
		"ifname":   godbus.MakeVariant(info.Name),
		"mac":      godbus.MakeVariant(info.MAC),
		"mtu":      godbus.MakeVariant(info.MTU),
		"queues":   godbus.MakeVariant(info.Queues),
		"vnet_hdr": godbus.MakeVariant(info.VnetHdr),
		"bridge":   godbus.MakeVariant(info.Bridge),
		"network":  godbus.MakeVariant(info.Network),
		"ipv4":     godbus.MakeVariant(info.IPv4),
	}
}

func networkInfoMap(info service.NetworkInfo) map[string]godbus.Variant {
	return map[string]godbus.Variant{
		"name":       godbus.MakeVariant(info.Name),
		"bridge":     godbus.MakeVariant(info.Bridge),
		"subnet":     godbus.MakeVariant(info.Subnet),
		"gateway":    godbus.MakeVariant(info.Gateway),
		"dhcp_start": godbus.MakeVariant(info.DHCPStart),
		"dhcp_end":   godbus.MakeVariant(info.DHCPEnd),
		"dns":        godbus.MakeVariant(info.DNS),
		"outbound":   godbus.MakeVariant(info.Outbound),
		"persistent": godbus.MakeVariant(info.Persistent),
		"subnet6":    godbus.MakeVariant(info.Subnet6),
		"gateway6":   godbus.MakeVariant(info.Gateway6),
		"domain":     godbus.MakeVariant(info.Domain),
	}
}
