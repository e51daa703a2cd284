package service

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/tap"
)

// TapRequest is a CreateTap call's options, decoded. Zero values mean "not
// given": MTU 0 takes the bridge's (or 1500), MAC "" is generated.
type TapRequest struct {
	Network string
	Bridge  string
	Queues  uint32
	VnetHdr bool
	MAC     string
	MTU     uint32
	// IPv4, with Network, is the address to reserve for the guest.
	IPv4 netip.Addr
	// LearnMAC, on a network and without MAC, makes the guest's MAC the
	// source of its first frame that no other guest of the network has.
	LearnMAC bool
	// Hold, on a network, makes the tap one of the network's holders.
	Hold bool
}

// TapInfo is a tap as clients see it.
type TapInfo struct {
	Name    string
	Owner   uint32
	MAC     string // "" while it is being learnt
	MTU     uint32
	Queues  uint32
	VnetHdr bool
	Bridge  string
	Network string
	IPv4    string
	// IPv6 are the guest's addresses in its network's /64, as the
	// network sees it use them.
	IPv6 []string
}

type tapRes struct {
	name  string
	index int
	owner uint32
	// mac is the guest's; nil while learning, until the guest's first
	// frame says (see macLearned).
	mac      net.HardwareAddr
	learning bool
	// holds says the tap holds its network (option hold), as
	// tapHolder(name, index).
	holds   bool
	mtu     uint32
	queues  uint32
	vnetHdr bool
	bridge  string
	network string
	// ipv4 is the address reserved for the guest on network, if any.
	ipv4 netip.Addr
	rec  *record
	// attachMu orders the changes of where the tap is (AttachBridge), of
	// its guest's MAC (macLearned) and its teardown, each of which writes
	// its record: one that finds the tap no longer the manager's leaves
	// the record to the teardown.
	attachMu sync.Mutex
}

// tapTarget is where a tap is to be plugged: a netgrant network or an
// allowed host bridge (or nowhere).
type tapTarget struct {
	network *netRes
	bridge  string
}

// bridgeMTU is the MTU of the bridge a tap goes onto; a network's bridge
// that is gone means its network was removed meanwhile.
func (m *Manager) bridgeMTU(target tapTarget) (uint32, error) {
	mtu, err := m.kernel.Bridges.MTU(target.bridgeName())
	if err != nil {
		if target.network != nil && m.networkGone(target.network) {
			return 0, Errorf(NotFound, "network %s was removed meanwhile", target.network.name)
		}
		return 0, Wrap(Failed, err, "reading the MTU of bridge %s", target.bridgeName())
	}
	return uint32(mtu), nil
}

func (m *Manager) tapInfo(t *tapRes) TapInfo {
	info := TapInfo{
		Name: t.name, Owner: t.owner, MAC: macString(t.mac), MTU: t.mtu,
		Queues: t.queues, VnetHdr: t.vnetHdr, Bridge: t.bridge, Network: t.network,
	}
	if t.ipv4.IsValid() {
		info.IPv4 = t.ipv4.String()
	} else if n, ok := m.networks[t.network]; ok && t.mac != nil {
		info.IPv4 = n.guests.leaseIPv4(info.MAC)
	}
	if n, ok := m.networks[t.network]; ok && t.mac != nil {
		info.IPv6 = n.guests.ipv6(info.MAC)
	}
	return info
}

// macString is mac as clients see it: "" for none (a MAC being learnt).
func macString(mac net.HardwareAddr) string {
	if mac == nil {
		return ""
	}
	return mac.String()
}

