package firewall

import (
	"fmt"
	"sync"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// bridgeFilterPriority is "priority filter" in the bridge family.
const bridgeFilterPriority = -200

// bridgeHooks are where a guest's frames are checked: prerouting, which
// every frame the bridge switches passes, and input, which every frame the
// bridge hands up the stack passes, those to link-local group addresses
// that it never switches (01:80:c2:00:00:0X) among them. (The one to
// 01:80:c2:00:00:0e that passes neither goes up the tap's own stack,
// where the ip and ip6 tables drop it: tapPortRules.)
var bridgeHooks = [...]struct {
	name string
	hook *nftables.ChainHook
}{
	{"prerouting", nftables.ChainHookPrerouting},
	{"input", nftables.ChainHookInput},
}

// guestFilter keeps the bridge table: rebuilt whole with the rest of the
// rules, or changed guest by guest in between, so a tap costs the same
// beside 500 others as alone. The table dispatches by a map from tap to
// its chain, whose elements go without rule handles.
type guestFilter struct {
	mu sync.Mutex
	// applied is what the kernel holds, by tap; nil when unknown (before
	// the first transaction, after a failed one).
	applied map[string]networkGuest
}

// forget makes the next update rebuild the table whole, as after someone
// may have changed it.
func (g *guestFilter) forget() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.applied = nil
}

func bridgeTableRef() *nftables.Table {
	return &nftables.Table{Family: nftables.TableFamilyBridge, Name: bridgeTable}
}

func guestMap(table *nftables.Table) *nftables.Set {
	return &nftables.Set{Table: table, Name: guestMapName, KeyType: nftables.TypeIFName, DataType: nftables.TypeVerdict, IsMap: true}
}

// queueRebuild adds to conn's batch what replaces the bridge table with
// the one nets need (none without guests); commit records it once the
// batch went through.
func (g *guestFilter) queueRebuild(conn *nftables.Conn, nets []Network) (commit func(ok bool), err error) {
	table := bridgeTableRef()
	conn.AddTable(table)
	conn.DelTable(table)
	want := guestsByTap(nets)
	if len(want) > 0 {
		conn.AddTable(table)
		set := guestMap(table)
		if err := conn.AddSet(set, nil); err != nil {
			return nil, fmt.Errorf("nftables: %w", err)
		}
		for _, ng := range allGuests(nets) {
			if err := queueGuest(conn, table, set, ng); err != nil {
				return nil, err
			}
		}
		policy := nftables.ChainPolicyAccept
		for _, hooked := range bridgeHooks {
			chain := conn.AddChain(&nftables.Chain{Table: table, Name: hooked.name, Type: nftables.ChainTypeFilter,
				Hooknum: hooked.hook, Priority: nftables.ChainPriorityRef(bridgeFilterPriority), Policy: &policy})
			conn.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: []expr.Any{
				&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID, IsDestRegSet: true},
			}})
		}
	}
	return g.commitFunc(want), nil
}

// queueChanges adds to conn's batch what turns the bridge table the last
// transaction left into the one nets need; false if that is unknown or
// the table must be made or removed: then only a rebuild will do.
func (g *guestFilter) queueChanges(conn *nftables.Conn, nets []Network) (commit func(ok bool), ok, changed bool, err error) {
	want := guestsByTap(nets)
	if len(g.applied) == 0 || len(want) == 0 {
		return nil, false, false, nil
	}
	table := bridgeTableRef()
	set := guestMap(table)
	for tap, had := range g.applied {
		if _, stays := want[tap]; stays {
			continue
		}
		if err := conn.SetDeleteElements(set, []nftables.SetElement{{Key: ifnameKey(tap)}}); err != nil {
			return nil, false, false, fmt.Errorf("nftables: %w", err)
		}
		changed = true
		chain := &nftables.Chain{Table: table, Name: guestChain(had.guest.Tap)}
		conn.FlushChain(chain)
		conn.DelChain(chain)
	}
	for tap, ng := range want {
		had, existed := g.applied[tap]
		switch {
		case !existed:
			if err := queueGuest(conn, table, set, ng); err != nil {
				return nil, false, false, err
			}
			changed = true
		case !sameGuest(had, ng):
			changed = true
			chain := &nftables.Chain{Table: table, Name: guestChain(tap)}
			conn.FlushChain(chain)
			queueGuestRules(conn, chain, ng)
		}
	}
	return g.commitFunc(want), true, changed, nil
}

func (g *guestFilter) commitFunc(want map[string]networkGuest) func(bool) {
	return func(ok bool) {
		if ok {
			g.applied = want
		} else {
			g.applied = nil
		}
	}
}

// update applies the guests of nets in a transaction of their own,
// changing only what differs from the last one where it can. A table
// whose guests did not change is left as it is, once it is seen to be
// there: a network's rules change without rewriting every guest's.
func (g *guestFilter) update(nets []Network) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	conn, closeConn, err := newPatchedConn()
	if err != nil {
		return err
	}
	defer closeConn()
	commit, ok, changed, err := g.queueChanges(conn, nets)
	if err != nil {
		return err
	}
	// A batch that changes nothing would not notice a table that is gone.
	if ok && (changed && conn.Flush() == nil || !changed && tableExists(bridgeTable, nftables.TableFamilyBridge)) {
		commit(true)
		return nil
	}
	// Unknown, or someone removed or changed the table: build it whole.
	if commit, err = g.queueRebuild(conn, nets); err != nil {
		return err
	}
	err = conn.Flush()
	commit(err == nil)
	if err != nil {
		return fmt.Errorf("nftables: applying table bridge %s: %w", bridgeTable, err)
	}
	return nil
}

