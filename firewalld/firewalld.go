// Package firewalld puts netgrant's bridges into firewalld's netgrant zone
// (data/firewalld/zones/netgrant.xml) through firewalld's D-Bus API, as
// libvirt does with its libvirt zone. With firewalld running, a guest's
// DHCP and DNS to the host and its forwarded traffic must pass firewalld's
// own chains as well as netgrant's: in nftables every base chain on a hook
// gets its say. The zone lets them pass; netgrant's rules still decide.
package firewalld

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
)

const (
	// BusName is firewalld's name on the system bus; it signals Reloaded
	// on the interface of the same name.
	BusName       = "org.fedoraproject.FirewallD1"
	path          = dbus.ObjectPath("/org/fedoraproject/FirewallD1")
	zoneInterface = BusName + ".zone"

	// callTimeout bounds a call to a firewalld that hangs.
	callTimeout = 10 * time.Second
)

// ZoneName is the zone netgrant ships.
const ZoneName = "netgrant"

// Zone binds interfaces to one firewalld zone at runtime. Where firewalld
// is not running it does nothing: a firewalld that starts later is told
// by the caller, once it is there.
type Zone struct {
	conn *busconn.Conn
	name string
}

// NewZone uses conn, the service's system bus connection.
func NewZone(conn *busconn.Conn, name string) *Zone { return &Zone{conn: conn, name: name} }

// Add puts iface into the zone, moving it out of any other.
func (z *Zone) Add(iface string) error {
	return z.call("changeZoneOfInterface", z.name, iface)
}

// Remove takes iface out of the zone; one not in it is no error.
func (z *Zone) Remove(iface string) error {
	err := z.call("removeInterface", z.name, iface)
	var fe *busconn.Error
	if errors.As(err, &fe) && strings.HasPrefix(fe.Message, "UNKNOWN_INTERFACE") {
		return nil
	}
	return err
}

// call makes one call, never starting firewalld by activation: a host
// whose admin keeps it stopped gets no firewalld from netgrant.
func (z *Zone) call(method string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := z.conn.Call(ctx, BusName, path, zoneInterface, method, dbus.FlagNoAutoStart, args...)
	if busconn.IsNotRunning(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("firewalld %s(%s, %v): %w", method, z.name, args[1:], err)
	}
	return nil
}
