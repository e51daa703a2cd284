// Package service is netgrant's core: the taps and networks users hold, who
// may act on them, their quotas, and their setup and teardown. It knows
// nothing of D-Bus; the dbus package translates calls into these methods.
package service

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service/config"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/neigh"
	"github.com/netgrant/netgrant/service/subnet"
	"github.com/netgrant/netgrant/service/tap"
)

// AuthCheck is one polkit action to check, with its details.
type AuthCheck struct {
	Action  string
	Details map[string]string
}

// Authorizer decides one call's check for its caller. It returns nil when
// polkit allows it, else an *Error of kind AccessDenied, NotOwner (for
// names.ActionManage), QuotaExceeded (too many checks pending) or
// InteractiveAuthorizationRequired. Each call is authorized by exactly one
// action, so its caller sees at most one password prompt.
type Authorizer interface {
	Authorize(ctx context.Context, check AuthCheck) error
}

// Caller is who makes a call: a uid/gid and the connection that will hold
// what the call creates.
type Caller struct {
	UID, GID uint32
	Holder   string
	Auth     Authorizer
}

// Observer hears of every object appearing, changing and going away, so the
// D-Bus layer can export objects and emit signals. Calls come with the
// manager's lock held, in the order of the changes: an Observer must not
// call back into the Manager, nor wait for anything but sending.
type Observer interface {
	TapAdded(TapInfo)
	TapChanged(TapInfo)
	TapRemoved(name string)
	NetworkAdded(NetworkInfo)
	NetworkChanged(NetworkInfo)
	NetworkRemoved(name string)
}

// Options configure a Manager.
type Options struct {
	Config   config.Config
	StateDir string
	// Kernel is what the core changes the host through: Linux(), or a
	// fake in unit tests.
	Kernel Kernel
	Hooks  Hooks
	// Firewall is nil where neither nftables nor iptables works: taps
	// work, NAT networks are Unsupported.
	Firewall firewall.Firewall
	// Zones, if set, is the host firewall manager's zone for the bridges.
	Zones Zones
	// Resolver, if set, is the host's DNS resolver, told of each
	// network's domain.
	Resolver Resolver
	// DnsmasqUnits runs each network's dnsmasq as an instance of the
	// netgrant-dnsmasq@ systemd unit instead of as a child; StateDir must
	// then be where that unit looks (/run/netgrant).
	DnsmasqUnits bool
	Log          *slog.Logger
	Observer     Observer
	// ObjectID names a tap ("tap") or network ("network") for the `object`
	// detail of org.netgrant.manage, the way clients address it.
	ObjectID func(kind, name string) string
}

// Zones puts bridges into the zone of the host's firewall manager that
// lets guests' traffic past its own rules (firewalld's netgrant zone);
// netgrant's rules still decide. Where there is no such manager running
// both do nothing.
type Zones interface {
	Add(bridge string) error
	Remove(bridge string) error
}

// Resolver makes a bridge's gateway the host's DNS server for the
// network's domain (systemd-resolved). Where none runs both do nothing.
type Resolver interface {
	Register(ifindex int, servers []netip.Addr, domain string) error
	Revert(ifindex int) error
}

// Manager owns every tap and network netgrant created.
//
// Its lock guards the maps and the resources' fields, never slow work: a
// call looks and claims under it (see decide), then builds or tears down
// the resource it claimed without it — hooks, dnsmasq, netlink — so one
// caller's slow hook holds up nobody else; a function named …Locked wants
// it held. The firewall, which every network shares, has locks of its own
// (fwState).
//
// Lock order: a tap's attachMu or a network's guests.writeMu, then
// Manager.mu, then the firewall's applyMu and mu, then a network's
// guests.mu.
type Manager struct {
	opts   Options
	kernel Kernel
	log    *slog.Logger
	// machineID tells this machine's networks' IPv6 /64s from another's
	// of the same name; without one they derive from the name alone.
	machineID string
	// pools6 hold every network's IPv6 /64: the configuration's, else
	// the machine's own /48.
	pools6 []netip.Prefix
	// neigh knows the guests' IPv6 addresses; set by Run, before Recover.
	neigh *neigh.Watcher

	mu       sync.Mutex
	taps     map[string]*tapRes
	networks map[string]*netRes
	// pendingTaps counts, per uid, taps being set up: they count against
	// the quota before they are in taps.
	pendingTaps map[uint32]int
	// dnsmasqs are the running dnsmasq instances by directory.
	dnsmasqs map[string]DnsmasqProcess
	// working counts the calls and events that claimed something and are
	// building or tearing it down; once stopping is set, no more start.
	working  sync.WaitGroup
	stopping bool

	// fw is what the firewall holds, with locks of its own, taken after
	// mu (see fwState).
	fw *fwState
}

// New returns a Manager with nothing in it.
func New(opts Options) *Manager {
	id, _ := os.ReadFile("/etc/machine-id")
	machineID := strings.TrimSpace(string(id))
	pools6 := opts.Config.SubnetPools6
	if len(pools6) == 0 {
		pools6 = []netip.Prefix{subnet.DefaultPool6(machineID)}
	}
	return &Manager{
		opts:        opts,
		kernel:      opts.Kernel,
		log:         opts.Log,
		machineID:   machineID,
		pools6:      pools6,
		taps:        map[string]*tapRes{},
		networks:    map[string]*netRes{},
		pendingTaps: map[uint32]int{},
		dnsmasqs:    map[string]DnsmasqProcess{},
		fw:          newFWState(opts.Firewall),
	}
}