func (r TapRequest) validate() error {
	if r.Network != "" && r.Bridge != "" {
		return Errorf(InvalidArgument, "options network and bridge exclude each other: give one")
	}
	if r.Network != "" && !ValidNetworkName(r.Network) {
		return Errorf(InvalidArgument, "option network: %q is not a valid network name", r.Network)
	}
	if r.Bridge != "" && !validIfName(r.Bridge) {
		return Errorf(InvalidArgument, "option bridge: %q is not a valid interface name", r.Bridge)
	}
	if r.Queues < 1 || r.Queues > 16 {
		return Errorf(InvalidArgument, "option queues: %d is out of range 1..16", r.Queues)
	}
	if r.MTU != 0 && !validMTU(r.MTU) {
		return Errorf(InvalidArgument, "option mtu: %d is out of range 68..65535", r.MTU)
	}
	if r.MAC != "" {
		if _, err := parseGuestMAC(r.MAC); err != nil {
			return err
		}
	}
	if r.IPv4.IsValid() && r.Network == "" {
		return Errorf(InvalidArgument, "option ipv4 reserves an address of a netgrant network: give option network too")
	}
	if r.LearnMAC && r.MAC != "" {
		return Errorf(InvalidArgument, "options learn_mac and mac exclude each other: learn_mac is for a guest whose MAC the caller cannot know")
	}
	if r.LearnMAC && r.Network == "" && r.Bridge == "" {
		return Errorf(InvalidArgument, "option learn_mac needs a netgrant network: give option network")
	}
	if r.Hold && r.Network == "" && r.Bridge == "" {
		return Errorf(InvalidArgument, "option hold keeps a netgrant network alive: give option network")
	}
	return nil
}

// checkOnNetwork refuses learn_mac and hold for a tap whose bridge option
// named a host bridge, not a network's.
func (r TapRequest) checkOnNetwork(target tapTarget) error {
	if target.network != nil {
		return nil
	}
	switch {
	case r.LearnMAC:
		return Errorf(InvalidArgument, "option learn_mac: bridge %q is no netgrant network's: a guest's MAC is learnt on a network only", r.Bridge)
	case r.Hold:
		return Errorf(InvalidArgument, "option hold: bridge %q is no netgrant network's: a tap holds a network only", r.Bridge)
	}
	return nil
}

// checkRequestedAddress refuses an ipv4 option n cannot give, under the
// lock. A network's guest addresses are its DHCP range: all but the
// network, gateway and broadcast addresses.
func checkRequestedAddress(n *netRes, ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return nil
	case ip == n.plan.Gateway:
		return Errorf(InvalidArgument, "option ipv4: %s is the gateway of network %s", ip, n.name)
	case ip.Less(n.plan.DHCPStart) || n.plan.DHCPEnd.Less(ip):
		return Errorf(InvalidArgument, "option ipv4: %s is not a guest address of network %s (%s to %s)", ip, n.name, n.plan.DHCPStart, n.plan.DHCPEnd)
	}
	if _, taken := n.reserved[ip]; taken {
		return Errorf(Exists, "option ipv4: %s is already reserved for another tap on network %s", ip, n.name)
	}
	return nil
}

// resolveTarget finds where network/bridge point and the one check that
// plugging a tap of uid there needs. A host bridge that is a netgrant
// network's bridge counts as that network.
func (m *Manager) resolveTarget(uid uint32, network, br string) (tapTarget, *AuthCheck, error) {
	if br != "" {
		for _, n := range m.networks {
			if n.bridge == br {
				network = n.name
			}
		}
	}
	switch {
	case network != "":
		n, ok := m.readyNetwork(network)
		if !ok {
			return tapTarget{}, nil, Errorf(NotFound, "there is no network %q: create it with CreateNATNetwork first", network)
		}
		if n.owner != uid {
			return tapTarget{network: n}, m.manageCheck("network", n.name), nil
		}
		return tapTarget{network: n}, &AuthCheck{Action: names.ActionUseNetwork, Details: map[string]string{"network": n.name, "owner": uidString(n.owner)}}, nil
	case br != "":
		switch {
		case !m.opts.Config.BridgeAllowed(br) && strings.HasPrefix(br, names.BridgePrefix):
			return tapTarget{}, nil, Errorf(NotFound, "no netgrant network has the bridge %q: create the network first (the bridge of network NAME is ng-NAME: netgrant network create NAME)", br)
		case !m.opts.Config.BridgeAllowed(br):
			return tapTarget{}, nil, Errorf(BridgeNotAllowed, "bridge %q is not listed in [Bridges] Allow= of the netgrant configuration; an administrator must add it", br)
		}
		isBridge, err := m.kernel.Bridges.IsBridge(br)
		if err != nil {
			return tapTarget{}, nil, Wrap(Failed, err, "looking up bridge %q", br)
		}
		if !isBridge {
			return tapTarget{}, nil, Errorf(NotFound, "there is no bridge %q on this host", br)
		}
		return tapTarget{bridge: br}, &AuthCheck{Action: names.ActionAttachBridge, Details: map[string]string{"bridge": br}}, nil
	}
	return tapTarget{}, &AuthCheck{Action: names.ActionCreateTap}, nil
}

