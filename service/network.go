package service

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service/bridge"
	"github.com/netgrant/netgrant/service/config"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/subnet"
)

// NetworkRequest is a CreateNATNetwork call, decoded. Nil options were not
// given: they take their defaults on create and match anything on join.
type NetworkRequest struct {
	Name       string
	Subnet     *string
	DHCP       *bool
	DNS        *bool
	Outbound   *bool
	MTU        *uint32
	Persistent *bool
	IPv6       *bool
	Subnet6    *string
}

// Lease is one DHCP lease dnsmasq granted on a network.
type Lease struct {
	MAC, IPv4, Hostname string
}

// NetworkInfo is a network as clients see it.
type NetworkInfo struct {
	Name       string
	Bridge     string
	Subnet     string
	Gateway    string
	DHCPStart  string
	DHCPEnd    string
	DHCP       bool
	DNS        bool
	Outbound   bool
	Persistent bool
	MTU        uint32
	// Subnet6 and Gateway6 are empty without IPv6.
	Subnet6  string
	Gateway6 string
	// Domain is where the guests' names are; empty without DNS.
	Domain  string
	Owner   uint32
	Holders uint32
	Taps    []string
	Leases  []Lease
	// PortForwards are in the order they were added.
	PortForwards []PortForward
}

type netRes struct {
	name   string
	owner  uint32
	bridge string
	// bridgeIndex is the bridge's interface index, once it exists.
	bridgeIndex int
	// domain is where dnsmasq names the guests: "" without DNS.
	domain     string
	plan       subnet.Plan
	dhcp       bool
	dns        bool
	outbound   bool
	mtu        uint32
	persistent bool
	holders    map[string]bool
	taps       map[string]bool
	// reserved are the guests' addresses, each by its reservation's name.
	reserved map[netip.Addr]string
	forwards []PortForward
	// heldPorts hold each forward's host port (see holdPort); they are
	// given back once the forward's rules are gone.
	heldPorts map[PortForward]*os.File
	// hostServices are the host's ports its guests may reach on the
	// gateway ([Networks] HostServices=).
	hostServices []firewall.Service
	// dnsmasqID is what its dnsmasq runs under as netgrantd's child: no
	// other network's dnsmasq has it. Zero under systemd, which gives
	// each dnsmasq unit one of its own.
	dnsmasqID dnsmasq.Identity
	// fwGen is the firewall's generation of the network's rules (see
	// fwState); set once, before the network is published.
	fwGen uint64
	rec   *record
	// state moves from creating to ready to removing; the name, subnet and
	// bridge stay taken until settled is closed, once the network is gone
	// (or ready). Only the call that created it, or the teardown that
	// removes it, works on a network that is not ready.
	state   netState
	settled chan struct{}

	guests guestsView
}

type netState int

const (
	creating netState = iota
	ready
	removing
)

// readyNetwork returns the network called name if it is ready for use.
func (m *Manager) readyNetwork(name string) (*netRes, bool) {
	n, ok := m.networks[name]
	return n, ok && n.state == ready
}

func (n *netRes) firewall() firewall.Network {
	fw := firewall.Network{Bridge: n.bridge, Subnet: n.plan.Prefix, Gateway: n.plan.Gateway, Outbound: n.outbound,
		Subnet6: n.plan.Prefix6, Gateway6: n.plan.Gateway6, HostServices: n.hostServices}
	if n.plan.Prefix6.IsValid() {
		fw.GatewayLinkLocal6 = bridge.LinkLocal6.Addr()
	}
	for _, f := range n.forwards {
		fw.Forwards = append(fw.Forwards, f.firewall())
	}
	return fw
}

