package firewall

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NFTables is the Firewall on nftables: netgrant's own tables, one per
// family, changed by every Apply in one netlink transaction, so the kernel
// switches from the old rules to the new at once and nothing is ever half
// there.
type NFTables struct {
	mu sync.Mutex
	// applied are the networks the tables hold, by bridge; nil when
	// unknown.
	applied map[string]Network
	guests  guestFilter
}

var _ Firewall = (*NFTables)(nil)

// NewNFTables returns a Firewall on nftables, if the kernel has it.
func NewNFTables() (*NFTables, error) {
	conn, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("nftables: %w", err)
	}
	if _, err := conn.ListTablesOfFamily(nftables.TableFamilyIPv4); err != nil {
		return nil, fmt.Errorf("nftables: listing tables: %w", err)
	}
	return &NFTables{}, nil
}

func (f *NFTables) Backend() string { return "nftables" }

func (f *NFTables) UpdateGuests(nets []Network) error {
	if err := validateAll(nets); err != nil {
		return err
	}
	return f.guests.update(nets)
}

func (f *NFTables) Apply(nets []Network) error {
	if err := validateAll(nets); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// Networks that come and go are added and removed one by one, so the
	// 50th costs what the first did; anything unexpected (someone removed
	// the table, the last change failed) is answered by a rebuild.
	if f.applied == nil || len(nets) == 0 || f.applyChanges(nets) != nil {
		if err := f.rebuild(nets); err != nil {
			return err
		}
	}
	if err := f.guests.update(nets); err != nil {
		return err
	}
	return syncDockerUser(nets)
}

func (f *NFTables) Restore(nets []Network) error {
	f.mu.Lock()
	f.applied = nil
	f.mu.Unlock()
	f.guests.forget()
	return f.Apply(nets)
}

// removeOwn removes table ip netgrant and netgrant's accepts in
// DOCKER-USER.
func (f *NFTables) removeOwn() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.rebuild(nil); err != nil {
		return err
	}
	return syncDockerUser(nil)
}

func (f *NFTables) rebuild(nets []Network) error {
	f.applied = nil
	conn, closeConn, err := newPatchedConn()
	if err != nil {
		return err
	}
	defer closeConn()
	// Adding a table before deleting it makes the delete succeed whether
	// or not it was there; the whole batch is one transaction.
	for _, fam := range families {
		table := nftTableRef(fam)
		conn.AddTable(table)
		conn.DelTable(table)
		if len(nets) > 0 {
			buildTable(conn, table, fam, nets)
		}
	}
	if err := conn.Flush(); err != nil {
		return fmt.Errorf("nftables: applying tables ip and ip6 %s: %w", nftTable, err)
	}
	f.applied = networksByBridge(nets)
	return nil
}

// applyChanges removes the networks gone or changed since the last Apply
// and adds the new ones, in one transaction.
func (f *NFTables) applyChanges(nets []Network) error {
	want := networksByBridge(nets)
	var removed, added []Network
	for bridge, had := range f.applied {
		if n, ok := want[bridge]; !ok || !sameNetwork(had, n) {
			removed = append(removed, had)
		}
	}
	for _, n := range nets {
		if had, ok := f.applied[n.Bridge]; !ok || !sameNetwork(had, n) {
			added = append(added, n)
		}
	}
	if len(removed)+len(added) == 0 {
		for _, fam := range families {
			if !tableExists(nftTable, nftTableRef(fam).Family) {
				return errors.New("table " + nftFamilyNames[fam] + " " + nftTable + " is gone")
			}
		}
		return nil
	}
	lister, err := nftables.New()
	if err != nil {
		return err
	}
	conn, closeConn, err := newPatchedConn()
	if err != nil {
		return err
	}
	defer closeConn()
	for _, fam := range families {
		table := nftTableRef(fam)
		if err := queueRemovals(conn, lister, table, fam, removed); err != nil {
			return err
		}
		for _, n := range added {
			queueNetworkChains(conn, table, fam, n)
		}
		for _, n := range added {
			for _, j := range networkJumps(fam, n) {
				r := &nftables.Rule{Table: table, Chain: &nftables.Chain{Table: table, Name: nftBaseChains[j.hook].name},
					Exprs: nftExprs(n.Bridge, j.rule), UserData: jumpUserData(n.Bridge)}
				if j.first {
					conn.InsertRule(r)
				} else {
					conn.AddRule(r)
				}
			}
		}
	}
	if err := conn.Flush(); err != nil {
		return err
	}
	f.applied = want
	return nil
}