func (t tapTarget) bridgeName() string {
	if t.network != nil {
		return t.network.bridge
	}
	return t.bridge
}

func (m *Manager) tapsOf(uid uint32) int {
	count := m.pendingTaps[uid]
	for _, t := range m.taps {
		if t.owner == uid {
			count++
		}
	}
	return count
}

func (m *Manager) checkTapQuota(uid uint32) error {
	if limit := m.opts.Config.TapsPerUser; m.tapsOf(uid) >= limit {
		return Errorf(QuotaExceeded, "user %d already has %d taps, the limit ([Limits] TapsPerUser=%d): close one first", uid, limit, limit)
	}
	return nil
}

// CreateTap makes a tap for c and returns its queue fds, which the caller
// must close once it has handed them on. A tap on the caller's own
// user-<uid> creates that network first, if it is missing; a tap that then
// fails takes the network's hold back.
func (m *Manager) CreateTap(ctx context.Context, c Caller, req TapRequest) (TapInfo, []*os.File, error) {
	if err := req.validate(); err != nil {
		return TapInfo{}, nil, err
	}
	created, err := m.createOwnDefaultNetwork(ctx, &c, req.Network)
	if err != nil {
		return TapInfo{}, nil, err
	}
	info, files, err := m.createTap(ctx, c, req)
	if err != nil && created {
		if releaseErr := m.ReleaseNetwork(c, req.Network); releaseErr != nil {
			m.log.Warn("releasing the network a failed tap created", "network", req.Network, "err", releaseErr)
		}
	}
	return info, files, err
}

// createOwnDefaultNetwork creates the caller's own user-<uid> when a tap
// names it before it exists (API.md, CreateTap), with default options and
// the caller's connection holding it, as CreateNATNetwork would: that call
// is authorized by create-nat-network alone, whose answer then also
// answers the tap's use-network. It reports whether it made c a holder.
func (m *Manager) createOwnDefaultNetwork(ctx context.Context, c *Caller, network string) (bool, error) {
	if owner, _, owned := defaultNetworkOwner(network); !owned || owner != c.UID {
		return false, nil
	}
	// One being made or removed is waited for by CreateNATNetwork.
	m.mu.Lock()
	_, ready := m.readyNetwork(network)
	quota := m.checkTapQuota(c.UID)
	m.mu.Unlock()
	switch {
	case ready:
		return false, nil
	case quota != nil:
		return false, quota
	}
	if _, err := m.CreateNATNetwork(ctx, *c, NetworkRequest{Name: network}); err != nil {
		return false, err
	}
	c.Auth = usingCreated{Authorizer: c.Auth, network: network}
	return true, nil
}

// usingCreated answers the use-network check of the network the call
// itself was authorized to create, and asks polkit for anything else.
type usingCreated struct {
	Authorizer
	network string
}

func (u usingCreated) Authorize(ctx context.Context, check AuthCheck) error {
	if check.Action == names.ActionUseNetwork && check.Details["network"] == u.network {
		return nil
	}
	return u.Authorizer.Authorize(ctx, check)
}