func (m *Manager) networkInfo(n *netRes) NetworkInfo {
	info := NetworkInfo{
		Name: n.name, Bridge: n.bridge, Subnet: n.plan.Prefix.String(), Gateway: n.plan.Gateway.String(),
		DHCP: n.dhcp, DNS: n.dns, Outbound: n.outbound, Persistent: n.persistent, MTU: n.mtu,
		Owner: n.owner, Holders: uint32(len(n.holders)), Taps: []string{}, Leases: []Lease{},
		PortForwards: slices.Clone(n.forwards),
	}
	if n.dhcp {
		info.DHCPStart, info.DHCPEnd = addrString(n.plan.DHCPStart), addrString(n.plan.DHCPEnd)
	}
	if n.plan.Prefix6.IsValid() {
		info.Subnet6, info.Gateway6 = n.plan.Prefix6.String(), n.plan.Gateway6.String()
	}
	if n.dns {
		info.Domain = n.domain
	}
	for name := range n.taps {
		info.Taps = append(info.Taps, name)
	}
	sort.Strings(info.Taps)
	info.Leases = n.guests.published()
	return info
}

// givenSubnets are the subnets a request names; invalid where it names none.
type givenSubnets struct{ v4, v6 netip.Prefix }

// minIPv6MTU is the smallest MTU IPv6 works with (RFC 8200).
const minIPv6MTU = 1280

func (r NetworkRequest) validate(cfg config.Config, pools6 []netip.Prefix) (givenSubnets, error) {
	var given givenSubnets
	if !ValidNetworkName(r.Name) {
		return given, Errorf(InvalidArgument, "name: %q is not a valid network name: use 1 to 32 letters, digits, '-' or '_', starting with a letter or digit", r.Name)
	}
	if r.MTU != nil && !validMTU(*r.MTU) {
		return given, Errorf(InvalidArgument, "option mtu: %d is out of range 68..65535", *r.MTU)
	}
	if r.Subnet != nil {
		p, err := subnet.Validate(*r.Subnet, cfg.SubnetPools, cfg.LargestPrefix)
		if err != nil {
			return given, Wrap(InvalidArgument, err, "option subnet")
		}
		given.v4 = p
	}
	if r.asksIPv6() && !cfg.IPv6 {
		return given, Errorf(Unsupported, "the administrator turned IPv6 off for netgrant networks ([Networks] IPv6=no): pass ipv6: false")
	}
	if r.asksIPv6() && r.MTU != nil && *r.MTU < minIPv6MTU {
		return given, Errorf(InvalidArgument, "option mtu: IPv6 needs an MTU of at least %d, not %d: pass ipv6: false for a smaller MTU", minIPv6MTU, *r.MTU)
	}
	if r.Subnet6 != nil {
		if !boolOr(r.IPv6, true) {
			return given, Errorf(InvalidArgument, "option subnet6: given with ipv6: false")
		}
		p, err := subnet.Validate6(*r.Subnet6, pools6)
		if err != nil {
			return given, Wrap(InvalidArgument, err, "option subnet6")
		}
		given.v6 = p
	}
	return given, nil
}

// asksIPv6 tells whether r insists on IPv6, with ipv6: true or subnet6.
func (r NetworkRequest) asksIPv6() bool { return boolOr(r.IPv6, false) || r.Subnet6 != nil }

// ipv6 tells whether a network created for r has IPv6: as asked, else
// wherever the administrator, the host (hostHasIPv6) and the MTU allow
// it. A network that merely defaults to IPv6 does without where it cannot
// have it.
func (r NetworkRequest) ipv6(cfg config.Config, hostHasIPv6 bool) bool {
	if r.IPv6 != nil || r.Subnet6 != nil {
		return r.asksIPv6()
	}
	return cfg.IPv6 && hostHasIPv6 && (r.MTU == nil || *r.MTU >= minIPv6MTU)
}

