// Package dbus is netgrantd's D-Bus surface, and only that: it exports
// the manager, network and tap objects of org.netgrant.NetGrant1 with their
// properties and signals, decodes and checks every call's arguments before
// anything else, knows who calls (uid, and the unique name whose leaving
// drops its holds), asks polkit through package polkit with a bounded
// queue per uid, maps the core's errors to the API's names, and watches
// the bus for holders leaving, firewalld reloading and systemd-resolved
// starting. What the calls do is package service's; the other services on
// the bus are spoken to by packages polkit, firewalld and resolved; the
// connection itself is internal/busconn.
package dbus

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/firewalld"
	"github.com/netgrant/netgrant/internal/busconn"
	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/polkit"
	"github.com/netgrant/netgrant/resolved"
	"github.com/netgrant/netgrant/service"
)

// Server exports netgrant on a bus connection of its own (see busconn for
// why not godbus's).
type Server struct {
	conn    *busconn.Conn
	manager *service.Manager
	polkit  *polkit.Authority
	zones   *firewalld.Zone
	dns     *resolved.Links
	log     *slog.Logger
	version string
	// busID tells this bus from one that came before it, whose unique
	// names a new bus hands out again.
	busID string

	calls   callTracker
	checks  checkQueue
	signals *signalWatch

	// busy counts the calls being answered, drained is signalled when it
	// drops to zero, and activity hears of every call and of every object
	// that goes (see Activity).
	busy     atomic.Int64
	drained  chan struct{}
	activity chan struct{}

	mu    sync.Mutex
	props map[godbus.ObjectPath]objectProps // what clients were last told
}

type objectProps struct {
	iface string
	props map[string]godbus.Variant
}

// NewServer prepares a Server; Connect then opens its bus connection.
func NewServer(log *slog.Logger, version string) *Server {
	return &Server{
		log: log, version: version, props: map[godbus.ObjectPath]objectProps{},
		calls:    callTracker{byCaller: map[string]map[*callEntry]bool{}},
		checks:   checkQueue{perUID: map[uint32]*uidChecks{}},
		drained:  make(chan struct{}, 1),
		activity: make(chan struct{}, 1),
	}
}

// Activity receives a token when a call starts or ends and when a tap or
// network goes away: the moments netgrantd may have become idle.
func (s *Server) Activity() <-chan struct{} { return s.activity }

func (s *Server) active() {
	select {
	case s.activity <- struct{}{}:
	default:
	}
}

// Busy reports whether a call is being answered.
func (s *Server) Busy() bool { return s.busy.Load() > 0 }

// Stop gives up the bus name, so that the next call starts a new
// netgrantd, and waits for the calls already received to be answered.
// With abandon, a call still waiting for polkit is abandoned (its check
// withdrawn) and told to call again; calls past polkit finish their work
// either way.
func (s *Server) Stop(abandon bool) error {
	var reply uint32
	err := s.busCall("ReleaseName", &reply, names.BusName)
	if abandon {
		s.calls.cancelAll(service.ErrStopping)
	}
	for s.Busy() {
		<-s.drained
	}
	return err
}

func (s *Server) callStarted() {
	s.busy.Add(1)
	s.active()
}

func (s *Server) callEnded() {
	if s.busy.Add(-1) == 0 {
		select {
		case s.drained <- struct{}{}:
		default:
		}
	}
	s.active()
}

// Connect opens the system bus (honouring DBUS_SYSTEM_BUS_ADDRESS) with s
// answering calls. Nothing is dispatched to the manager before Serve.
func (s *Server) Connect() error {
	s.signals = newSignalWatch(s)
	conn, err := busconn.Connect(s.incoming, busconn.MaxMessageSize(maxMessageSize))
	if err != nil {
		return fmt.Errorf("connecting to the system bus: %w", err)
	}
	s.conn = conn
	s.polkit = polkit.New(conn)
	s.zones = firewalld.NewZone(conn, firewalld.ZoneName)
	s.dns = resolved.New(conn)
	return nil
}

// Resolver registers networks' domains with systemd-resolved, over the
// service's own connection.
func (s *Server) Resolver() service.Resolver { return s.dns }

// FirewallZones puts bridges into firewalld's netgrant zone, over the
// service's own connection.
func (s *Server) FirewallZones() service.Zones { return s.zones }

// Close closes the bus connection.
func (s *Server) Close() error { return s.conn.Close() }

// Done is closed when the bus connection is lost.
func (s *Server) Done() <-chan struct{} { return s.conn.Done() }

// Serve starts answering for manager: it watches holders leave the bus,
// lets the manager adopt what a previous daemon left, and then takes the
// bus name. It fails if another process owns the name.
func (s *Server) Serve(manager *service.Manager) error {
	s.manager = manager
	if err := s.busCall("GetId", &s.busID); err != nil {
		return fmt.Errorf("asking the bus for its id: %w", err)
	}
	if err := s.signals.start(); err != nil {
		return err
	}
	manager.Recover(s.holderAlive)
	s.signals.serveHolders()
	var reply uint32
	if err := s.busCall("RequestName", &reply, names.BusName, uint32(godbus.NameFlagDoNotQueue)); err != nil {
		return fmt.Errorf("requesting bus name %s: %w", names.BusName, err)
	}
	if reply != uint32(godbus.RequestNameReplyPrimaryOwner) {
		return fmt.Errorf("bus name %s is already owned by another process: is netgrantd already running?", names.BusName)
	}
	return nil
}

// busCall calls a method of the bus itself and stores its one result.
func (s *Server) busCall(method string, result any, args ...any) error {
	reply, err := s.conn.Call(context.Background(), "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", method, 0, args...)
	if err != nil {
		return err
	}
	if result == nil {
		return nil
	}
	return godbus.Store(reply.Body, result)
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
	return s.busCall("NameHasOwner", &present, name) == nil && present
}