func (m *Manager) createTap(ctx context.Context, c Caller, req TapRequest) (TapInfo, []*os.File, error) {
	look := func() (tapTarget, *AuthCheck, error) {
		target, check, err := m.resolveTarget(c.UID, req.Network, req.Bridge)
		if err == nil {
			err = req.checkOnNetwork(target)
		}
		if err == nil {
			err = m.checkTapQuota(c.UID)
		}
		if err == nil && target.network != nil {
			err = checkRequestedAddress(target.network, req.IPv4)
		}
		return target, check, err
	}
	target, done, err := decide(ctx, m, c, look, Errorf(NotFound, "the network was replaced while polkit was asked: call again"),
		func(tapTarget) error {
			m.pendingTaps[c.UID]++
			return nil
		})
	if err != nil {
		return TapInfo{}, nil, err
	}
	defer done()
	t, files, err := m.setupTap(c, req, target)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pendingTaps[c.UID]--; m.pendingTaps[c.UID] == 0 {
		delete(m.pendingTaps, c.UID)
	}
	if err != nil {
		return TapInfo{}, nil, err
	}
	m.registerTap(t, target.network)
	return m.tapInfo(t), files, nil
}

// registerTap makes t, set up without the lock, one of the manager's. The
// network it was set up on may have gone meanwhile, taking its bridge
// with it: then the tap is detached, as every tap of a network that goes.
func (m *Manager) registerTap(t *tapRes, on *netRes) {
	// The kernel hands a name out again as soon as the last fd of its tap
	// closes, maybe before its removal was reported: that tap is gone.
	if stale, ok := m.taps[t.name]; ok {
		if done, working := m.startWorkLocked(); working {
			released := m.forgetTap(stale)
			go func() {
				defer done()
				m.teardownTap(stale)
				if released != nil {
					m.finishTeardown(released)
				}
			}()
		}
	}
	if on != nil && (m.networks[on.name] != on || on.state != ready) {
		t.network, t.bridge, t.ipv4, t.holds = "", "", netip.Addr{}, false
		if done, ok := m.startWorkLocked(); ok {
			go func() {
				defer done()
				m.dropGuestFilter(t.name, t.index)
			}()
		}
		if err := m.saveTapLocked(t); err != nil {
			m.log.Warn("recording a detached tap", "tap", t.name, "err", err)
		}
		on = nil
	}
	m.taps[t.name] = t
	m.opts.Observer.TapAdded(m.tapInfo(t))
	if on != nil {
		on.taps[t.name] = true
		if t.holds {
			on.holders[tapHolder(t.name, t.index)] = true
			if err := m.saveNetwork(on); err != nil {
				m.log.Warn("recording a tap's hold", "network", on.name, "tap", t.name, "err", err)
			}
		}
		m.opts.Observer.NetworkChanged(m.networkInfo(on))
	}
}

