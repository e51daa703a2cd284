// Package resolved registers netgrant's networks with systemd-resolved
// through its D-Bus API, as libvirt does for <domain register='yes'/>: a
// bridge's gateway becomes the DNS server for the network's domain alone,
// so the host resolves its guests by name (ssh alpha.lab.netgrant.internal)
// and nothing else it looks up goes to a guest network.
package resolved

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
)

const (
	// BusName is systemd-resolved's name on the system bus.
	BusName = "org.freedesktop.resolve1"
	path    = dbus.ObjectPath("/org/freedesktop/resolve1")
	manager = BusName + ".Manager"

	// callTimeout bounds a call to a resolved that hangs.
	callTimeout = 10 * time.Second
)

// Links registers links' DNS with systemd-resolved. Where resolved is not
// running it does nothing; one that starts later is told by the caller.
type Links struct{ conn *busconn.Conn }

// New uses conn, the service's system bus connection.
func New(conn *busconn.Conn) *Links { return &Links{conn: conn} }

// Register makes servers, on link ifindex, the host's DNS servers for
// domain and its subdomains, and for nothing else. Guests cannot answer
// the host's other lookups either: LLMNR and mDNS are off on the link.
func (l *Links) Register(ifindex int, servers []netip.Addr, domain string) error {
	type dnsServer struct {
		Family  int32
		Address []byte
	}
	type routingDomain struct {
		Domain      string
		RoutingOnly bool
	}
	var dns []dnsServer
	for _, s := range servers {
		family := int32(syscall.AF_INET)
		if s.Is6() {
			family = syscall.AF_INET6
		}
		dns = append(dns, dnsServer{family, s.AsSlice()})
	}
	calls := []struct {
		member string
		arg    any
	}{
		{"SetLinkDNS", dns},
		{"SetLinkDomains", []routingDomain{{domain, true}}},
		{"SetLinkDefaultRoute", false},
		{"SetLinkLLMNR", "no"},
		{"SetLinkMulticastDNS", "no"},
	}
	for _, c := range calls {
		if err := l.call(c.member, int32(ifindex), c.arg); err != nil {
			return err
		}
	}
	return nil
}

// Revert makes resolved forget what was registered for link ifindex; a
// link resolved does not know (gone already) is no error.
func (l *Links) Revert(ifindex int) error {
	err := l.call("RevertLink", int32(ifindex))
	var fe *busconn.Error
	if errors.As(err, &fe) && fe.Name == BusName+".NoSuchLink" {
		return nil
	}
	return err
}

// call makes one call, never starting resolved by activation: a host
// whose admin keeps it stopped gets no resolved from netgrant.
func (l *Links) call(member string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := l.conn.Call(ctx, BusName, path, manager, member, dbus.FlagNoAutoStart, args...)
	if busconn.IsNotRunning(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("systemd-resolved %s(%v): %w", member, args, err)
	}
	return nil
}
