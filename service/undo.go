package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/netgrant/netgrant/service/bridge"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/tap"
)

// A resource's undo steps are its journal: setup records each step in the
// state directory before the side effect it undoes, so a daemon that dies
// at any point leaves enough behind for the next one to undo everything.
// Teardown runs the steps newest first; hooks and built-in steps are the
// same kind of thing. Every step is idempotent: it may run after what it
// undoes already vanished (a tap whose last fd closed), or was never done
// (the daemon died between recording the step and acting).

// step is one undo step: Op says which, and exactly the field that Op
// names carries what it needs.
type step struct {
	Op       string            `json:"op"`
	Tap      *tapRef           `json:"tap,omitempty"`      // delete-tap
	Hooks    *hookRun          `json:"hooks,omitempty"`    // run-down-hooks
	Bridge   string            `json:"bridge,omitempty"`   // delete-bridge
	Firewall *firewall.Network `json:"firewall,omitempty"` // remove-firewall
	Dir      string            `json:"dir,omitempty"`      // remove-dir, stop-dnsmasq
	Guest    *guestRef         `json:"guest,omitempty"`    // forget-guest
	Link     *linkRef          `json:"link,omitempty"`     // unregister-dns
}

// Undo operations.
const (
	opDeleteTap      = "delete-tap"
	opRunDownHooks   = "run-down-hooks"
	opDeleteBridge   = "delete-bridge"
	opRemoveFirewall = "remove-firewall"
	opRemoveDir      = "remove-dir"
	opStopDnsmasq    = "stop-dnsmasq"
	opForgetGuest    = "forget-guest"
	opUnregisterDNS  = "unregister-dns"
)

// tapRef names one tap device: the index tells it from a later device
// that took the same name.
type tapRef struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
}

// linkRef names one link by name and index, so a later link of the same
// name is not mistaken for it.
type linkRef struct {
	Name  string `json:"name"`
	Index int    `json:"index"`
}

// hookRun is a run of the down hooks, with the environment they see, or,
// for a tap, FromRecord: the environment the record's tap has when they
// run (the tap may have moved since the step was recorded).
type hookRun struct {
	Event      hooks.Event `json:"event"`
	Env        hooks.Env   `json:"env"`
	FromRecord bool        `json:"from_record,omitempty"`
}

func deleteTapStep(name string, index int) step {
	return step{Op: opDeleteTap, Tap: &tapRef{Name: name, Index: index}}
}
func downHooksStep(event hooks.Event, env hooks.Env) step {
	return step{Op: opRunDownHooks, Hooks: &hookRun{Event: event, Env: env}}
}
func tapDownHooksStep() step {
	return step{Op: opRunDownHooks, Hooks: &hookRun{Event: hooks.TapDown, FromRecord: true}}
}
func deleteBridgeStep(name string) step { return step{Op: opDeleteBridge, Bridge: name} }
func removeFirewallStep(n firewall.Network) step {
	return step{Op: opRemoveFirewall, Firewall: &n}
}
func removeDirStep(dir string) step   { return step{Op: opRemoveDir, Dir: dir} }
func stopDnsmasqStep(dir string) step { return step{Op: opStopDnsmasq, Dir: dir} }
func forgetGuestStep(g guestRef) step { return step{Op: opForgetGuest, Guest: &g} }
func unregisterDNSStep(bridge string, index int) step {
	return step{Op: opUnregisterDNS, Link: &linkRef{Name: bridge, Index: index}}
}

