package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
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

// Undo operations.
const (
	opDeleteTap      = "delete-tap"      // name, index
	opRunDownHooks   = "run-down-hooks"  // event and the hook environment
	opDeleteBridge   = "delete-bridge"   // name
	opRemoveFirewall = "remove-firewall" // bridge, subnet, gateway, outbound
	opRemoveDir      = "remove-dir"      // path
	opStopDnsmasq    = "stop-dnsmasq"    // dir, network
)

type step struct {
	Op   string            `json:"op"`
	Args map[string]string `json:"args,omitempty"`
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
func (r *record) push(op string, args map[string]string) error {
	r.Steps = append(r.Steps, step{Op: op, Args: args})
	return r.save()
}

// unwind runs every step, newest first, then forgets the resource. A
// failing step is logged and the rest still run: teardown must not stop
// half-way.
func (m *Manager) unwind(r *record) {
	for i := len(r.Steps) - 1; i >= 0; i-- {
		s := r.Steps[i]
		if err := m.runStep(s); err != nil {
			m.log.Warn("teardown step failed", "resource", r.Kind+" "+r.Name, "step", s.Op, "err", err)
		}
	}
	r.Steps = nil
	if err := os.Remove(r.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		m.log.Warn("removing state", "path", r.path, "err", err)
	}
}

func (m *Manager) runStep(s step) error {
	a := s.Args
	switch s.Op {
	case opDeleteTap:
		index, _ := strconv.Atoi(a["index"])
		return tap.Delete(a["name"], index)
	case opRunDownHooks:
		uid, _ := strconv.ParseUint(a["uid"], 10, 32)
		m.opts.Hooks.Down(context.Background(), hooks.Event(a["event"]), hooks.Env{
			IfName: a["ifname"], Bridge: a["bridge"], Network: a["network"], Subnet: a["subnet"], MAC: a["mac"], UID: uint32(uid),
		})
		return nil
	case opDeleteBridge:
		return bridge.Delete(a["name"])
	case opRemoveFirewall:
		n, err := firewallFromArgs(a)
		if err != nil {
			return err
		}
		if m.opts.Firewall == nil {
			return errors.New("iptables is missing: cannot remove the network's rules")
		}
		return m.opts.Firewall.Remove(n)
	case opRemoveDir:
		return os.RemoveAll(a["path"])
	case opStopDnsmasq:
		if inst, ok := m.dnsmasqs[a["dir"]]; ok {
			delete(m.dnsmasqs, a["dir"])
			return inst.Stop()
		}
		return stopOrphanDnsmasq(a["dir"])
	}
	return fmt.Errorf("unknown undo step %q", s.Op)
}

// stopOrphanDnsmasq stops the dnsmasq of dir that an earlier netgrantd
// left running. Without dnsmasq's account only one still running as root
// can be found; one that dropped to an account now gone cannot be told
// from a stranger's process.
func stopOrphanDnsmasq(dir string) error {
	account, err := dnsmasq.DedicatedAccount()
	if err != nil {
		account.UID = 0
	}
	return dnsmasq.StopOrphan(dir, account)
}

func hookArgs(event hooks.Event, env hooks.Env) map[string]string {
	return map[string]string{
		"event": string(event), "ifname": env.IfName, "bridge": env.Bridge, "network": env.Network,
		"subnet": env.Subnet, "mac": env.MAC, "uid": uidString(env.UID),
	}
}

func firewallArgs(n firewall.Network) map[string]string {
	return map[string]string{
		"bridge": n.Bridge, "subnet": n.Subnet.String(), "gateway": n.Gateway.String(), "outbound": strconv.FormatBool(n.Outbound),
	}
}

func firewallFromArgs(a map[string]string) (firewall.Network, error) {
	subnet, err := netip.ParsePrefix(a["subnet"])
	if err != nil {
		return firewall.Network{}, err
	}
	gateway, err := netip.ParseAddr(a["gateway"])
	if err != nil {
		return firewall.Network{}, err
	}
	return firewall.Network{Bridge: a["bridge"], Subnet: subnet, Gateway: gateway, Outbound: a["outbound"] == "true"}, nil
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
		if err := json.Unmarshal(data, r); err != nil {
			log.Warn("unreadable state: leaving it alone", "path", path, "err", err)
			continue
		}
		out = append(out, r)
	}
	return out
}
