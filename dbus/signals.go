package dbus

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/firewalld"
	"github.com/netgrant/netgrant/internal/busconn"
	"github.com/netgrant/netgrant/resolved"
)

const (
	busName           = "org.freedesktop.DBus"
	firewalldName     = firewalld.BusName
	firewalldReloaded = firewalld.BusName + ".Reloaded"
)

// signalWatch acts on the signals netgrant follows, trusting each only from
// its real sender: anyone may send any signal to netgrantd directly, and a
// forged NameOwnerChanged would tear down another user's network. Holders
// leaving, firewalld reloading and systemd-resolved starting are handled
// by workers of their own, so none waits for another and no flood of
// signals multiplies work.
type signalWatch struct {
	srv *Server

	mu             sync.Mutex
	firewalldOwner string   // unique name of firewalld, "" when not running
	gone           []string // unique names that left, in order
	goneReady      chan struct{}
	reload         chan struct{}
	// resolvedStarted asks for every network's domain to be registered
	// again: a systemd-resolved that starts knows none.
	resolvedStarted chan struct{}
}

func newSignalWatch(srv *Server) *signalWatch {
	return &signalWatch{srv: srv, goneReady: make(chan struct{}, 1), reload: make(chan struct{}, 1), resolvedStarted: make(chan struct{}, 1)}
}

func (w *signalWatch) start() error {
	for _, rule := range []string{
		"type='signal',sender='" + busName + "',interface='" + busName + "',member='NameOwnerChanged'",
		"type='signal',interface='" + firewalldName + "',member='Reloaded'",
	} {
		if err := w.srv.busCall("AddMatch", nil, rule); err != nil {
			return fmt.Errorf("watching the bus (%s): %w", rule, err)
		}
	}
	// Not running is an answer too (an error reply).
	var owner string
	if w.srv.busCall("GetNameOwner", &owner, firewalldName) == nil {
		w.setFirewalldOwner(owner)
	}
	go w.restoreFirewall()
	go w.restoreDNS()
	return nil
}

// serveHolders starts dropping the holds of connections that leave. It
// runs once Recover has adopted what a previous daemon left: a holder that
// left after the watch began, but while recovery still counted it as
// alive, is then dropped from what recovery adopted, instead of from
// nothing.
func (w *signalWatch) serveHolders() {
	go w.dropHolds()
}

// receive runs on the connection's reader and must not block.
func (w *signalWatch) receive(m *busconn.Message) {
	path, _ := m.Headers[godbus.FieldPath].Value().(godbus.ObjectPath)
	iface, _ := m.Headers[godbus.FieldInterface].Value().(string)
	member, _ := m.Headers[godbus.FieldMember].Value().(string)
	switch iface + "." + member {
	case busName + ".NameOwnerChanged":
		if m.Sender() != busName || path != "/org/freedesktop/DBus" {
			return
		}
		var name, oldOwner, newOwner string
		if godbus.Store(m.Body, &name, &oldOwner, &newOwner) != nil {
			return
		}
		w.nameOwnerChanged(name, newOwner)
	case firewalldReloaded:
		w.mu.Lock()
		fromFirewalld := w.firewalldOwner != "" && m.Sender() == w.firewalldOwner
		w.mu.Unlock()
		if fromFirewalld {
			w.requestRestore()
		}
	}
}

// requestRestore asks the restoring worker to run; one pending restore
// covers any number of requests.
func (w *signalWatch) requestRestore() {
	select {
	case w.reload <- struct{}{}:
	default:
	}
}

func (w *signalWatch) nameOwnerChanged(name, newOwner string) {
	switch {
	case name == firewalldName:
		w.setFirewalldOwner(newOwner)
		if newOwner != "" {
			// A firewalld that starts knows nothing of netgrant's bridges.
			w.requestRestore()
		}
	case name == resolved.BusName && newOwner != "":
		select {
		case w.resolvedStarted <- struct{}{}:
		default:
		}
	case strings.HasPrefix(name, ":") && newOwner == "":
		w.srv.calls.callerGone(name)
		w.mu.Lock()
		w.gone = append(w.gone, name)
		w.mu.Unlock()
		select {
		case w.goneReady <- struct{}{}:
		default:
		}
	}
}

func (w *signalWatch) setFirewalldOwner(owner string) {
	w.mu.Lock()
	w.firewalldOwner = owner
	w.mu.Unlock()
}

func (w *signalWatch) dropHolds() {
	for range w.goneReady {
		w.mu.Lock()
		gone := w.gone
		w.gone = nil
		w.mu.Unlock()
		for _, name := range gone {
			w.srv.manager.HolderGone(w.srv.holder(name))
		}
	}
}

func (w *signalWatch) restoreFirewall() {
	for range w.reload {
		w.srv.log.Info("firewalld started or reloaded: restoring netgrant's rules and zone")
		w.srv.manager.RestoreFirewall()
		w.srv.log.Info("netgrant's rules and zone restored")
	}
}

func (w *signalWatch) restoreDNS() {
	for range w.resolvedStarted {
		w.srv.log.Info("systemd-resolved started: registering the networks' domains again")
		w.srv.manager.RestoreDNS()
	}
}

// callTracker knows each caller's calls in progress, so that they are
// cancelled — pending polkit checks withdrawn — when the caller leaves,
// and so that no connection has more than maxCallsPerConnection.
type callTracker struct {
	mu       sync.Mutex
	byCaller map[string]map[*callEntry]bool
}

type callEntry struct{ cancel context.CancelCauseFunc }

var errCallerLeft = errors.New("the caller left the bus")

// begin tracks a call of sender's until done is called; false means the
// sender already has maxCallsPerConnection calls in progress.
func (t *callTracker) begin(sender string) (ctx context.Context, done func(), ok bool) {
	t.mu.Lock()
	if len(t.byCaller[sender]) >= maxCallsPerConnection {
		t.mu.Unlock()
		return nil, nil, false
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	e := &callEntry{cancel: cancel}
	if t.byCaller[sender] == nil {
		t.byCaller[sender] = map[*callEntry]bool{}
	}
	t.byCaller[sender][e] = true
	t.mu.Unlock()
	return ctx, func() {
		t.mu.Lock()
		delete(t.byCaller[sender], e)
		if len(t.byCaller[sender]) == 0 {
			delete(t.byCaller, sender)
		}
		t.mu.Unlock()
		cancel(nil)
	}, true
}

func (t *callTracker) callerGone(sender string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for e := range t.byCaller[sender] {
		e.cancel(errCallerLeft)
	}
}

// cancelAll abandons every call in progress, for cause.
func (t *callTracker) cancelAll(cause error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, entries := range t.byCaller {
		for e := range entries {
			e.cancel(cause)
		}
	}
}
