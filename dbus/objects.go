package dbus

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service"
)

func (s *Server) propertiesMethods() iface {
	return iface{
		"Get": {in: "ss", out: "v", run: func(c *call) ([]any, error) {
			props, err := s.interfaceProps(c.path, c.args[0].(string))
			if err != nil {
				return nil, err
			}
			v, ok := props[c.args[1].(string)]
			if !ok {
				return nil, dbusError(errUnknownProperty, fmt.Sprintf("no property %q", c.args[1]))
			}
			return []any{v}, nil
		}},
		"GetAll": {in: "s", out: "a{sv}", run: func(c *call) ([]any, error) {
			props, err := s.interfaceProps(c.path, c.args[0].(string))
			if err != nil {
				return nil, err
			}
			return []any{props}, nil
		}},
		"Set": {in: "ssv", out: "", run: func(c *call) ([]any, error) {
			if _, err := s.interfaceProps(c.path, c.args[0].(string)); err != nil {
				return nil, err
			}
			return nil, dbusError(errPropertyReadOnly, fmt.Sprintf("property %q is read-only", c.args[1]))
		}},
	}
}

func (s *Server) interfaceProps(path godbus.ObjectPath, name string) (map[string]godbus.Variant, error) {
	if path == names.ManagerPath && name == names.ManagerInterface {
		return map[string]godbus.Variant{"Version": godbus.MakeVariant(s.version)}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if obj, ok := s.props[path]; ok && obj.iface == name {
		return obj.props, nil
	}
	if path == names.ManagerPath || name == introspectableInterface || name == propertiesInterface {
		return map[string]godbus.Variant{}, nil
	}
	return nil, dbusError(errUnknownInterface, fmt.Sprintf("object %s has no interface %q", path, name))
}

func (s *Server) objectManagerMethods() iface {
	return iface{
		"GetManagedObjects": {out: "a{oa{sa{sv}}}", run: func(*call) ([]any, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			out := map[godbus.ObjectPath]map[string]map[string]godbus.Variant{}
			for path, obj := range s.props {
				out[path] = map[string]map[string]godbus.Variant{obj.iface: obj.props}
			}
			return []any{out}, nil
		}},
	}
}

// The Observer side: keep clients' view of each object in step with the
// service, as ObjectManager and PropertiesChanged signals.

func (s *Server) TapAdded(info service.TapInfo) {
	s.added(names.TapPath(info.Name), names.TapInterface, tapProps(info))
}
func (s *Server) TapChanged(info service.TapInfo) {
	s.changed(names.TapPath(info.Name), tapProps(info))
}
func (s *Server) TapRemoved(name string) { s.removed(names.TapPath(name)) }

func (s *Server) NetworkAdded(info service.NetworkInfo) {
	s.added(names.NetworkPath(info.Name), names.NetworkInterface, networkProps(info))
}
func (s *Server) NetworkChanged(info service.NetworkInfo) {
	s.changed(names.NetworkPath(info.Name), networkProps(info))
}
func (s *Server) NetworkRemoved(name string) { s.removed(names.NetworkPath(name)) }

func (s *Server) added(path godbus.ObjectPath, ifaceName string, props map[string]godbus.Variant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.props[path] = objectProps{iface: ifaceName, props: props}
	s.emit(names.ManagerPath, objectManagerInterface+".InterfacesAdded", path, map[string]map[string]godbus.Variant{ifaceName: props})
}

func (s *Server) changed(path godbus.ObjectPath, props map[string]godbus.Variant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.props[path]
	if !ok {
		return
	}
	diff := map[string]godbus.Variant{}
	for k, v := range props {
		if !reflect.DeepEqual(old.props[k].Value(), v.Value()) {
			diff[k] = v
		}
	}
	if len(diff) == 0 {
		return
	}
	s.props[path] = objectProps{iface: old.iface, props: props}
	s.emit(path, propertiesInterface+".PropertiesChanged", old.iface, diff, []string{})
}

func (s *Server) removed(path godbus.ObjectPath) {
	defer s.active()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.props[path]
	if !ok {
		return
	}
	delete(s.props, path)
	s.emit(names.ManagerPath, objectManagerInterface+".InterfacesRemoved", path, []string{old.iface})
}

func (s *Server) emit(path godbus.ObjectPath, signal string, args ...any) {
	if err := s.conn.Emit(path, signal, args...); err != nil {
		s.log.Warn("emitting signal failed", "signal", signal, "path", path, "err", err)
	}
}

// paths lists the exported tap and network objects under dir.
func (s *Server) children(dir godbus.ObjectPath) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for path := range s.props {
		if strings.HasPrefix(string(path), string(dir)+"/") {
			names = append(names, string(path[len(dir)+1:]))
		}
	}
	sort.Strings(names)
	return names
}

