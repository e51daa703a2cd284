package dbus

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/dbus/names"
	"github.com/netgrant/netgrant/polkit"
	"github.com/netgrant/netgrant/service"
)

// Server exports netgrant on a bus connection.
type Server struct {
	conn    *godbus.Conn
	manager *service.Manager
	polkit  *polkit.Authority
	log     *slog.Logger
	version string
	// busID tells this bus from one that came before it, whose unique
	// names a new bus hands out again.
	busID string

	mu    sync.Mutex
	props map[godbus.ObjectPath]objectProps // what clients were last told
}

type objectProps struct {
	iface string
	props map[string]godbus.Variant
}

// NewServer prepares a Server; the connection must have been opened with
// godbus.WithHandler(srv) — see Connect.
func NewServer(log *slog.Logger, version string) *Server {
	return &Server{log: log, version: version, props: map[godbus.ObjectPath]objectProps{}}
}

// Connect opens the system bus (honouring DBUS_SYSTEM_BUS_ADDRESS) with s
// answering calls.
func (s *Server) Connect() (*godbus.Conn, error) {
	conn, err := godbus.ConnectSystemBus(godbus.WithHandler(s))
	if err != nil {
		return nil, fmt.Errorf("connecting to the system bus: %w", err)
	}
	s.conn = conn
	s.polkit = polkit.New(conn)
	return conn, nil
}

// Serve starts answering for manager: it watches holders leave the bus,
// lets the manager adopt what a previous daemon left, and then takes the
// bus name. It fails if another process owns the name.
func (s *Server) Serve(manager *service.Manager) error {
	s.manager = manager
	if err := s.conn.BusObject().Call("org.freedesktop.DBus.GetId", 0).Store(&s.busID); err != nil {
		return fmt.Errorf("asking the bus for its id: %w", err)
	}
	if err := s.watchBus(); err != nil {
		return err
	}
	manager.Recover(s.holderAlive)
	reply, err := s.conn.RequestName(names.BusName, godbus.NameFlagDoNotQueue)
	if err != nil {
		return fmt.Errorf("requesting bus name %s: %w", names.BusName, err)
	}
	if reply != godbus.RequestNameReplyPrimaryOwner {
		return fmt.Errorf("bus name %s is already owned by another process: is netgrantd already running?", names.BusName)
	}
	return nil
}

// holder names a connection for the service, across daemon restarts.
func (s *Server) holder(uniqueName string) string { return s.busID + "/" + uniqueName }

// holderAlive reports whether a holder recorded by this or an earlier
// daemon is still connected to this very bus.
func (s *Server) holderAlive(holder string) bool {
	busID, name, ok := strings.Cut(holder, "/")
	if !ok || busID != s.busID {
		return false
	}
	var present bool
	err := s.conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&present)
	return err == nil && present
}

const firewalldInterface = "org.fedoraproject.FirewallD1"

// watchBus drops the holds of every connection that leaves the bus, and
// puts netgrant's firewall rules back when firewalld reloads (which
// flushes them).
func (s *Server) watchBus() error {
	err := s.conn.AddMatchSignal(
		godbus.WithMatchSender("org.freedesktop.DBus"),
		godbus.WithMatchInterface("org.freedesktop.DBus"),
		godbus.WithMatchMember("NameOwnerChanged"),
	)
	if err != nil {
		return fmt.Errorf("watching bus names: %w", err)
	}
	err = s.conn.AddMatchSignal(godbus.WithMatchInterface(firewalldInterface), godbus.WithMatchMember("Reloaded"))
	if err != nil {
		return fmt.Errorf("watching firewalld: %w", err)
	}
	signals := make(chan *godbus.Signal, 256)
	s.conn.Signal(signals)
	go func() {
		for sig := range signals {
			switch sig.Name {
			case "org.freedesktop.DBus.NameOwnerChanged":
				if len(sig.Body) != 3 {
					continue
				}
				name, _ := sig.Body[0].(string)
				newOwner, _ := sig.Body[2].(string)
				if strings.HasPrefix(name, ":") && newOwner == "" {
					s.manager.HolderGone(s.holder(name))
				}
			case firewalldInterface + ".Reloaded":
				s.log.Info("firewalld reloaded: restoring netgrant's rules")
				s.manager.RestoreFirewall()
			}
		}
	}()
	return nil
}