// setupTap builds the tap without the lock: it belongs to nobody else
// until it is registered.
func (m *Manager) setupTap(c Caller, req TapRequest, target tapTarget) (_ *tapRes, _ []*os.File, err error) {
	t := &tapRes{owner: c.UID, queues: req.Queues, vnetHdr: req.VnetHdr, mtu: req.MTU, bridge: target.bridgeName(),
		learning: req.LearnMAC, holds: req.Hold}
	if target.network != nil {
		t.network = target.network.name
	}
	// The tap's own address follows from the guest's MAC; a MAC to be
	// learnt has none yet, so it follows from a drawn one.
	linkMAC := tap.LinkMAC(tap.GuestMAC())
	switch {
	case req.MAC != "":
		t.mac, _ = parseGuestMAC(req.MAC)
		linkMAC = tap.LinkMAC(t.mac)
	case !req.LearnMAC:
		m.mu.Lock()
		t.mac = m.freeGuestMAC()
		m.mu.Unlock()
		linkMAC = tap.LinkMAC(t.mac)
	}
	if t.mtu == 0 {
		t.mtu = 1500
		if t.bridge != "" {
			mtu, err := m.bridgeMTU(target)
			if err != nil {
				return nil, nil, err
			}
			t.mtu = mtu
		}
	}

	// The device is recorded only once it exists, which is safe: until the
	// reply, its fds are the daemon's alone, and the kernel removes it when
	// a crash closes them.
	dev, err := m.kernel.Taps.Create(tap.Config{
		Queues: int(t.queues), VnetHdr: t.vnetHdr, UID: c.UID, GID: c.GID,
		MTU: int(t.mtu), LinkMAC: linkMAC,
	})
	if err != nil {
		return nil, nil, Wrap(Failed, err, "creating the tap device")
	}
	t.name, t.index = dev.Name, dev.Index
	t.rec = m.newRecord("tap", dev.Name, dev.Name+"-"+strconv.Itoa(dev.Index))
	defer func() {
		if err != nil {
			for _, f := range dev.Files {
				f.Close()
			}
			m.unwind(t.rec)
		}
	}()
	if err := t.rec.push(deleteTapStep(dev.Name, dev.Index)); err != nil {
		return nil, nil, Wrap(Failed, err, "recording the tap")
	}

	if target.network != nil {
		if err := m.admitGuest(t, target.network, req.IPv4); err != nil {
			return nil, nil, err
		}
	}
	if t.bridge != "" {
		if err := m.kernel.Bridges.Attach(t.name, t.bridge); err != nil {
			if target.network != nil && m.networkGone(target.network) {
				return nil, nil, Errorf(NotFound, "network %s was removed meanwhile", target.network.name)
			}
			return nil, nil, Wrap(Failed, err, "attaching %s to bridge %s", t.name, t.bridge)
		}
		if req.MTU != 0 {
			if err := m.kernel.Taps.SetMTU(t.name, t.index, int(req.MTU)); err != nil {
				return nil, nil, Wrap(Failed, err, "applying option mtu")
			}
		}
	}
	// The down hooks' step reads the tap from the record: it is there
	// before the step.
	t.rec.Tap = tapSavedOf(t, target.network)
	if err := m.runUp(t.rec, hooks.TapUp, hooks.TapDown, m.hookEnvForTap(t, target.network)); err != nil {
		return nil, nil, err
	}
	t.rec.Complete = true
	if err := m.recordTap(t, target.network); err != nil {
		return nil, nil, err
	}
	return t, dev.Files, nil
}

// saveTapLocked records what adopting t after a restart needs, with
// Manager.mu held.
func (m *Manager) saveTapLocked(t *tapRes) error { return m.recordTap(t, m.networks[t.network]) }

// recordTap records t, on network n (nil for none). The steps recorded
// are never rewritten: the down hooks, which see the tap where it is when
// they run, take it from this record (see tapHookEnv).
func (m *Manager) recordTap(t *tapRes, n *netRes) error {
	t.rec.Tap = tapSavedOf(t, n)
	if err := t.rec.save(); err != nil {
		return Wrap(Failed, err, "recording tap %s", t.name)
	}
	return nil
}

func tapSavedOf(t *tapRes, n *netRes) *tapSaved {
	s := &tapSaved{
		Index: t.index, Owner: t.owner, MAC: macString(t.mac), MTU: t.mtu, Queues: t.queues,
		VnetHdr: t.vnetHdr, Bridge: t.bridge, Network: t.network, IPv4: t.ipv4, Learning: t.learning, Holds: t.holds,
	}
	if n != nil {
		s.Subnet = n.plan.Prefix.String()
	}
	return s
}

// runUp records the down hooks first, so that a half-failed up still gets
// its downscripts, then runs the up hooks. A tap's down hooks see it as
// its record says when they run, not as it was when it came up.
func (m *Manager) runUp(r *record, up, down hooks.Event, env hooks.Env) error {
	step := downHooksStep(down, env)
	if r.Kind == "tap" {
		step = tapDownHooksStep()
	}
	if err := r.push(step); err != nil {
		return Wrap(Failed, err, "recording hooks")
	}
	if err := m.opts.Hooks.Up(context.Background(), up, env); err != nil {
		return Wrap(Failed, err, "%s hook failed", up)
	}
	return nil
}

// hookEnvForTap is what t's hooks see; n is its network, if any.
func (m *Manager) hookEnvForTap(t *tapRes, n *netRes) hooks.Env {
	env := hooks.Env{IfName: t.name, Bridge: t.bridge, Network: t.network, MAC: macString(t.mac), UID: t.owner}
	if n != nil {
		env.Subnet = n.plan.Prefix.String()
	}
	return env
}

