// Package client is the Go client for the netgrant D-Bus API, used by the
// CLI and the bridge helper. It speaks over busconn, netgrant's own bus
// connection, because godbus panics when it receives an array of fds
// (ah), which is exactly what CreateTap returns.
package client

import (
	"context"
	"os"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
)

// Conn is a connection to a message bus that can receive fds. It is safe
// for use by several goroutines.
type Conn struct {
	bus *busconn.Conn
}

// BusError is a failure to reach or join the bus itself.
type BusError = busconn.BusError

// Connect connects to the system bus, at DBUS_SYSTEM_BUS_ADDRESS if set.
func Connect() (*Conn, error) {
	bus, err := busconn.Connect(nil)
	if err != nil {
		return nil, err
	}
	return &Conn{bus: bus}, nil
}

// UniqueName is the connection's unique name on the bus (":1.42").
func (c *Conn) UniqueName() string { return c.bus.UniqueName() }

// Close closes the connection; the bus then drops everything it held for
// it, netgrant networks included.
func (c *Conn) Close() error { return c.bus.Close() }

// Call calls method on path at dest and returns the reply's body and fds;
// an error reply is an *Error. A fd in the body is a dbus.UnixFDIndex into
// the fds.
func (c *Conn) Call(dest string, path dbus.ObjectPath, iface, method string, flags dbus.Flags, args ...any) ([]any, []*os.File, error) {
	reply, err := c.bus.Call(context.Background(), dest, path, iface, method, flags, args...)
	if err != nil {
		return nil, nil, err
	}
	return reply.Body, reply.Files, nil
}