// LookupObject implements godbus.Handler.
func (s *Server) LookupObject(path godbus.ObjectPath) (godbus.ServerObject, bool) {
	switch {
	case path == names.ManagerPath:
		return s.newObject(path, map[string]iface{
			names.ManagerInterface:  s.managerMethods(),
			propertiesInterface:     s.propertiesMethods(),
			introspectableInterface: s.introspectMethods(),
			objectManagerInterface:  s.objectManagerMethods(),
		}), true
	case isAncestor(path, names.ManagerPath) || path == networkDir || path == tapDir:
		return s.newObject(path, map[string]iface{introspectableInterface: s.introspectMethods()}), true
	}
	s.mu.Lock()
	obj, ok := s.props[path]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	own := s.networkMethods()
	if obj.iface == names.TapInterface {
		own = s.tapMethods()
	}
	return s.newObject(path, map[string]iface{
		obj.iface:               own,
		propertiesInterface:     s.propertiesMethods(),
		introspectableInterface: s.introspectMethods(),
	}), true
}

func (s *Server) newObject(path godbus.ObjectPath, interfaces map[string]iface) *object {
	return &object{srv: s, path: path, interfaces: interfaces}
}

// isAncestor reports whether a is a proper ancestor of b.
func isAncestor(a, b godbus.ObjectPath) bool {
	return a == "/" && b != "/" || strings.HasPrefix(string(b), string(a)+"/")
}

// caller identifies the sender of c: its uid, primary gid and a polkit
// authorizer bound to its bus name and the call's interactive flag.
func (s *Server) caller(c *call) (service.Caller, error) {
	var uid uint32
	err := s.conn.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixUser", 0, c.sender).Store(&uid)
	if err != nil {
		return service.Caller{}, service.Wrap(service.Failed, err, "identifying the caller")
	}
	gid := uid
	if u, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		if g, err := strconv.ParseUint(u.Gid, 10, 32); err == nil {
			gid = uint32(g)
		}
	}
	return service.Caller{UID: uid, GID: gid, Holder: s.holder(c.sender), Auth: &authorizer{srv: s, call: c}}, nil
}

type authorizer struct {
	srv  *Server
	call *call
}

var actionVerbs = map[string]string{
	service.ActionCreateTap:        "create a tap device",
	service.ActionUseNetwork:       "attach a tap to this network",
	service.ActionAttachBridge:     "attach a tap to this host bridge",
	service.ActionCreateNATNetwork: "create a NAT network",
	service.ActionPersist:          "make a network persistent",
	service.ActionManage:           "manage another user's objects",
}

// Authorize asks polkit as the caller's bus name. Acting on another user's
// object is settled first, on its own, so that a caller polkit refuses both
// ownership and the action always hears NotOwner; the remaining checks are
// asked concurrently.
func (a *authorizer) Authorize(ctx context.Context, checks []service.AuthCheck) error {
	var manage, rest []polkit.Check
	for _, c := range checks {
		pc := polkit.Check{Action: c.Action, Details: c.Details}
		if c.Action == service.ActionManage {
			manage = append(manage, pc)
		} else {
			rest = append(rest, pc)
		}
	}
	for _, group := range [][]polkit.Check{manage, rest} {
		if err := a.authorizeAll(ctx, group); err != nil {
			return err
		}
	}
	return nil
}