// freeGuestMAC draws guest MACs until one is not in use by another tap.
func (m *Manager) freeGuestMAC() net.HardwareAddr {
	for {
		mac := tap.GuestMAC()
		inUse := false
		for _, t := range m.taps {
			if bytes.Equal(t.mac, mac) {
				inUse = true
			}
		}
		if !inUse {
			return mac
		}
	}
}

// tapGone handles the kernel removing a tap, normally because its last fd
// was closed.
func (m *Manager) tapGone(name string, index int) {
	m.mu.Lock()
	t, ok := m.taps[name]
	m.mu.Unlock()
	if ok && t.index == index {
		m.removeTap(t)
	}
}

// removeTap takes t out of the manager and tears it down, down hooks
// included, unless another event or call got to it first.
func (m *Manager) removeTap(t *tapRes) {
	m.mu.Lock()
	if m.taps[t.name] != t {
		m.mu.Unlock()
		return
	}
	done, working := m.startWorkLocked()
	if !working {
		m.mu.Unlock()
		return
	}
	defer done()
	released := m.forgetTap(t)
	m.mu.Unlock()
	m.teardownTap(t)
	if released != nil {
		m.finishTeardown(released)
	}
}

// tapChanged deletes a tap whose fd holder tried to make it more than a
// guest port: persistent, it would outlive every holder and escape
// teardown; given to another uid, it would be that user's without polkit
// having asked.
func (m *Manager) tapChanged(name string, index int) {
	m.mu.Lock()
	t, ok := m.taps[name]
	m.mu.Unlock()
	if !ok || t.index != index {
		return
	}
	state, exists := m.kernel.Taps.Inspect(name, index)
	if !exists || !tampered(state, t.owner) {
		return
	}
	m.log.Warn("deleting a tap its holder made persistent or gave to another user", "tap", name, "persistent", state.Persistent, "owner", state.Owner)
	m.removeTap(t)
}

// tapExists tells whether the tap device name with index is still there.
func (m *Manager) tapExists(name string, index int) bool {
	_, ok := m.kernel.Taps.Inspect(name, index)
	return ok
}

func tampered(state tap.State, owner uint32) bool {
	return state.Persistent || state.Owner != owner
}

// teardownTap undoes t, which forgetTap took out of the manager, once no
// change of it that may still write its record is under way.
func (m *Manager) teardownTap(t *tapRes) {
	t.attachMu.Lock()
	defer t.attachMu.Unlock()
	m.unwind(t.rec)
}

// forgetTap takes t out of the manager, under the lock; its teardown
// (teardownTap, down hooks included) is then the caller's, without
// it, and so is finishing the teardown of the network it returns: one
// whose last hold was t's.
func (m *Manager) forgetTap(t *tapRes) (released *netRes) {
	delete(m.taps, t.name)
	m.opts.Observer.TapRemoved(t.name)
	n, ok := m.networks[t.network]
	if !ok {
		return nil
	}
	delete(n.taps, t.name)
	if released = m.releaseTapHold(t, n); released == nil {
		m.opts.Observer.NetworkChanged(m.networkInfo(n))
	}
	return released
}

// findOwnTap returns a tap and the check acting on it needs from uid (nil
// for its owner).
func (m *Manager) findOwnTap(uid uint32, name string) (*tapRes, *AuthCheck, error) {
	t, ok := m.taps[name]
	if !ok {
		return nil, nil, Errorf(NotFound, "there is no netgrant tap %q", name)
	}
	if t.owner != uid {
		return t, m.manageCheck("tap", name), nil
	}
	return t, nil, nil
}

// DeleteTap deletes a tap now, whoever holds its fds.
func (m *Manager) DeleteTap(ctx context.Context, c Caller, name string) error {
	look := func() (*tapRes, *AuthCheck, error) { return m.findOwnTap(c.UID, name) }
	// A new tap may have taken the name meanwhile; the check was not about
	// it.
	var released *netRes
	t, done, err := decide(ctx, m, c, look, Errorf(NotFound, "tap %q is already gone", name), func(t *tapRes) error {
		released = m.forgetTap(t)
		return nil
	})
	if err != nil {
		return err
	}
	defer done()
	m.teardownTap(t)
	if released != nil {
		m.finishTeardown(released)
	}
	return nil
}