// tableExists checks that nobody removed a table of netgrant's (nft flush
// ruleset) since its last transaction, which an empty batch would not
// notice.
func tableExists(name string, family nftables.TableFamily) bool {
	conn, err := nftables.New()
	if err != nil {
		return false
	}
	_, err = conn.ListTableOfFamily(name, family)
	return err == nil
}

func queueGuest(conn *nftables.Conn, table *nftables.Table, set *nftables.Set, ng networkGuest) error {
	chain := conn.AddChain(&nftables.Chain{Table: table, Name: guestChain(ng.guest.Tap)})
	queueGuestRules(conn, chain, ng)
	err := conn.SetAddElements(set, []nftables.SetElement{{Key: ifnameKey(ng.guest.Tap),
		VerdictData: &expr.Verdict{Kind: expr.VerdictJump, Chain: chain.Name}}})
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return nil
}

func queueGuestRules(conn *nftables.Conn, chain *nftables.Chain, ng networkGuest) {
	for _, r := range guestRules(ng.net, ng.guest) {
		conn.AddRule(&nftables.Rule{Table: chain.Table, Chain: chain, Exprs: frameExprs(r)})
	}
}

// ifnameKey is an interface name as an ifname set holds it.
func ifnameKey(name string) []byte {
	key := make([]byte, unix.IFNAMSIZ)
	copy(key, name)
	return key
}

// frameExprs renders r as nftables expressions, as frameRuleText (in
// the tests) describes them.
func frameExprs(r frameRule) []expr.Any {
	var e []expr.Any
	if r.notSrcMAC != nil {
		e = append(e, cmpPayload(expr.PayloadBaseLLHeader, 6, r.notSrcMAC, expr.CmpOpNeq)...)
	}
	if r.etherType != 0 {
		e = append(e, cmpPayload(expr.PayloadBaseLLHeader, 12, binaryutil.BigEndian.PutUint16(r.etherType), expr.CmpOpEq)...)
	}
	if r.arpFrom {
		// htype Ethernet, ptype IPv4, hlen 6, plen 4: the offsets below
		// hold what they name.
		e = append(e, cmpPayload(expr.PayloadBaseNetworkHeader, 0, []byte{0, 1, 0x08, 0x00, 6, 4}, expr.CmpOpEq)...)
		if r.arpMAC != nil {
			e = append(e, cmpPayload(expr.PayloadBaseNetworkHeader, 8, r.arpMAC, expr.CmpOpEq)...)
		}
		e = append(e, matchPrefix(14, r.arpIP, false)...)
	}
	if r.ipSrc.IsValid() {
		e = append(e, matchPrefix(srcOffset(r.ipSrc), r.ipSrc, false)...)
	}
	if r.proto != "" {
		e = append(e, cmpMeta(expr.MetaKeyL4PROTO, []byte{frameProtoNumbers[r.proto]})...)
	}
	if r.proto == "icmpv6" {
		e = append(e, cmpPayload(expr.PayloadBaseTransportHeader, 0, []byte{r.icmp6Type}, expr.CmpOpEq)...)
	}
	if r.ndTarget.IsValid() {
		// The target follows type, code, checksum and flags.
		e = append(e, cmpPayload(expr.PayloadBaseTransportHeader, 8, r.ndTarget.AsSlice(), expr.CmpOpEq)...)
	}
	if r.sport != 0 {
		e = append(e, cmpPayload(expr.PayloadBaseTransportHeader, 0, binaryutil.BigEndian.PutUint16(r.sport), expr.CmpOpEq)...)
	}
	if r.dport != 0 {
		e = append(e, cmpPayload(expr.PayloadBaseTransportHeader, 2, binaryutil.BigEndian.PutUint16(r.dport), expr.CmpOpEq)...)
	}
	if r.notChaddr != nil {
		// chaddr: 8 bytes of UDP header, then 28 of DHCP before it.
		e = append(e, cmpPayload(expr.PayloadBaseTransportHeader, 36, r.notChaddr, expr.CmpOpNeq)...)
	}
	switch {
	case r.pass:
		return append(e, &expr.Verdict{Kind: expr.VerdictReturn})
	case r.learn:
		e = append(e,
			&expr.Limit{Type: expr.LimitTypePkts, Rate: learnRate, Unit: expr.LimitTimeSecond, Burst: 5},
			&expr.Log{Key: 1 << unix.NFTA_LOG_GROUP, Group: LearnGroup})
	}
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

var frameProtoNumbers = map[string]byte{"udp": unix.IPPROTO_UDP, "icmpv6": unix.IPPROTO_ICMPV6}

func cmpPayload(base expr.PayloadBase, offset uint32, value []byte, op expr.CmpOp) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: base, Offset: offset, Len: uint32(len(value))},
		&expr.Cmp{Op: op, Register: 1, Data: value},
	}
}