// check reports a step that a restarted daemon could not carry out as
// recorded: an unknown op, or its field missing or malformed.
func (s step) check() error {
	var ok bool
	switch s.Op {
	case opDeleteTap:
		ok = s.Tap != nil && tap.IsTapName(s.Tap.Name) && s.Tap.Index > 0
	case opRunDownHooks:
		ok = s.Hooks != nil && hooks.ValidDownEvent(s.Hooks.Event)
	case opDeleteBridge:
		ok = bridge.IsBridgeName(s.Bridge)
	case opRemoveFirewall:
		ok = s.Firewall != nil && bridge.IsBridgeName(s.Firewall.Bridge) && s.Firewall.Subnet.IsValid() && s.Firewall.Gateway.IsValid()
	case opRemoveDir, opStopDnsmasq:
		ok = filepath.IsAbs(s.Dir)
	case opForgetGuest:
		ok = s.Guest != nil && tap.IsTapName(s.Guest.Tap) && s.Guest.Index > 0 && (s.Guest.Dir == "" || filepath.IsAbs(s.Guest.Dir) && s.Guest.IPv4.Is4())
	case opUnregisterDNS:
		ok = s.Link != nil && bridge.IsBridgeName(s.Link.Name) && s.Link.Index > 0
	default:
		return fmt.Errorf("unknown undo step %q", s.Op)
	}
	if !ok {
		return fmt.Errorf("undo step %q is incomplete or malformed", s.Op)
	}
	return nil
}

// record is what the state directory keeps of one resource.
type record struct {
	Kind     string    `json:"kind"` // "tap" or "network"
	Name     string    `json:"name"`
	Complete bool      `json:"complete"`
	Tap      *tapSaved `json:"tap,omitempty"`
	Network  *netSaved `json:"network,omitempty"`
	Steps    []step    `json:"steps"`
	path     string
}

type tapSaved struct {
	Index   int    `json:"index"`
	Owner   uint32 `json:"owner"`
	MAC     string `json:"mac"`
	MTU     uint32 `json:"mtu"`
	Queues  uint32 `json:"queues"`
	VnetHdr bool   `json:"vnet_hdr"`
	Bridge  string `json:"bridge"`
	Network string `json:"network"`
	// IPv4 is the address reserved for the guest on Network.
	IPv4 netip.Addr `json:"ipv4"`
	// Learning says MAC is still to be learnt from the guest.
	Learning bool `json:"learning,omitempty"`
	// Holds says the tap holds Network.
	Holds bool `json:"holds,omitempty"`
	// Subnet is Network's, for the hooks.
	Subnet string `json:"subnet,omitempty"`
}

// tapHookEnv is what the hooks of a tap record's tap see now.
func (r *record) tapHookEnv() hooks.Env {
	env := hooks.Env{IfName: r.Name}
	if t := r.Tap; t != nil {
		env.Bridge, env.Network, env.MAC, env.UID, env.Subnet = t.Bridge, t.Network, t.MAC, t.Owner, t.Subnet
	}
	return env
}

type netSaved struct {
	Owner      uint32   `json:"owner"`
	Bridge     string   `json:"bridge"`
	Subnet     string   `json:"subnet"`
	DHCP       bool     `json:"dhcp"`
	DNS        bool     `json:"dns"`
	Outbound   bool     `json:"outbound"`
	MTU        uint32   `json:"mtu"`
	Persistent bool     `json:"persistent"`
	Holders    []string `json:"holders"`
	// Subnet6 is the network's IPv6 /64; empty without IPv6.
	Subnet6 string `json:"subnet6,omitempty"`
	// Forwards are the network's port forwards, put back on adoption.
	Forwards []PortForward `json:"forwards,omitempty"`
	// Dnsmasq is what its dnsmasq runs under as netgrantd's child.
	Dnsmasq dnsmasq.Identity `json:"dnsmasq,omitempty"`
}

// newRecord starts the record of a resource; id tells it from others of
// its kind, even ones that had the same name before.
func (m *Manager) newRecord(kind, name, id string) *record {
	return &record{Kind: kind, Name: name, path: filepath.Join(m.opts.StateDir, kind+"-"+id+".json")}
}

// save writes the record atomically: a crash leaves the old or the new.
func (r *record) save() error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := r.path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	if err := os.Rename(tmp, r.path); err != nil {
		return fmt.Errorf("writing state: %w", err)
	}
	return nil
}

func (r *record) has(op string) bool {
	for _, s := range r.Steps {
		if s.Op == op {
			return true
		}
	}
	return false
}