// queueRemovals queues the removal of each network's jumps in table,
// found by their user data, and of its chains of fam.
func queueRemovals(conn, lister *nftables.Conn, table *nftables.Table, fam family, removed []Network) error {
	if len(removed) == 0 {
		return nil
	}
	gone := map[string]bool{}
	for _, n := range removed {
		gone[string(jumpUserData(n.Bridge))] = true
	}
	for _, base := range nftBaseChains {
		rules, err := lister.GetRules(table, &nftables.Chain{Table: table, Name: base.name})
		if err != nil {
			return err
		}
		for _, r := range rules {
			if gone[string(r.UserData)] {
				if err := conn.DelRule(r); err != nil {
					return err
				}
			}
		}
	}
	for _, n := range removed {
		for _, c := range networkChains(fam, n) {
			chain := &nftables.Chain{Table: table, Name: nftChain(n.Bridge, c.role)}
			conn.FlushChain(chain)
			conn.DelChain(chain)
		}
	}
	return nil
}

func nftTableRef(fam family) *nftables.Table {
	if fam == ipv6 {
		return &nftables.Table{Family: nftables.TableFamilyIPv6, Name: nftTable}
	}
	return &nftables.Table{Family: nftables.TableFamilyIPv4, Name: nftTable}
}

func networksByBridge(nets []Network) map[string]Network {
	out := map[string]Network{}
	for _, n := range nets {
		n.Guests = nil
		out[n.Bridge] = n
	}
	return out
}

// jumpUserData marks a jump with its network, as nft(8) stores a
// comment: a type-length-value of type 0 (NFTNL_UDATA_RULE_COMMENT).
func jumpUserData(bridge string) []byte {
	return append([]byte{0, byte(len(bridge) + 1)}, append([]byte(bridge), 0)...)
}

func buildTable(conn *nftables.Conn, table *nftables.Table, fam family, nets []Network) {
	conn.AddTable(table)
	chains := map[hook]*nftables.Chain{}
	policy := nftables.ChainPolicyAccept
	for h, base := range nftBaseChains {
		hooked := nftHooks[h]
		chains[hook(h)] = conn.AddChain(&nftables.Chain{Table: table, Name: base.name, Type: hooked.kind,
			Hooknum: hooked.hooknum, Priority: hooked.priority, Policy: &policy})
	}
	// Per-network chains exist before anything jumps to them.
	for _, n := range nets {
		queueNetworkChains(conn, table, fam, n)
	}
	// In the order of the hooks: the same batch for the same networks.
	hooked := hookRules(fam, nets)
	for h := range nftBaseChains {
		chain := chains[hook(h)]
		for _, nr := range hooked[hook(h)] {
			conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: nftExprs(nr.owner, nr.rule), UserData: jumpUserData(nr.owner)})
		}
	}
}

func queueNetworkChains(conn *nftables.Conn, table *nftables.Table, fam family, n Network) {
	for _, c := range networkChains(fam, n) {
		chain := conn.AddChain(&nftables.Chain{Table: table, Name: nftChain(n.Bridge, c.role)})
		for _, r := range c.rules {
			conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: nftExprs(n.Bridge, r)})
		}
	}
}

// nftHooks are nftBaseChains in google/nftables' terms.
var nftHooks = [...]struct {
	kind     nftables.ChainType
	hooknum  *nftables.ChainHook
	priority *nftables.ChainPriority
}{
	hookInput:       {nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityFilter},
	hookForward:     {nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityFilter},
	hookPostrouting: {nftables.ChainTypeNAT, nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource},
	hookPrerouting:  {nftables.ChainTypeNAT, nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest},
	hookOutput:      {nftables.ChainTypeNAT, nftables.ChainHookOutput, nftables.ChainPriorityNATDest},
	hookTapInput:    {nftables.ChainTypeFilter, nftables.ChainHookInput, nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)},
	hookTapForward:  {nftables.ChainTypeFilter, nftables.ChainHookForward, nftables.ChainPriorityRef(*nftables.ChainPriorityFilter - 10)},
}