// attachment is what AttachBridge decides: which tap goes where.
type attachment struct {
	tap    *tapRes
	target tapTarget
}

// AttachBridge plugs a tap into a netgrant network's bridge or an allowed
// host bridge, moving it off any bridge it was on.
func (m *Manager) AttachBridge(ctx context.Context, c Caller, ifname, br string) error {
	if !validIfName(ifname) {
		return Errorf(InvalidArgument, "ifname: %q is not a valid interface name", ifname)
	}
	if !validIfName(br) {
		return Errorf(InvalidArgument, "bridge: %q is not a valid interface name", br)
	}
	look := func() (attachment, *AuthCheck, error) {
		t, check, err := m.findOwnTap(c.UID, ifname)
		if err != nil {
			return attachment{}, nil, err
		}
		target, targetCheck, err := m.resolveTarget(c.UID, "", br)
		if err != nil {
			return attachment{}, nil, err
		}
		// Another user's tap is settled by manage alone; one's own by
		// what it goes onto.
		if check == nil {
			check = targetCheck
		}
		return attachment{t, target}, check, nil
	}
	a, done, err := decide(ctx, m, c, look, Errorf(NotFound, "tap %q or bridge %s was replaced while polkit was asked: call again", ifname, br),
		func(attachment) error { return nil })
	if err != nil {
		return err
	}
	defer done()
	// One attach of a tap at a time, so the kernel and the records end in
	// the same order.
	a.tap.attachMu.Lock()
	defer a.tap.attachMu.Unlock()
	m.mu.Lock()
	gone := m.taps[a.tap.name] != a.tap
	m.mu.Unlock()
	if gone {
		return Errorf(NotFound, "tap %q is gone", ifname)
	}
	mtu, err := m.bridgeMTU(a.target)
	if err != nil {
		return err
	}
	m.mu.Lock()
	onNetwork := m.networks[a.tap.network]
	m.mu.Unlock()
	if n := a.target.network; n != nil && n != onNetwork {
		if err := m.admitGuest(a.tap, n, netip.Addr{}); err != nil {
			return err
		}
	}
	if onNetwork != nil && a.target.network == nil {
		// Off the network, the guest's filter would only get in the way;
		// it goes once the tap is on the other bridge.
		defer m.dropGuestFilter(a.tap.name, a.tap.index)
	}
	if err := m.kernel.Bridges.Attach(a.tap.name, a.target.bridgeName()); err != nil {
		// Its last fd may have closed since, the removal not yet handled.
		if !m.tapExists(a.tap.name, a.tap.index) {
			return Errorf(NotFound, "tap %q is gone: its last fd was closed", ifname)
		}
		if n := a.target.network; n != nil && m.networkGone(n) {
			return Errorf(NotFound, "network %s was removed meanwhile", n.name)
		}
		return Wrap(Failed, err, "attaching %s to %s", a.tap.name, a.target.bridgeName())
	}
	m.mu.Lock()
	t := a.tap
	if m.taps[t.name] != t {
		m.mu.Unlock()
		return Errorf(NotFound, "tap %q is gone", ifname)
	}
	// A tap that held the network it leaves holds it no more.
	var released *netRes
	if old, ok := m.networks[t.network]; ok {
		delete(old.taps, t.name)
		if old != a.target.network {
			released = m.releaseTapHold(t, old)
		}
		if released == nil {
			m.opts.Observer.NetworkChanged(m.networkInfo(old))
		}
	}
	if a.target.network == nil {
		t.ipv4 = netip.Addr{}
	}
	t.bridge, t.network, t.mtu = a.target.bridgeName(), "", mtu
	if n := a.target.network; n != nil && m.networks[n.name] == n && n.state == ready {
		t.network = n.name
		n.taps[t.name] = true
		m.opts.Observer.NetworkChanged(m.networkInfo(n))
	}
	m.opts.Observer.TapChanged(m.tapInfo(t))
	err = m.saveTapLocked(t)
	m.mu.Unlock()
	if released != nil {
		m.finishTeardown(released)
	}
	return err
}