// push records a step; the caller then does what it undoes.
func (r *record) push(s step) error {
	r.Steps = append(r.Steps, s)
	return r.save()
}

// unwind runs every step, newest first, then forgets the resource. A
// failing step is logged and the rest still run: teardown must not stop
// half-way. The administrator's down hooks run once: once they have run,
// the record says so before the next step, so that a daemon killed later
// in the teardown leaves the next one only the built-in steps to redo.
func (m *Manager) unwind(r *record) {
	for len(r.Steps) > 0 {
		s := r.Steps[len(r.Steps)-1]
		if err := m.runStep(r, s); err != nil {
			m.log.Warn("teardown step failed", "resource", r.Kind+" "+r.Name, "step", s.Op, "err", err)
		}
		r.Steps = r.Steps[:len(r.Steps)-1]
		if s.Op == opRunDownHooks && len(r.Steps) > 0 {
			if err := r.save(); err != nil {
				m.log.Warn("recording that the down hooks ran", "resource", r.Kind+" "+r.Name, "err", err)
			}
		}
	}
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("removing state", "path", r.path, "err", err)
	}
}

func (m *Manager) runStep(r *record, s step) error {
	switch s.Op {
	case opDeleteTap:
		return m.kernel.Taps.Delete(s.Tap.Name, s.Tap.Index)
	case opRunDownHooks:
		env := s.Hooks.Env
		if s.Hooks.FromRecord {
			env = r.tapHookEnv()
		}
		m.opts.Hooks.Down(context.Background(), s.Hooks.Event, env)
		return nil
	case opDeleteBridge:
		// Only the network's own: a link someone else made with that
		// name after the step was recorded has another MAC.
		return m.kernel.Bridges.DeleteOwn(s.Bridge, bridge.MACFor(r.Name))
	case opRemoveFirewall:
		if m.opts.Firewall == nil {
			return errors.New("no firewall backend: cannot remove the network's rules")
		}
		return m.removeFirewall(*s.Firewall)
	case opRemoveDir:
		return os.RemoveAll(s.Dir)
	case opStopDnsmasq:
		m.mu.Lock()
		inst, ok := m.dnsmasqs[s.Dir]
		delete(m.dnsmasqs, s.Dir)
		m.mu.Unlock()
		switch {
		case ok:
			return inst.Stop()
		case m.opts.DnsmasqUnits:
			return m.kernel.Dnsmasqs.StopUnit(strings.TrimPrefix(filepath.Base(s.Dir), "dnsmasq-"))
		}
		return m.kernel.Dnsmasqs.StopOrphan(s.Dir)
	case opForgetGuest:
		return m.forgetGuest(*s.Guest)
	case opUnregisterDNS:
		return m.unregisterDNS(*s.Link)
	}
	return fmt.Errorf("unknown undo step %q", s.Op)
}

// parse reads a record written by save, checking every step.
func (r *record) parse(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(r); err != nil {
		return err
	}
	if r.Kind != "tap" && r.Kind != "network" {
		return fmt.Errorf("unknown kind %q", r.Kind)
	}
	for i, s := range r.Steps {
		if err := s.check(); err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
	}
	return nil
}

// loadRecords reads every record in the state directory. A record that
// cannot be read is logged and left alone: it would take guessing to undo.
func (m *Manager) loadRecords(log *slog.Logger) []*record {
	entries, err := os.ReadDir(m.opts.StateDir)
	if err != nil {
		log.Warn("reading state directory", "err", err)
		return nil
	}
	var out []*record
	for _, e := range entries {
		path := filepath.Join(m.opts.StateDir, e.Name())
		if strings.HasSuffix(e.Name(), ".tmp") {
			os.Remove(path)
			continue
		}
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			log.Warn("reading state", "path", path, "err", err)
			continue
		}
		r := &record{path: path}
		if err := r.parse(data); err != nil {
			log.Warn("unreadable state: leaving it alone", "path", path, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out
}