// nftExprs renders r as nftables expressions; nftRuleText (in the
// tests) says the same in nft's words.
// Each table is one family's, so its rules see that family's packets only.
func nftExprs(bridge string, r rule) []expr.Any {
	var e []expr.Any
	if r.iif != "" {
		e = append(e, cmpMeta(expr.MetaKeyIIFNAME, ifname(r.iif))...)
	}
	if r.iifPrefix != "" {
		// Without the terminating NUL: the name starts with it.
		e = append(e, cmpMeta(expr.MetaKeyIIFNAME, []byte(r.iifPrefix))...)
	}
	if r.oif != "" {
		e = append(e, cmpMeta(expr.MetaKeyOIFNAME, ifname(r.oif))...)
	}
	if r.src.IsValid() {
		e = append(e, matchPrefix(srcOffset(r.src), r.src, false)...)
	}
	if r.dst.IsValid() {
		e = append(e, matchPrefix(srcOffset(r.dst)+uint32(r.dst.Addr().BitLen()/8), r.dst, r.notDst)...)
	}
	if r.proto != "" {
		e = append(e, cmpMeta(expr.MetaKeyL4PROTO, []byte{protoNumbers[r.proto]})...)
	}
	if r.dport != 0 {
		e = append(e,
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(r.dport)})
	}
	if r.localDst {
		e = append(e,
			&expr.Fib{Register: 1, ResultADDRTYPE: true, FlagDADDR: true},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)})
	}
	if r.established {
		e = append(e, ctBits(expr.CtKeySTATE, expr.CtStateBitESTABLISHED|expr.CtStateBitRELATED)...)
	}
	if r.ctDNAT {
		e = append(e, ctBits(expr.CtKeySTATUS, ipsDstNAT)...)
	}
	return append(e, nftVerdict(bridge, r)...)
}

// srcOffset is where the source address of p's family lies in the
// network header; the destination follows it.
func srcOffset(p netip.Prefix) uint32 {
	if p.Addr().Is6() {
		return 8
	}
	return 12
}

// ICMP destination-unreachable codes (RFC 792, RFC 1812, RFC 4443), as
// iptables' REJECT sends them.
const (
	icmpPortUnreachable  = 3
	icmpHostProhibited   = 10
	icmp6AdminProhibited = 1
	icmp6PortUnreachable = 4
)

var protoNumbers = map[string]byte{"tcp": unix.IPPROTO_TCP, "udp": unix.IPPROTO_UDP, "icmp": unix.IPPROTO_ICMP, "icmpv6": unix.IPPROTO_ICMPV6}

func nftVerdict(bridge string, r rule) []expr.Any {
	switch r.verdict {
	case accept:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictAccept}}
	case returnVerdict:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictReturn}}
	case drop:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictDrop}}
	case jumpVerdict:
		return []expr.Any{&expr.Verdict{Kind: expr.VerdictJump, Chain: nftChain(bridge, r.jumpTo)}}
	case masquerade:
		if !r.toPorts {
			return []expr.Any{&expr.Masq{}}
		}
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: binaryutil.BigEndian.PutUint16(1024)},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(65535)},
			// masqPortsFix adds the flag that makes the kernel use the range.
			&expr.Masq{ToPorts: true, RegProtoMin: 1, RegProtoMax: 2},
		}
	case rejectPortUnreachable:
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpPortUnreachable}}
	case rejectTCPReset:
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_TCP_RST}}
	case rejectHostProhibited:
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmpHostProhibited}}
	case rejectPortUnreachable6:
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmp6PortUnreachable}}
	case rejectAdminProhibited6:
		return []expr.Any{&expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: icmp6AdminProhibited}}
	case dnat:
		addr := r.dnatTo.Addr().As4()
		return []expr.Any{
			&expr.Immediate{Register: 1, Data: addr[:]},
			&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(r.dnatTo.Port())},
			&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: 1, RegProtoMin: 2, Specified: true},
		}
	}
	panic(fmt.Sprintf("firewall: verdict %d has no nftables form", r.verdict))
}

// ipsDstNAT is conntrack's IPS_DST_NAT status bit: the connection's
// destination was rewritten.
const ipsDstNAT = 1 << 5

// ctBits matches a conntrack field that has any of bits.
func ctBits(key expr.CtKey, bits uint32) []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: key},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4, Mask: binaryutil.NativeEndian.PutUint32(bits), Xor: make([]byte, 4)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: make([]byte, 4)},
	}
}

func cmpMeta(key expr.MetaKey, value []byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: key, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: value},
	}
}

// ifname is an interface name as the kernel compares it: NUL-terminated.
func ifname(name string) []byte { return append([]byte(name), 0) }

// matchPrefix compares the address of p's family at offset of the network
// header with p.
func matchPrefix(offset uint32, p netip.Prefix, negate bool) []expr.Any {
	op := expr.CmpOpEq
	if negate {
		op = expr.CmpOpNeq
	}
	addr := p.Masked().Addr().AsSlice()
	size := uint32(len(addr))
	e := []expr.Any{&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: size}}
	if p.Bits() < p.Addr().BitLen() {
		e = append(e, &expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: size, Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()), Xor: make([]byte, size)})
	}
	return append(e, &expr.Cmp{Op: op, Register: 1, Data: addr})
}