func boolOr(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// sameAs reports whether every option given in r matches n, naming the
// first that does not.
func (r NetworkRequest) sameAs(n *netRes) (string, bool) {
	switch {
	case r.Subnet != nil && *r.Subnet != n.plan.Prefix.String():
		return "subnet " + n.plan.Prefix.String(), false
	case r.DHCP != nil && *r.DHCP != n.dhcp:
		return "dhcp", false
	case r.DNS != nil && *r.DNS != n.dns:
		return "dns", false
	case r.Outbound != nil && *r.Outbound != n.outbound:
		return "outbound", false
	case r.MTU != nil && *r.MTU != n.mtu:
		return "mtu", false
	case r.Persistent != nil && *r.Persistent != n.persistent:
		return "persistent", false
	case r.IPv6 != nil && *r.IPv6 != n.plan.Prefix6.IsValid():
		return "ipv6", false
	case r.Subnet6 != nil && !sameSubnet6(*r.Subnet6, n.plan.Prefix6):
		return "subnet6 " + n.plan.Prefix6.String(), false
	}
	return "", true
}

// sameSubnet6 compares a given subnet6, which IPv6's many spellings allow
// to be written in other ways, with a network's.
func sameSubnet6(given string, p netip.Prefix) bool {
	q, err := netip.ParsePrefix(given)
	return err == nil && q == p
}

// errBusy says a network of that name is being created or removed:
// the caller waits until it has settled and looks again.
type errBusy struct{ settled chan struct{} }

func (errBusy) Error() string { return "the network is being set up or removed" }

// joinable returns the network r would join, nil if none exists, or an
// Exists error if it exists but cannot be joined by uid.
func (m *Manager) joinable(uid uint32, r NetworkRequest) (*netRes, error) {
	n, ok := m.networks[r.Name]
	if !ok {
		return nil, nil
	}
	if n.state != ready {
		return nil, errBusy{n.settled}
	}
	if n.owner != uid {
		return nil, Errorf(Exists, "network %q already exists and belongs to another user: choose another name", r.Name)
	}
	if differs, same := r.sameAs(n); !same {
		return nil, Errorf(Exists, "network %q already exists with a different %s: give the same options (or none) to join it, or choose another name", r.Name, differs)
	}
	return n, nil
}

// planNetwork chooses the subnet of a new network and checks it is free of
// hostUses and of every network, those being created or removed included.
func (m *Manager) planNetwork(given netip.Prefix, hostUses []subnet.Use) (subnet.Plan, error) {
	// Networks first: a network's bridge carries its subnet, and its
	// name says more than the bridge's address.
	uses := m.networkUses(func(n *netRes) netip.Prefix { return n.plan.Prefix })
	uses = append(uses, hostUses...)
	if given.IsValid() {
		if use, clash := subnet.Conflict(given, uses); clash {
			return subnet.Plan{}, Errorf(SubnetConflict, "subnet %s overlaps %s: choose another subnet", given, use.What)
		}
		return subnet.NewPlan(given), nil
	}
	p, err := subnet.Pick(m.opts.Config.SubnetPools, uses)
	if err != nil {
		return subnet.Plan{}, Wrap(SubnetConflict, err, "no free subnet ([Networks] SubnetPool=): ask your administrator for a larger pool")
	}
	return subnet.NewPlan(p), nil
}

// planIPv6 adds the network's IPv6 /64 to plan, if it is to have IPv6:
// the one given, else the one derived from the machine and the name (or
// the next derived one that is free). Only a request that insists on IPv6
// fails for want of a /64; one that takes the default does without.
func (m *Manager) planIPv6(plan subnet.Plan, r NetworkRequest, given netip.Prefix, hostUses []subnet.Use) (subnet.Plan, error) {
	if !r.ipv6(m.opts.Config, m.kernel.Sysctls.IPv6Available()) {
		return plan.WithIPv6(netip.Prefix{}), nil
	}
	uses := m.networkUses(func(n *netRes) netip.Prefix { return n.plan.Prefix6 })
	uses = append(uses, hostUses...)
	if given.IsValid() {
		if use, clash := subnet.Conflict(given, uses); clash {
			return plan, Errorf(SubnetConflict, "subnet6 %s overlaps %s: choose another subnet6", given, use.What)
		}
		return plan.WithIPv6(given), nil
	}
	p, err := subnet.Pick6(m.pools6, m.machineID, r.Name, uses)
	if err != nil {
		if r.asksIPv6() {
			return plan, Wrap(SubnetConflict, err, "no free IPv6 /64 for network %q: give one with subnet6", r.Name)
		}
		m.log.Warn("creating the network without IPv6", "network", r.Name, "err", err)
		return plan.WithIPv6(netip.Prefix{}), nil
	}
	return plan.WithIPv6(p), nil
}

// networkUses are the networks' subnets (IPv4 or IPv6, as prefix picks)
// in address order, so that a conflict names the same network every time.
func (m *Manager) networkUses(prefix func(*netRes) netip.Prefix) []subnet.Use {
	var uses []subnet.Use
	for _, n := range m.networks {
		if p := prefix(n); p.IsValid() {
			uses = append(uses, subnet.Use{Prefix: p, What: "network \"" + n.name + "\""})
		}
	}
	slices.SortFunc(uses, func(a, b subnet.Use) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return uses
}

func (m *Manager) networksOf(uid uint32) int {
	count := 0
	for _, n := range m.networks {
		if n.owner == uid && n.state != removing {
			count++
		}
	}
	return count
}

// checkSupported refuses a network this host cannot give, before anything
// is looked at or asked, and returns the ids its dnsmasq may run under as
// netgrantd's child.
func (m *Manager) checkSupported(r NetworkRequest) (dnsmasq.IDRange, error) {
	if m.opts.Firewall == nil {
		return dnsmasq.IDRange{}, Errorf(Unsupported, "NAT networks need a firewall, and netgrantd could use neither nftables nor iptables: install the iptables package (or check the kernel's nf_tables) and restart netgrantd; journalctl -u netgrantd says why")
	}
	if r.asksIPv6() && !m.kernel.Sysctls.IPv6Available() {
		return dnsmasq.IDRange{}, Errorf(Unsupported, "this host's kernel has IPv6 turned off (ipv6.disable=1): pass ipv6: false")
	}
	if !boolOr(r.DHCP, true) && !boolOr(r.DNS, true) {
		return dnsmasq.IDRange{}, nil
	}
	if err := m.kernel.Dnsmasqs.Available(); err != nil {
		return dnsmasq.IDRange{}, Wrap(Unsupported, err, "DHCP and DNS need dnsmasq (or pass dhcp: false and dns: false)")
	}
	if m.opts.DnsmasqUnits {
		return dnsmasq.IDRange{}, nil
	}
	ids, err := m.kernel.Dnsmasqs.DelegatedIDs()
	if err != nil {
		return dnsmasq.IDRange{}, Wrap(Unsupported, err, "DHCP and DNS need ids for dnsmasq to run under (or pass dhcp: false and dns: false)")
	}
	return ids, nil
}

// freeDnsmasqIdentity picks, under the lock, the first identity of ids
// no network's dnsmasq runs under.
func (m *Manager) freeDnsmasqIdentity(ids dnsmasq.IDRange) (dnsmasq.Identity, error) {
	used := map[dnsmasq.Identity]bool{}
	for _, n := range m.networks {
		used[n.dnsmasqID] = true
	}
	for i := range ids.Count {
		if id := ids.Identity(i); !used[id] {
			return id, nil
		}
	}
	return dnsmasq.Identity{}, Errorf(QuotaExceeded, "every one of the %d ids delegated to %s runs another network's dnsmasq: an administrator can delegate more (usermod --add-subuids, --add-subgids)", ids.Count, dnsmasq.User)
}

// networkPlan is what CreateNATNetwork decides under the lock: join an
// existing network, or create one with this plan.
type networkPlan struct {
	join *netRes
	plan subnet.Plan
	ids  dnsmasq.IDRange
}

// CreateNATNetwork creates network r.Name, or joins it if it exists, is
// the caller's and matches every option given. Either way c.Holder holds it.
func (m *Manager) CreateNATNetwork(ctx context.Context, c Caller, r NetworkRequest) (NetworkInfo, error) {
	given, err := r.validate(m.opts.Config, m.pools6)
	if err != nil {
		return NetworkInfo{}, err
	}
	if err := checkDefaultNetworkName(c.UID, r.Name); err != nil {
		return NetworkInfo{}, err
	}
	for {
		info, err := m.createOrJoin(ctx, c, r, given)
		var busy errBusy
		if !errors.As(err, &busy) {
			return info, err
		}
		select {
		case <-busy.settled:
		case <-ctx.Done():
			return NetworkInfo{}, Errorf(Failed, "%v", context.Cause(ctx))
		}
	}
}

func (m *Manager) createOrJoin(ctx context.Context, c Caller, r NetworkRequest, given givenSubnets) (NetworkInfo, error) {
	// What the kernel says is read before the lock is taken.
	host, err := m.kernel.Bridges.Host()
	if err != nil {
		return NetworkInfo{}, Wrap(Failed, err, "reading the host's links, addresses and routes")
	}
	hostUses, linkNames := host.Uses, host.LinkNames
	// What the host lacks (iptables, dnsmasq, its account) matters only
	// for a new network; it is looked up once, without the lock.
	ids, unsupported := m.checkSupported(r)
	// The subnet polkit is asked about is the one the network gets, while
	// it stays free, even if another network freed a lower one meanwhile.
	var planned netip.Prefix
	look := func() (networkPlan, *AuthCheck, error) {
		existing, err := m.joinable(c.UID, r)
		if err != nil {
			return networkPlan{}, nil, err
		}
		check := &AuthCheck{Action: names.ActionCreateNATNetwork, Details: map[string]string{"network": r.Name}}
		if existing != nil {
			check.Details["subnet"] = existing.plan.Prefix.String()
			return networkPlan{join: existing, plan: existing.plan}, check, nil
		}
		for _, other := range m.networks {
			if strings.EqualFold(other.name, r.Name) {
				return networkPlan{}, nil, Errorf(Exists, "network %q would have the DNS domain of network %q, whose name differs only in case: choose another name", r.Name, other.name)
			}
		}
		if br := names.BridgeName(r.Name); linkNames[br] {
			return networkPlan{}, nil, Errorf(Exists, "network %q would have the bridge %s, and an interface of that name exists already: choose another name", r.Name, br)
		}
		if limit := m.opts.Config.NetworksPerUser; m.networksOf(c.UID) >= limit {
			return networkPlan{}, nil, Errorf(QuotaExceeded, "user %d already has %d networks, the limit ([Limits] NetworksPerUser=%d): delete one first", c.UID, limit, limit)
		}
		if unsupported != nil {
			return networkPlan{}, nil, unsupported
		}
		plan, err := m.planNetwork(given.v4, hostUses)
		if !given.v4.IsValid() && planned.IsValid() {
			if kept, keptErr := m.planNetwork(planned, hostUses); keptErr == nil {
				plan, err = kept, nil
			}
		}
		if err != nil {
			return networkPlan{}, nil, err
		}
		if plan, err = m.planIPv6(plan, r, given.v6, hostUses); err != nil {
			return networkPlan{}, nil, err
		}
		planned = plan.Prefix
		check.Details["subnet"] = plan.Prefix.String()
		if boolOr(r.Persistent, false) {
			check.Action = names.ActionPersist
		}
		return networkPlan{plan: plan, ids: ids}, check, nil
	}
	var n *netRes
	var info NetworkInfo
	_, done, err := decide(ctx, m, c, look, Errorf(SubnetConflict, "another network took the subnet or name of %q while polkit was asked: call again", r.Name),
		func(p networkPlan) error {
			if p.join != nil {
				info, err = m.join(p.join, c.Holder)
				return err
			}
			n, err = m.reserveNetwork(c, r, p)
			return err
		})
	if err != nil {
		return info, err
	}
	defer done()
	if n == nil {
		return info, nil
	}
	setupErr := m.setupNetwork(n)
	m.mu.Lock()
	defer m.mu.Unlock()
	close(n.settled)
	if setupErr != nil {
		delete(m.networks, n.name)
		return NetworkInfo{}, setupErr
	}
	n.state, n.settled = ready, make(chan struct{})
	info = m.networkInfo(n)
	m.opts.Observer.NetworkAdded(info)
	return info, nil
}

// join makes holder another holder of n.
func (m *Manager) join(n *netRes, holder string) (NetworkInfo, error) {
	n.holders[holder] = true
	if err := m.saveNetwork(n); err != nil {
		delete(n.holders, holder)
		return NetworkInfo{}, err
	}
	info := m.networkInfo(n)
	m.opts.Observer.NetworkChanged(info)
	return info, nil
}

// reserveNetwork takes the name, subnet, bridge name and its dnsmasq's
// identity for a network that setupNetwork then builds without the lock.
func (m *Manager) reserveNetwork(c Caller, r NetworkRequest, p networkPlan) (*netRes, error) {
	br := names.BridgeName(r.Name)
	for _, other := range m.networks {
		if other.bridge == br {
			return nil, Errorf(Exists, "network %q would have the bridge %s, which network %q has: choose another name", r.Name, br, other.name)
		}
	}
	n := &netRes{
		name: r.Name, owner: c.UID, plan: p.plan, bridge: br,
		dhcp: boolOr(r.DHCP, true), dns: boolOr(r.DNS, true), outbound: boolOr(r.Outbound, true),
		persistent: boolOr(r.Persistent, false), mtu: 1500,
		holders: map[string]bool{c.Holder: true}, taps: map[string]bool{}, reserved: map[netip.Addr]string{},
		heldPorts: map[PortForward]*os.File{}, hostServices: m.hostServices(), state: creating, settled: make(chan struct{}),
		domain: m.networkDomain(r.Name),
	}
	if r.MTU != nil {
		n.mtu = *r.MTU
	}
	if (n.dhcp || n.dns) && !m.opts.DnsmasqUnits {
		id, err := m.freeDnsmasqIdentity(p.ids)
		if err != nil {
			return nil, err
		}
		n.dnsmasqID = id
	}
	m.networks[n.name] = n
	return n, nil
}

// setupNetwork builds n, which is reserved: no other call touches it.
func (m *Manager) setupNetwork(n *netRes) (err error) {
	n.rec = m.newRecord("network", n.name, n.name)
	defer func() {
		if err != nil {
			m.unwind(n.rec)
		}
	}()
	if err := n.rec.push(deleteBridgeStep(n.bridge)); err != nil {
		return Wrap(Failed, err, "recording the network")
	}
	gateway := netip.PrefixFrom(n.plan.Gateway, n.plan.Prefix.Bits())
	cfg := bridge.Config{Name: n.bridge, MTU: int(n.mtu), MAC: n.bridgeMAC(), Address: gateway}
	if n.plan.Prefix6.IsValid() {
		cfg.Address6 = netip.PrefixFrom(n.plan.Gateway6, n.plan.Prefix6.Bits())
	}
	if err := m.kernel.Bridges.Create(cfg); errors.Is(err, os.ErrExist) {
		// Someone else's link took the name after it was checked; the
		// recorded step deletes only a bridge with the network's MAC.
		return Errorf(Exists, "network %q would have the bridge %s, and an interface of that name appeared meanwhile: choose another name", n.name, n.bridge)
	} else if err != nil {
		return Wrap(Failed, err, "creating bridge %s", n.bridge)
	}
	if n.bridgeIndex, err = m.kernel.Bridges.Index(n.bridge); err != nil {
		return Wrap(Failed, err, "finding bridge %s", n.bridge)
	}
	if err := m.enableForwarding(n); err != nil {
		return err
	}
	if err := n.rec.push(removeFirewallStep(n.firewall())); err != nil {
		return Wrap(Failed, err, "recording the network")
	}
	if err := m.addFirewall(n); err != nil {
		return Wrap(Failed, err, "adding firewall rules")
	}
	if n.dhcp || n.dns {
		if err := m.startDnsmasq(n); err != nil {
			return err
		}
	}
	if n.dns && m.opts.Resolver != nil {
		if err := n.rec.push(unregisterDNSStep(n.bridge, n.bridgeIndex)); err != nil {
			return Wrap(Failed, err, "recording the network")
		}
		m.registerDNS(n)
	}
	if err := m.runUp(n.rec, hooks.NetworkUp, hooks.NetworkDown, m.hookEnvForNetwork(n)); err != nil {
		return err
	}
	n.rec.Complete = true
	return m.saveNetwork(n)
}

// enableForwarding turns on the forwarding an outbound network needs.
func (m *Manager) enableForwarding(n *netRes) error {
	if !n.outbound {
		return nil
	}
	if err := m.kernel.Sysctls.EnableForwarding(); err != nil {
		return Wrap(Failed, err, "enabling IPv4 forwarding")
	}
	if !n.plan.Prefix6.IsValid() {
		return nil
	}
	kept, err := m.kernel.Sysctls.EnableIPv6Forwarding()
	if len(kept) > 0 {
		m.log.Info("IPv6 forwarding on: links that took router advertisements take them still (accept_ra 2)", "links", kept)
	}
	if err != nil {
		return Wrap(Failed, err, "enabling IPv6 forwarding")
	}
	return nil
}

// hostServices are the configuration's host services as the firewall
// takes them.
func (m *Manager) hostServices() []firewall.Service {
	var services []firewall.Service
	for _, svc := range m.opts.Config.HostServices {
		services = append(services, firewall.Service{Proto: svc.Proto, Port: svc.Port})
	}
	return services
}

// bridgeMAC is the address n's bridge is given: the same for its name
// every time, so guests' ARP caches outlive a network made again.
func (n *netRes) bridgeMAC() net.HardwareAddr { return bridge.MACFor(n.name) }

// dnsmasqDir holds n's dnsmasq's files, named, like its unit, after the
// bridge.
func (m *Manager) dnsmasqDir(n *netRes) string {
	return filepath.Join(m.opts.StateDir, "dnsmasq-"+n.bridge)
}

// startDnsmasq records and starts n's dnsmasq, whose files (leases among
// them) live in a directory of its own, kept across restarts.
func (m *Manager) startDnsmasq(n *netRes) error {
	dir := m.dnsmasqDir(n)
	if !n.rec.has(opRemoveDir) {
		if err := n.rec.push(removeDirStep(dir)); err != nil {
			return Wrap(Failed, err, "recording the network")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return Wrap(Failed, err, "creating the network's state directory")
		}
		if err := n.rec.push(stopDnsmasqStep(dir)); err != nil {
			return Wrap(Failed, err, "recording the network")
		}
	}
	inst, err := m.kernel.Dnsmasqs.Start(dnsmasq.Config{
		Network: n.name, Bridge: n.bridge, Gateway: n.plan.Gateway, Prefix: n.plan.Prefix,
		Gateway6: n.plan.Gateway6, Prefix6: n.plan.Prefix6,
		DHCP: n.dhcp, DHCPStart: n.plan.DHCPStart, DHCPEnd: n.plan.DHCPEnd, DNS: n.dns,
		Domain: n.domain, LocalDomain: m.opts.Config.Domain, Dir: dir, Identity: n.dnsmasqID, Unit: m.opts.DnsmasqUnits, Log: m.log.With("network", n.name),
	}, func(leases []dnsmasq.Lease) { m.leasesChanged(n, leases) })
	if err != nil {
		return Wrap(Failed, err, "starting dnsmasq")
	}
	m.mu.Lock()
	m.dnsmasqs[dir] = inst
	m.mu.Unlock()
	return nil
}

// saveNetwork records what adopting n after a restart needs.
func (m *Manager) saveNetwork(n *netRes) error {
	holders := make([]string, 0, len(n.holders))
	for h := range n.holders {
		holders = append(holders, h)
	}
	sort.Strings(holders)
	n.rec.Network = &netSaved{
		Owner: n.owner, Bridge: n.bridge, Subnet: n.plan.Prefix.String(), DHCP: n.dhcp, DNS: n.dns,
		Outbound: n.outbound, MTU: n.mtu, Persistent: n.persistent, Holders: holders, Forwards: n.forwards,
		Subnet6: addrPrefixString(n.plan.Prefix6), Dnsmasq: n.dnsmasqID,
	}
	if err := n.rec.save(); err != nil {
		return Wrap(Failed, err, "recording network %s", n.name)
	}
	return nil
}

// beginTeardown takes n out of use: its object goes, its taps are
// detached. finishTeardown, without the lock, then removes it.
func (m *Manager) beginTeardown(n *netRes) {
	n.state = removing
	for name := range n.taps {
		if t, ok := m.taps[name]; ok && t.network == n.name {
			t.network, t.bridge, t.ipv4, t.holds = "", "", netip.Addr{}, false
			if err := m.saveTapLocked(t); err != nil {
				m.log.Warn("recording a detached tap", "tap", t.name, "err", err)
			}
			m.opts.Observer.TapChanged(m.tapInfo(t))
		}
	}
	m.opts.Observer.NetworkRemoved(n.name)
}

// finishTeardown removes n completely — down hooks, dnsmasq, firewall,
// bridge — and then frees its name, subnet, bridge name and forwarded
// ports.
func (m *Manager) finishTeardown(n *netRes) {
	m.unwind(n.rec)
	m.mu.Lock()
	defer m.mu.Unlock()
	for f, sock := range n.heldPorts {
		sock.Close()
		delete(n.heldPorts, f)
	}
	delete(m.networks, n.name)
	close(n.settled)
}

// dropHold removes holder's hold on n and reports whether that was the
// last, in which case n is being torn down: call finishTeardown.
func (m *Manager) dropHold(n *netRes, holder string) (last bool) {
	delete(n.holders, holder)
	if len(n.holders) == 0 && !n.persistent {
		m.log.Info("last holder left: tearing down network", "network", n.name)
		m.beginTeardown(n)
		return true
	}
	if err := m.saveNetwork(n); err != nil {
		m.log.Warn("recording a dropped hold", "network", n.name, "err", err)
	}
	m.opts.Observer.NetworkChanged(m.networkInfo(n))
	return false
}

// HolderGone drops every hold of a connection that left the bus.
func (m *Manager) HolderGone(holder string) {
	var last []*netRes
	m.mu.Lock()
	done, ok := m.startWorkLocked()
	if !ok {
		m.mu.Unlock()
		return
	}
	defer done()
	for _, n := range m.networks {
		if n.state == ready && n.holders[holder] && m.dropHold(n, holder) {
			last = append(last, n)
		}
	}
	m.mu.Unlock()
	for _, n := range last {
		m.finishTeardown(n)
	}
}

// ReleaseNetwork drops c's hold on a network.
func (m *Manager) ReleaseNetwork(c Caller, name string) error {
	m.mu.Lock()
	n, ok := m.readyNetwork(name)
	if !ok {
		m.mu.Unlock()
		return Errorf(NotFound, "there is no network %q", name)
	}
	if !n.holders[c.Holder] {
		m.mu.Unlock()
		return Errorf(NotFound, "this connection does not hold network %q", name)
	}
	done, ok := m.startWorkLocked()
	if !ok {
		m.mu.Unlock()
		return ErrStopping
	}
	defer done()
	last := m.dropHold(n, c.Holder)
	m.mu.Unlock()
	if last {
		m.finishTeardown(n)
	}
	return nil
}

// DeleteNetwork tears a network down now, whoever holds it.
func (m *Manager) DeleteNetwork(ctx context.Context, c Caller, name string) error {
	look := func() (*netRes, *AuthCheck, error) {
		n, ok := m.readyNetwork(name)
		if !ok {
			return nil, nil, Errorf(NotFound, "there is no network %q", name)
		}
		if n.owner != c.UID {
			return n, m.manageCheck("network", name), nil
		}
		return n, nil, nil
	}
	n, done, err := decide(ctx, m, c, look, Errorf(NotFound, "network %q was replaced while polkit was asked", name),
		func(n *netRes) error {
			m.beginTeardown(n)
			return nil
		})
	if err != nil {
		return err
	}
	defer done()
	m.finishTeardown(n)
	return nil
}
