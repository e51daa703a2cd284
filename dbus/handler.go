package dbus

import (
	"fmt"

	godbus "github.com/godbus/dbus/v5"
)

// netgrant answers calls through a handler of its own rather than
// godbus's Export, because it needs each call's header flags (for polkit's
// interactive flag), strict signature checks, and control over when a reply
// carrying fds has been sent (so it can close its copies of them).

// call is one incoming method call.
type call struct {
	srv    *Server
	conn   *godbus.Conn
	msg    *godbus.Message
	sender string
	path   godbus.ObjectPath
	args   []any
}

// interactive reports whether the caller allowed interactive authorization.
func (c *call) interactive() bool {
	return c.msg.Flags&godbus.FlagAllowInteractiveAuthorization != 0
}

type method struct {
	in, out string
	run     func(*call) ([]any, error)
}

// boundMethod is a method of one object, as godbus looks it up.
type boundMethod struct {
	*method
	srv  *Server
	path godbus.ObjectPath
}

func (m boundMethod) DecodeArguments(conn *godbus.Conn, sender string, msg *godbus.Message, args []any) ([]any, error) {
	var sig string
	if v, ok := msg.Headers[godbus.FieldSignature]; ok {
		sig = v.Value().(godbus.Signature).String()
	}
	if sig != m.in {
		return nil, dbusError(errInvalidArgs, fmt.Sprintf("arguments of type %q given, %q expected", sig, m.in))
	}
	return []any{&call{srv: m.srv, conn: conn, msg: msg, sender: sender, path: m.path, args: args}}, nil
}

func (m boundMethod) Call(args ...any) ([]any, error) {
	ret, err := m.run(args[0].(*call))
	if err != nil {
		return nil, toDBusError(err)
	}
	return ret, nil
}

func (m boundMethod) NumArguments() int     { return 1 }
func (m boundMethod) NumReturns() int       { return 0 }
func (m boundMethod) ArgumentValue(int) any { return nil }
func (m boundMethod) ReturnValue(int) any   { return nil }

// iface is a D-Bus interface's method table.
type iface map[string]*method

type object struct {
	srv        *Server
	path       godbus.ObjectPath
	interfaces map[string]iface
}

func (o *object) LookupInterface(name string) (godbus.Interface, bool) {
	if name == "" {
		// A call without an interface names a method of any of them.
		merged := boundIface{obj: o, methods: iface{}}
		for _, methods := range o.interfaces {
			for n, m := range methods {
				merged.methods[n] = m
			}
		}
		return merged, true
	}
	methods, ok := o.interfaces[name]
	return boundIface{obj: o, methods: methods}, ok
}

type boundIface struct {
	obj     *object
	methods iface
}

func (i boundIface) LookupMethod(name string) (godbus.Method, bool) {
	m, ok := i.methods[name]
	if !ok {
		return nil, false
	}
	return boundMethod{method: m, srv: i.obj.srv, path: i.obj.path}, true
}
