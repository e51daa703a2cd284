// Package service is netgrant's core: the taps and networks users hold, who
// may act on them, their quotas, and their setup and teardown. It knows
// nothing of D-Bus; the dbus package translates calls into these methods.
package service

import (
	"context"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"

	"github.com/netgrant/netgrant/service/config"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/tap"
)

// Polkit action ids, as the API names them.
const (
	ActionCreateTap        = "org.netgrant.create-tap"
	ActionUseNetwork       = "org.netgrant.use-network"
	ActionAttachBridge     = "org.netgrant.attach-bridge"
	ActionCreateNATNetwork = "org.netgrant.create-nat-network"
	ActionPersist          = "org.netgrant.persist"
	ActionManage           = "org.netgrant.manage"
)

// AuthCheck is one polkit action to check, with its details.
type AuthCheck struct {
	Action  string
	Details map[string]string
}

// Authorizer decides one call's check for its caller. It returns nil when
// polkit allows it, else an *Error of kind AccessDenied, NotOwner (for
// ActionManage), QuotaExceeded (too many checks pending) or
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
// manager's lock held: an Observer must not call back into the Manager.
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
	Hooks    *hooks.Runner
	// Firewall is nil where iptables is missing: taps work, NAT networks
	// are Unsupported.
	Firewall firewall.Firewall
	Log      *slog.Logger
	Observer Observer
	// ObjectID names a tap ("tap") or network ("network") for the `object`
	// detail of org.netgrant.manage, the way clients address it.
	ObjectID func(kind, name string) string
}

// Manager owns every tap and network netgrant created.
type Manager struct {
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	taps     map[string]*tapRes
	networks map[string]*netRes
	// dnsmasqs are the running dnsmasq instances by directory.
	dnsmasqs map[string]*dnsmasq.Instance
}

// New returns a Manager with nothing in it.
func New(opts Options) *Manager {
	return &Manager{
		opts:     opts,
		log:      opts.Log,
		taps:     map[string]*tapRes{},
		networks: map[string]*netRes{},
		dnsmasqs: map[string]*dnsmasq.Instance{},
	}
}

// Run follows the kernel's news of taps — removed, made persistent, given
// away — until ctx ends. It returns once the watch is in place.
func (m *Manager) Run(ctx context.Context) error {
	return tap.Watch(ctx, tap.Events{Gone: m.tapGone, Changed: m.tapChanged})
}

// authorize asks for the one check a call needs (none: nil) before any side
// effect, and fails if the caller has gone meanwhile.
func (m *Manager) authorize(ctx context.Context, c Caller, check *AuthCheck) error {
	if check != nil {
		if err := c.Auth.Authorize(ctx, *check); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return Wrap(Failed, ctx.Err(), "the caller left")
	}
	return nil
}

func (m *Manager) manageCheck(kind, name string) *AuthCheck {
	return &AuthCheck{Action: ActionManage, Details: map[string]string{"object": m.opts.ObjectID(kind, name)}}
}

func uidString(uid uint32) string { return strconv.FormatUint(uint64(uid), 10) }

// GetNetwork returns one network's current state, or the API's NotFound.
func (m *Manager) GetNetwork(name string) (NetworkInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, ok := m.networks[name]
	if !ok {
		return NetworkInfo{}, Errorf(NotFound, "there is no network %q", name)
	}
	return m.networkInfo(n), nil
}

// Shutdown waits for the call in progress and then leaves everything as it
// is: a restart or upgrade must not take the network from running VMs, and
// the next daemon adopts what is still held (see Recover). The lock stays
// taken, so no call starts any more work before the process exits.
func (m *Manager) Shutdown() {
	m.mu.Lock()
	m.log.Info("stopping: held taps and networks stay for the next start", "taps", len(m.taps), "networks", len(m.networks))
}

func (m *Manager) firewallNetworks() []firewall.Network {
	out := make([]firewall.Network, 0, len(m.networks))
	for _, n := range m.networks {
		out = append(out, n.firewall())
	}
	return out
}

func (m *Manager) hookEnvForNetwork(n *netRes) hooks.Env {
	return hooks.Env{IfName: n.bridge, Bridge: n.bridge, Network: n.name, Subnet: n.plan.Prefix.String(), UID: n.owner}
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}