func (a *authorizer) authorizeAll(ctx context.Context, checks []polkit.Check) error {
	result, decisive, err := a.srv.polkit.CheckAll(ctx, a.call.sender, checks, a.call.interactive())
	what := actionVerbs[decisive.Action]
	switch {
	case result == polkit.Authorized:
		return nil
	case result == polkit.Challenge:
		return service.Errorf(service.InteractiveAuthorizationRequired,
			"authentication is required to %s (polkit %s): call again allowing interactive authorization, with a polkit agent running", what, decisive.Action)
	case err != nil:
		a.srv.log.Warn("polkit check failed: treating it as a denial", "caller", a.call.sender, "action", decisive.Action, "err", err)
		return service.Errorf(service.AccessDenied, "not authorized to %s: polkit could not be asked (%v)", what, err)
	case decisive.Action == service.ActionManage:
		return service.Errorf(service.NotOwner, "%s belongs to another user: acting on it needs polkit %s", decisive.Details["object"], service.ActionManage)
	}
	return service.Errorf(service.AccessDenied, "not authorized to %s (polkit %s)", what, decisive.Action)
}

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
	info, files, err := s.manager.CreateTap(context.Background(), caller, req)
	if err != nil {
		return nil, err
	}
	fds := make([]godbus.UnixFD, len(files))
	for i, f := range files {
		fds[i] = godbus.UnixFD(f.Fd())
	}
	s.replyAndClose(c, files, names.TapPath(info.Name), fds, tapInfoMap(info))
	return nil, nil
}

// replyAndClose sends the reply itself, so that the daemon's copies of the
// fds can be closed as soon as the kernel has queued them to the caller;
// from then on only the caller's copies keep the device alive.
func (s *Server) replyAndClose(c *call, files []*os.File, body ...any) {
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if c.msg.Flags&godbus.FlagNoReplyExpected != 0 {
		return
	}
	reply := &godbus.Message{
		Type: godbus.TypeMethodReply,
		Headers: map[godbus.HeaderField]godbus.Variant{
			godbus.FieldDestination: godbus.MakeVariant(c.sender),
			godbus.FieldReplySerial: godbus.MakeVariant(c.msg.Serial()),
			godbus.FieldSignature:   godbus.MakeVariant(godbus.SignatureOf(body...)),
		},
		Body: body,
	}
	if call := c.conn.Send(reply, nil); call.Err != nil {
		s.log.Warn("sending reply failed", "caller", c.sender, "err", call.Err)
	}
	// godbus must not send a second reply once this handler returns.
	c.msg.Flags |= godbus.FlagNoReplyExpected
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
	return nil, s.manager.AttachBridge(context.Background(), caller, ifname, br)
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
	info, err := s.manager.CreateNATNetwork(context.Background(), caller, req)
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
		"Release": {run: func(c *call) ([]any, error) {
			caller, err := s.caller(c)
			if err != nil {
				return nil, err
			}
			return nil, s.manager.ReleaseNetwork(caller, s.objectName(c.path))
		}},
		"Delete": {run: func(c *call) ([]any, error) {
			caller, err := s.caller(c)
			if err != nil {
				return nil, err
			}
			return nil, s.manager.DeleteNetwork(context.Background(), caller, s.objectName(c.path))
		}},
	}
}

func (s *Server) tapMethods() iface {
	return iface{
		"Delete": {run: func(c *call) ([]any, error) {
			caller, err := s.caller(c)
			if err != nil {
				return nil, err
			}
			return nil, s.manager.DeleteTap(context.Background(), caller, s.objectName(c.path))
		}},
	}
}

// ObjectID names objects for polkit's `object` detail: their path.
func ObjectID(kind, name string) string {
	if kind == "tap" {
		return string(names.TapPath(name))
	}
	return string(names.NetworkPath(name))
}

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
	}
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
	return map[string]godbus.Variant{
		"Name":       godbus.MakeVariant(info.Name),
		"Bridge":     godbus.MakeVariant(info.Bridge),
		"Subnet":     godbus.MakeVariant(info.Subnet),
		"Gateway":    godbus.MakeVariant(info.Gateway),
		"DHCP":       godbus.MakeVariant(info.DHCP),
		"DNS":        godbus.MakeVariant(info.DNS),
		"Outbound":   godbus.MakeVariant(info.Outbound),
		"Persistent": godbus.MakeVariant(info.Persistent),
		"Owner":      godbus.MakeVariant(info.Owner),
		"Holders":    godbus.MakeVariant(info.Holders),
		"Taps":       godbus.MakeVariant(taps),
		"Leases":     godbus.MakeVariant(leases),
	}
}