// Run follows the kernel's news of taps — removed, made persistent, given
// away — and the first frames of guests whose MAC is being learnt, until
// ctx ends. It returns once the watches are in place.
func (m *Manager) Run(ctx context.Context) error {
	if err := tap.Watch(ctx, tap.Events{Gone: m.tapGone, Changed: m.tapChanged}); err != nil {
		return err
	}
	w, err := neigh.Watch(ctx, m.neighboursChanged)
	if err != nil {
		return err
	}
	m.neigh = w
	if m.opts.Firewall == nil {
		return nil
	}
	learner, err := firewall.ListenLearning()
	if err != nil {
		m.log.Warn("guests' MACs cannot be learnt: taps created with learn_mac will carry nothing", "err", err)
		return nil
	}
	go learner.Run(ctx, m.macLearned)
	return nil
}

// authorize asks for the one check a call needs (none: nil) before any side
// effect. A call abandoned meanwhile (its caller gone, netgrantd stopping)
// fails with why, whatever polkit said.
func (m *Manager) authorize(ctx context.Context, c Caller, check *AuthCheck) error {
	var err error
	if check != nil {
		err = c.Auth.Authorize(ctx, *check)
	}
	if ctx.Err() != nil {
		return Errorf(Failed, "%v", context.Cause(ctx))
	}
	return err
}

// decide is every state-changing call's way through polkit: look
// examines the state under the lock and names what it saw and the one
// check the call needs; once polkit allows it, look runs again under the
// lock and, if it sees the same (else changed is the answer), claim takes
// what the call will work on, still under the lock. No lock is held while
// polkit is asked. When decide succeeds the call counts as working, which
// Shutdown waits for, until it calls done.
func decide[T comparable](ctx context.Context, m *Manager, c Caller, look func() (T, *AuthCheck, error), changed error, claim func(T) error) (claimed T, done func(), err error) {
	m.mu.Lock()
	seen, check, err := look()
	m.mu.Unlock()
	if err != nil {
		return seen, nil, err
	}
	if err := m.authorize(ctx, c, check); err != nil {
		return seen, nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now, _, err := look()
	switch {
	case err != nil:
		return now, nil, err
	case now != seen:
		return now, nil, changed
	}
	done, ok := m.startWorkLocked()
	if !ok {
		return seen, nil, ErrStopping
	}
	if err := claim(now); err != nil {
		done()
		return now, nil, err
	}
	return now, done, nil
}

// ErrStopping answers a call that meets netgrantd stopping.
var ErrStopping = Errorf(Failed, "netgrantd is stopping: call again once it is back (the next call starts it)")

// startWorkLocked counts a call's or an event's work (a holder leaving, a
// tap going) until done is called, which Shutdown waits for; false means
// netgrantd is stopping and the next one will see to it.
func (m *Manager) startWorkLocked() (done func(), ok bool) {
	if m.stopping {
		return nil, false
	}
	m.working.Add(1)
	return m.working.Done, true
}

func (m *Manager) manageCheck(kind, name string) *AuthCheck {
	return &AuthCheck{Action: names.ActionManage, Details: map[string]string{"object": m.opts.ObjectID(kind, name)}}
}

func uidString(uid uint32) string { return strconv.FormatUint(uint64(uid), 10) }

// GetNetwork returns one network's current state, or the API's NotFound.
func (m *Manager) GetNetwork(name string) (NetworkInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.readyNetwork(name)
	if !ok {
		return NetworkInfo{}, Errorf(NotFound, "there is no network %q", name)
	}
	return m.networkInfo(n), nil
}

// Holds reports whether netgrantd has something to watch: a tap, a network
// (being set up or removed too), or a tap being set up.
func (m *Manager) Holds() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.taps) > 0 || len(m.networks) > 0 || len(m.pendingTaps) > 0
}

// Shutdown starts no more work — calls past polkit are told to call
// again, events are left to the next start — lets the work in progress
// finish (a setup or a teardown, hooks included), and then leaves
// everything as it is: a restart or upgrade must not take the network
// from running VMs, and the next daemon adopts what is still held (see
// Recover).
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.stopping = true
	m.mu.Unlock()
	m.working.Wait()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.log.Info("stopping: held taps and networks stay for the next start", "taps", len(m.taps), "networks", len(m.networks))
}

// addFirewall installs n's rules beside the other networks'.
func (m *Manager) addFirewall(n *netRes) error {
	gen, err := m.fw.add(n.firewall())
	if err != nil {
		return err
	}
	n.fwGen = gen
	m.addToZone(n.bridge)
	return nil
}

func (m *Manager) addToZone(bridge string) {
	if m.opts.Zones == nil {
		return
	}
	if err := m.opts.Zones.Add(bridge); err != nil {
		m.log.Warn("putting the bridge into the firewall zone: guests may be cut off by the host's firewall", "bridge", bridge, "err", err)
	}
}

func (m *Manager) removeFirewall(n firewall.Network) error {
	if m.opts.Zones != nil {
		if err := m.opts.Zones.Remove(n.Bridge); err != nil {
			m.log.Warn("taking the bridge out of the firewall zone", "bridge", n.Bridge, "err", err)
		}
	}
	return m.fw.remove(n.Bridge)
}

// RestoreFirewall puts back netgrant's rules, as after a firewalld reload
// flushed them, and the bridges into the firewall zone, as after firewalld
// started or reloaded. A failure is only logged: the networks go on working as
// well as they can.
func (m *Manager) RestoreFirewall() {
	if m.opts.Firewall == nil {
		return
	}
	nets, err := m.fw.restore()
	if err != nil {
		m.log.Warn("restoring firewall rules", "err", err)
	}
	for _, n := range nets {
		m.addToZone(n.Bridge)
	}
}

func (m *Manager) hookEnvForNetwork(n *netRes) hooks.Env {
	return hooks.Env{IfName: n.bridge, Bridge: n.bridge, Network: n.name, Subnet: n.plan.Prefix.String(), UID: n.owner}
}

func addrPrefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