func tapProps(info service.TapInfo) map[string]godbus.Variant {
	network := godbus.ObjectPath("/")
	if info.Network != "" {
		network = names.NetworkPath(info.Network)
	}
	return map[string]godbus.Variant{
		"Name":    godbus.MakeVariant(info.Name),
		"Owner":   godbus.MakeVariant(info.Owner),
		"MAC":     godbus.MakeVariant(info.MAC),
		"MTU":     godbus.MakeVariant(info.MTU),
		"Queues":  godbus.MakeVariant(info.Queues),
		"VnetHdr": godbus.MakeVariant(info.VnetHdr),
		"Bridge":  godbus.MakeVariant(info.Bridge),
		"Network": godbus.MakeVariant(network),
		"IPv4":    godbus.MakeVariant(info.IPv4),
		"IPv6":    godbus.MakeVariant(append([]string{}, info.IPv6...)),
	}
}

// portForward is the (sqsqs) struct of the PortForwards property.
type portForward struct {
	Protocol  string
	HostPort  uint16
	Guest     string
	GuestPort uint16
	Address   string
}

// lease is the (sss) struct of the Leases property.
type lease struct {
	MAC, IPv4, Hostname string
}

func networkProps(info service.NetworkInfo) map[string]godbus.Variant {
	taps := make([]godbus.ObjectPath, len(info.Taps))
	for i, t := range info.Taps {
		taps[i] = names.TapPath(t)
	}
	leases := make([]lease, len(info.Leases))
	for i, l := range info.Leases {
		leases[i] = lease{l.MAC, l.IPv4, l.Hostname}
	}
	forwards := make([]portForward, len(info.PortForwards))
	for i, f := range info.PortForwards {
		address := ""
		if f.Address.IsValid() {
			address = f.Address.String()
		}
		forwards[i] = portForward{f.Protocol, f.HostPort, f.Guest.String(), f.GuestPort, address}
	}
	return map[string]godbus.Variant{
		"PortForwards": godbus.MakeVariant(forwards),
		"Name":         godbus.MakeVariant(info.Name),
		"Bridge":       godbus.MakeVariant(info.Bridge),
		"Subnet":       godbus.MakeVariant(info.Subnet),
		"Gateway":      godbus.MakeVariant(info.Gateway),
		"Subnet6":      godbus.MakeVariant(info.Subnet6),
		"Gateway6":     godbus.MakeVariant(info.Gateway6),
		"Domain":       godbus.MakeVariant(info.Domain),
		"DHCP":         godbus.MakeVariant(info.DHCP),
		"DNS":          godbus.MakeVariant(info.DNS),
		"Outbound":     godbus.MakeVariant(info.Outbound),
		"Persistent":   godbus.MakeVariant(info.Persistent),
		"Owner":        godbus.MakeVariant(info.Owner),
		"Holders":      godbus.MakeVariant(info.Holders),
		"Taps":         godbus.MakeVariant(taps),
		"Leases":       godbus.MakeVariant(leases),
	}
}
