package dbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
	"github.com/netgrant/netgrant/internal/names"
)

// call is one incoming method call.
type call struct {
	ctx    context.Context
	msg    *busconn.Message
	sender string
	path   godbus.ObjectPath
	args   []any
	// closeAfterReply are the daemon's copies of fds sent in the reply,
	// closed as soon as the kernel has queued them to the caller, so that
	// from then on only the caller's copies keep a device alive.
	closeAfterReply []*os.File
}

// interactive reports whether the caller allowed interactive authorization.
func (c *call) interactive() bool {
	return c.msg.Flags&godbus.FlagAllowInteractiveAuthorization != 0
}

type method struct {
	in, out string
	run     func(*call) ([]any, error)
}

// iface is a D-Bus interface's method table.
type iface map[string]*method

const (
	peerInterface    = "org.freedesktop.DBus.Peer"
	errUnknownObject = "org.freedesktop.DBus.Error.UnknownObject"
	errUnknownMethod = "org.freedesktop.DBus.Error.UnknownMethod"
)

// Bounds on what one connection may make the daemon hold (API.md): every
// call in progress is a goroutine of its own, and every message read is
// held whole before it is decoded.
const (
	maxCallsPerConnection = 16
	maxMessageSize        = 1 << 20
)

// incoming receives every call and signal, on the connection's reader: it
// must not block but to send a refusal.
func (s *Server) incoming(m *busconn.Message) {
	// No netgrant method takes an fd; whatever came with a message is
	// closed at once, so no caller can make the daemon hold its fds.
	m.CloseFiles()
	switch m.Type {
	case godbus.TypeSignal:
		s.signals.receive(m)
	case godbus.TypeMethodCall:
		ctx, done, ok := s.calls.begin(m.Sender())
		if !ok {
			s.replyError(m, dbusError(errLimitsExceeded, fmt.Sprintf("this connection already has %d calls in progress: wait for their replies", maxCallsPerConnection)))
			return
		}
		// Counted before the next message is read: once ReleaseName's
		// reply is in, every call that came before it is counted.
		s.callStarted()
		go func() {
			defer s.callEnded()
			defer done()
			s.handleCall(ctx, m)
		}()
	}
}

func (s *Server) handleCall(ctx context.Context, m *busconn.Message) {
	sender := m.Sender()
	switch {
	case errors.Is(m.DecodeErr, busconn.ErrTooLarge):
		s.replyError(m, dbusError(errLimitsExceeded, fmt.Sprintf("the message is larger than the %d bytes netgrantd reads: it was refused unread", maxMessageSize)))
		return
	case errors.Is(m.DecodeErr, busconn.ErrFDCount):
		s.replyError(m, dbusError(errInvalidArgs, m.DecodeErr.Error()))
		return
	case m.DecodeErr != nil:
		s.replyError(m, dbusError(errInvalidArgs, "the message could not be decoded"))
		return
	}
	path, _ := m.Headers[godbus.FieldPath].Value().(godbus.ObjectPath)
	ifaceName, _ := m.Headers[godbus.FieldInterface].Value().(string)
	member, _ := m.Headers[godbus.FieldMember].Value().(string)
	meth, err := s.lookup(path, ifaceName, member)
	if err != nil {
		s.replyError(m, err)
		return
	}
	var sig string
	if v, ok := m.Headers[godbus.FieldSignature].Value().(godbus.Signature); ok {
		sig = v.String()
	}
	if sig != meth.in {
		s.replyError(m, dbusError(errInvalidArgs, fmt.Sprintf("arguments of type %q given, %q expected", sig, meth.in)))
		return
	}
	c := &call{ctx: ctx, msg: m, sender: sender, path: path, args: m.Body}
	out, runErr := meth.run(c)
	if runErr != nil {
		s.replyError(m, toDBusError(runErr))
		return
	}
	s.reply(m, out...)
	closeFiles(c.closeAfterReply)
}

// lookup finds the method a call names. A call without an interface names
// a method of any of the object's interfaces.
func (s *Server) lookup(path godbus.ObjectPath, ifaceName, member string) (*method, *godbus.Error) {
	if ifaceName == peerInterface {
		switch member {
		case "Ping":
			return &method{run: func(*call) ([]any, error) { return nil, nil }}, nil
		case "GetMachineId":
			return &method{out: "s", run: s.machineID}, nil
		}
	}
	interfaces, ok := s.objectAt(path)
	if !ok {
		return nil, dbusError(errUnknownObject, fmt.Sprintf("no object at %s", path))
	}
	if ifaceName != "" {
		methods, ok := interfaces[ifaceName]
		if !ok {
			return nil, dbusError(errUnknownInterface, fmt.Sprintf("object %s has no interface %q", path, ifaceName))
		}
		interfaces = map[string]iface{ifaceName: methods}
	}
	for _, methods := range interfaces {
		if m, ok := methods[member]; ok {
			return m, nil
		}
	}
	return nil, dbusError(errUnknownMethod, fmt.Sprintf("no method %q on %s", member, path))
}

// objectAt returns the interfaces of the object at path.
func (s *Server) objectAt(path godbus.ObjectPath) (map[string]iface, bool) {
	switch {
	case path == names.ManagerPath:
		return map[string]iface{
			names.ManagerInterface:  s.managerMethods(),
			propertiesInterface:     s.propertiesMethods(),
			introspectableInterface: s.introspectMethods(),
			objectManagerInterface:  s.objectManagerMethods(),
		}, true
	case isAncestor(path, names.ManagerPath) || path == networkDir || path == tapDir:
		return map[string]iface{introspectableInterface: s.introspectMethods()}, true
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
	return map[string]iface{
		obj.iface:               own,
		propertiesInterface:     s.propertiesMethods(),
		introspectableInterface: s.introspectMethods(),
	}, true
}

// isAncestor reports whether a is a proper ancestor of b.
func isAncestor(a, b godbus.ObjectPath) bool {
	return a == "/" && b != "/" || strings.HasPrefix(string(b), string(a)+"/")
}

func (s *Server) machineID(*call) ([]any, error) {
	id, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return nil, fmt.Errorf("reading the machine id: %w", err)
	}
	return []any{strings.TrimSpace(string(id))}, nil
}

func (s *Server) reply(m *busconn.Message, body ...any) {
	if m.Flags&godbus.FlagNoReplyExpected != 0 {
		return
	}
	reply := &godbus.Message{
		Type: godbus.TypeMethodReply,
		Headers: map[godbus.HeaderField]godbus.Variant{
			godbus.FieldDestination: godbus.MakeVariant(m.Sender()),
			godbus.FieldReplySerial: godbus.MakeVariant(m.Serial()),
		},
		Body: body,
	}
	if len(body) > 0 {
		reply.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(body...))
	}
	s.send(reply)
}

func (s *Server) replyError(m *busconn.Message, e *godbus.Error) {
	if m.Flags&godbus.FlagNoReplyExpected != 0 {
		return
	}
	s.send(&godbus.Message{
		Type: godbus.TypeError,
		Headers: map[godbus.HeaderField]godbus.Variant{
			godbus.FieldDestination: godbus.MakeVariant(m.Sender()),
			godbus.FieldReplySerial: godbus.MakeVariant(m.Serial()),
			godbus.FieldErrorName:   godbus.MakeVariant(e.Name),
			godbus.FieldSignature:   godbus.MakeVariant(godbus.SignatureOf("")),
		},
		Body: []any{e.Error()},
	})
}

func (s *Server) send(msg *godbus.Message) {
	if _, err := s.conn.Send(msg); err != nil {
		s.log.Warn("sending a reply failed", "err", err)
	}
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
