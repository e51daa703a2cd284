package dbus

import (
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service"
)

func (s *Server) managerMethods() iface {
	return iface{
		"CreateTap":        {in: "a{sv}", out: "oaha{sv}", run: s.createTap},
		"AttachBridge":     {in: "ssa{sv}", out: "", run: s.attachBridge},
		"CreateNATNetwork": {in: "sa{sv}", out: "oa{sv}", run: s.createNATNetwork},
		"GetNetwork":       {in: "s", out: "o", run: s.getNetwork},
	}
}

func (s *Server) createTap(c *call) ([]any, error) {
	req, err := decodeTapRequest(c.args[0].(map[string]godbus.Variant))
	if err != nil {
		return nil, err
	}
	caller, err := s.caller(c)
	if err != nil {
		return nil, err
	}
	info, files, err := s.manager.CreateTap(c.ctx, caller, req)
	if err != nil {
		return nil, err
	}
	// A tap on the caller's own user-<uid> may have created it, and the
	// caller may have left before its hold existed for NameOwnerChanged
	// to drop.
	if req.Network != "" && strings.HasPrefix(req.Network, "user-") && !s.holderAlive(caller.Holder) {
		s.manager.HolderGone(caller.Holder)
	}
	c.closeAfterReply = files
	fds := make([]godbus.UnixFD, len(files))
	for i, f := range files {
		fds[i] = godbus.UnixFD(f.Fd())
	}
	return []any{names.TapPath(info.Name), fds, tapInfoMap(info)}, nil
}

func (s *Server) attachBridge(c *call) ([]any, error) {
	ifname, br := c.args[0].(string), c.args[1].(string)
	if err := attachOptions.check("AttachBridge", c.args[2].(map[string]godbus.Variant)); err != nil {
		return nil, err
	}
	caller, err := s.caller(c)
	if err != nil {
		return nil, err
	}
	return nil, s.manager.AttachBridge(c.ctx, caller, ifname, br)
}

func (s *Server) createNATNetwork(c *call) ([]any, error) {
	req, err := decodeNetworkRequest(c.args[0].(string), c.args[1].(map[string]godbus.Variant))
	if err != nil {
		return nil, err
	}
	caller, err := s.caller(c)
	if err != nil {
		return nil, err
	}
	info, err := s.manager.CreateNATNetwork(c.ctx, caller, req)
	if err != nil {
		return nil, err
	}
	// The caller may have left while we worked, before its hold existed
	// for NameOwnerChanged to drop.
	if !s.holderAlive(caller.Holder) {
		s.manager.HolderGone(caller.Holder)
	}
	return []any{names.NetworkPath(info.Name), networkInfoMap(info)}, nil
}

func (s *Server) getNetwork(c *call) ([]any, error) {
	info, err := s.manager.GetNetwork(c.args[0].(string))
	if err != nil {
		return nil, err
	}
	return []any{names.NetworkPath(info.Name)}, nil
}

// objectName returns the tap or network name behind an object path.
func (s *Server) objectName(path godbus.ObjectPath) string {
	label := string(path[strings.LastIndexByte(string(path), '/')+1:])
	name, _ := names.DecodePathLabel(label)
	return name
}

func (s *Server) networkMethods() iface {
	return iface{
		"Release": s.onObject(func(c *call, caller service.Caller, name string) error {
			return s.manager.ReleaseNetwork(caller, name)
		}),
		"Delete": s.onObject(func(c *call, caller service.Caller, name string) error {
			return s.manager.DeleteNetwork(c.ctx, caller, name)
		}),
		"AddPortForward":    {in: "sqsqa{sv}", out: "", run: s.addPortForward},
		"RemovePortForward": {in: "sq", out: "", run: s.removePortForward},
	}
}

func (s *Server) addPortForward(c *call) ([]any, error) {
	req, err := decodeForwardRequest(s.objectName(c.path), c.args)
	if err != nil {
		return nil, err
	}
	caller, err := s.caller(c)
	if err != nil {
		return nil, err
	}
	return nil, s.manager.AddPortForward(c.ctx, caller, req)
}

func (s *Server) removePortForward(c *call) ([]any, error) {
	caller, err := s.caller(c)
	if err != nil {
		return nil, err
	}
	return nil, s.manager.RemovePortForward(c.ctx, caller, s.objectName(c.path), c.args[0].(string), c.args[1].(uint16))
}

func (s *Server) tapMethods() iface {
	return iface{
		"Delete": s.onObject(func(c *call, caller service.Caller, name string) error {
			return s.manager.DeleteTap(c.ctx, caller, name)
		}),
	}
}

// onObject is a method without arguments or results on a tap or network
// object, which act does for the caller on the object's name.
func (s *Server) onObject(act func(c *call, caller service.Caller, name string) error) *method {
	return &method{run: func(c *call) ([]any, error) {
		caller, err := s.caller(c)
		if err != nil {
			return nil, err
		}
		return nil, act(c, caller, s.objectName(c.path))
	}}
}

// ObjectID names objects for polkit's `object` detail: their path.
func ObjectID(kind, name string) string {
	if kind == "tap" {
		return string(names.TapPath(name))
	}
	return string(names.NetworkPath(name))
}
