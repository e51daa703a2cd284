package dbus

import (
	"encoding/xml"
	"fmt"
	"strings"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"
	"github.com/godbus/dbus/v5/prop"

	"github.com/netgrant/netgrant/data"
	"github.com/netgrant/netgrant/internal/names"
)

var objectManagerData = introspect.Interface{
	Name: objectManagerInterface,
	Methods: []introspect.Method{{
		Name: "GetManagedObjects",
		Args: []introspect.Arg{{Name: "objects", Type: "a{oa{sa{sv}}}", Direction: "out"}},
	}},
	Signals: []introspect.Signal{
		{Name: "InterfacesAdded", Args: []introspect.Arg{{Name: "object", Type: "o"}, {Name: "interfaces", Type: "a{sa{sv}}"}}},
		{Name: "InterfacesRemoved", Args: []introspect.Arg{{Name: "object", Type: "o"}, {Name: "interfaces", Type: "as"}}},
	},
}

// interfaceData returns netgrant's own interfaces, as installed in data/.
func interfaceData() (map[string]introspect.Interface, error) {
	var node introspect.Node
	if err := xml.Unmarshal(data.Interfaces, &node); err != nil {
		return nil, fmt.Errorf("parsing the introspection data: %w", err)
	}
	out := map[string]introspect.Interface{}
	for _, i := range node.Interfaces {
		out[i.Name] = i
	}
	return out, nil
}

var ownInterfaces = func() map[string]introspect.Interface {
	ifaces, err := interfaceData()
	if err != nil {
		panic(err)
	}
	return ifaces
}()

func (s *Server) introspectMethods() iface {
	return iface{
		"Introspect": {out: "s", run: func(c *call) ([]any, error) {
			return []any{s.introspect(c.path)}, nil
		}},
	}
}

// introspect describes the object at path and names its children, so tools
// like `busctl tree` can walk netgrant's objects.
func (s *Server) introspect(path godbus.ObjectPath) string {
	node := introspect.Node{Name: string(path)}
	standard := []introspect.Interface{introspect.IntrospectData, introspect.PeerData}
	switch path {
	case names.ManagerPath:
		node.Interfaces = append(standard, prop.IntrospectData, objectManagerData, ownInterfaces[names.ManagerInterface])
		node.Children = []introspect.Node{{Name: "network"}, {Name: "tap"}}
	case networkDir, tapDir:
		node.Interfaces = standard
		for _, name := range s.children(path) {
			node.Children = append(node.Children, introspect.Node{Name: name})
		}
	default:
		node.Interfaces = standard
		if isAncestor(path, names.ManagerPath) {
			rest := strings.TrimPrefix(string(names.ManagerPath), strings.TrimSuffix(string(path), "/")+"/")
			child, _, _ := strings.Cut(rest, "/")
			node.Children = []introspect.Node{{Name: child}}
		} else {
			s.mu.Lock()
			obj, ok := s.props[path]
			s.mu.Unlock()
			if ok {
				node.Interfaces = append(node.Interfaces, prop.IntrospectData, ownInterfaces[obj.iface])
			}
		}
	}
	out, err := xml.MarshalIndent(node, "", "  ")
	if err != nil {
		s.log.Error("marshalling introspection data", "err", err)
	}
	return introspect.IntrospectDeclarationString + string(out)
}
