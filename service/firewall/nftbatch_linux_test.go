package firewall

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The nftables goldens are the netlink batch NFTables sends, captured
// with nftables.WithTestDial as newPatchedConn would hand it to the
// kernel, each rule decoded back into its expressions by google/nftables
// and annotated with what nft(8) would list for it (nfttext_test.go).

// captureBatch is the batch queue builds on a connection.
func captureBatch(t *testing.T, queue func(conn *nftables.Conn)) []netlink.Message {
	t.Helper()
	var sent []netlink.Message
	conn, err := nftables.New(nftables.WithTestDial(func(req []netlink.Message) ([]netlink.Message, error) {
		sent = append(sent, masqPortsFix(req)...)
		return nil, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	queue(conn)
	if err := conn.Flush(); err != nil {
		t.Fatal(err)
	}
	return sent
}

// msgType is a netfilter message's NFT_MSG_* type.
func msgType(m netlink.Message) int { return int(m.Header.Type) & 0xff }

// attrs decodes a netfilter message's attributes, after its nfgenmsg.
func attrs(t *testing.T, data []byte) map[uint16][]byte {
	t.Helper()
	ad, err := netlink.NewAttributeDecoder(data)
	if err != nil {
		t.Fatal(err)
	}
	ad.ByteOrder = binary.BigEndian
	out := map[uint16][]byte{}
	for ad.Next() {
		out[ad.Type()] = ad.Bytes()
	}
	return out
}

func cstring(b []byte) string { return strings.TrimRight(string(b), "\x00") }

// renderBatch lists the tables, chains and rules of a batch, each rule
// with its nft text from annotate (by chain, in order) and its
// expressions as the kernel gets them.
func renderBatch(t *testing.T, batch []netlink.Message, annotate map[string][]string) string {
	t.Helper()
	var pending []netlink.Message
	decoder, err := nftables.New(nftables.WithTestDial(func([]netlink.Message) ([]netlink.Message, error) { return pending, nil }))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	seen := map[string]int{}
	families := map[byte]string{unix.NFPROTO_IPV4: "ip", unix.NFPROTO_IPV6: "ip6", unix.NFPROTO_BRIDGE: "bridge"}
	for _, m := range batch {
		if len(m.Data) < 4 {
			continue
		}
		fam, a := m.Data[0], attrs(t, m.Data[4:])
		switch msgType(m) {
		case unix.NFT_MSG_NEWTABLE:
			fmt.Fprintf(&b, "table %s %s\n", families[fam], cstring(a[unix.NFTA_TABLE_NAME]))
		case unix.NFT_MSG_DELTABLE:
			fmt.Fprintf(&b, "delete table %s %s\n", families[fam], cstring(a[unix.NFTA_TABLE_NAME]))
		case unix.NFT_MSG_NEWCHAIN:
			fmt.Fprintf(&b, "  chain %s", cstring(a[unix.NFTA_CHAIN_NAME]))
			if kind, ok := a[unix.NFTA_CHAIN_TYPE]; ok {
				hook := attrs(t, a[unix.NFTA_CHAIN_HOOK])
				fmt.Fprintf(&b, " (type %s hook %d priority %d)", cstring(kind),
					binary.BigEndian.Uint32(hook[unix.NFTA_HOOK_HOOKNUM]), int32(binary.BigEndian.Uint32(hook[unix.NFTA_HOOK_PRIORITY])))
			}
			b.WriteString("\n")
		case unix.NFT_MSG_NEWSET:
			fmt.Fprintf(&b, "  set %s\n", cstring(a[unix.NFTA_SET_NAME]))
		case unix.NFT_MSG_NEWSETELEM:
			fmt.Fprintf(&b, "  elements of set %s\n", cstring(a[unix.NFTA_SET_ELEM_LIST_SET]))
		case unix.NFT_MSG_NEWRULE:
			chain := cstring(a[unix.NFTA_RULE_CHAIN])
			table := &nftables.Table{Name: cstring(a[unix.NFTA_RULE_TABLE]), Family: nftables.TableFamily(fam)}
			pending = []netlink.Message{m}
			rules, err := decoder.GetRules(table, &nftables.Chain{Name: chain})
			if err != nil || len(rules) != 1 {
				t.Fatalf("decoding a rule of chain %s: %v (%d rules)", chain, err, len(rules))
			}
			key := families[fam] + " " + chain
			text := "(no nft text)"
			if i := seen[key]; i < len(annotate[key]) {
				text = annotate[key][i]
			}
			seen[key]++
			fmt.Fprintf(&b, "    # %s\n", text)
			for _, e := range rules[0].Exprs {
				fmt.Fprintf(&b, "      %s\n", exprText(e))
			}
		}
	}
	for key, texts := range annotate {
		if seen[key] != len(texts) {
			t.Errorf("chain %s: the batch has %d rules, nft's words %d", key, seen[key], len(texts))
		}
	}
	return b.String()
}

// exprText is an expression with its fields, byte values as text where
// they are text and as hex otherwise.
func exprText(e any) string {
	if verdict, ok := e.(*expr.Verdict); ok {
		kinds := map[expr.VerdictKind]string{expr.VerdictAccept: "accept", expr.VerdictDrop: "drop",
			expr.VerdictReturn: "return", expr.VerdictJump: "jump", expr.VerdictGoto: "goto"}
		return strings.TrimSpace("Verdict " + kinds[verdict.Kind] + " " + verdict.Chain)
	}
	v := reflect.ValueOf(e).Elem()
	var fields []string
	for i := range v.NumField() {
		f, name := v.Field(i), v.Type().Field(i).Name
		// A set's id is the library's counter, which only links a
		// lookup to its set within one batch: the name says which.
		if !v.Type().Field(i).IsExported() || f.IsZero() || name == "SetID" {
			continue
		}
		var val string
		switch {
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Uint8:
			val = bytesText(f.Bytes())
		default:
			val = fmt.Sprintf("%v", f.Interface())
		}
		fields = append(fields, name+"="+val)
	}
	return v.Type().Name() + " " + strings.Join(fields, " ")
}

func bytesText(b []byte) string {
	text := strings.TrimRight(string(b), "\x00")
	for _, r := range text {
		if !unicode.IsPrint(r) || r > unicode.MaxASCII {
			return fmt.Sprintf("0x%x", b)
		}
	}
	if text == "" {
		return fmt.Sprintf("0x%x", b)
	}
	return fmt.Sprintf("%q", text)
}

// nftWords are the rules of the ip and ip6 tables nets need as nft(8)
// lists them, by "family chain", in order.
func nftWords(nets []Network) map[string][]string {
	words := map[string][]string{}
	for _, fam := range families {
		prefix := nftFamilyNames[fam] + " "
		for h, rules := range hookRules(fam, nets) {
			for _, nr := range rules {
				key := prefix + nftBaseChains[h].name
				words[key] = append(words[key], nftRuleText(nr.owner, nr.rule))
			}
		}
		for _, n := range nets {
			for _, c := range networkChains(fam, n) {
				for _, r := range c.rules {
					key := prefix + nftChain(n.Bridge, c.role)
					words[key] = append(words[key], nftRuleText(n.Bridge, r))
				}
			}
		}
	}
	return words
}

// bridgeWords are the rules of the bridge table as nft(8) lists them.
func bridgeWords(nets []Network) map[string][]string {
	words := map[string][]string{}
	guests := allGuests(nets)
	if len(guests) == 0 {
		return words
	}
	for _, hooked := range bridgeHooks {
		words["bridge "+hooked.name] = []string{"iifname vmap @" + guestMapName}
	}
	for _, ng := range guests {
		for _, r := range guestRules(ng.net, ng.guest) {
			key := "bridge " + guestChain(ng.guest.Tap)
			words[key] = append(words[key], frameRuleText(r))
		}
	}
	return words
}

func TestNFTablesBatchGolden(t *testing.T) {
	batch := captureBatch(t, func(conn *nftables.Conn) {
		for _, fam := range families {
			buildTable(conn, nftTableRef(fam), fam, goldenNets)
		}
	})
	golden(t, "nftables.golden", renderBatch(t, batch, nftWords(goldenNets)))
}

func TestBridgeBatchGolden(t *testing.T) {
	withGuests := []Network{net0, hostOnly, net1}
	withGuests[0].Guests = []Guest{{Tap: "ngtap0", MAC: mustMAC("52:54:00:12:34:56"), IPv4: mustAddr("10.97.0.23")}}
	withGuests[1].Guests = []Guest{{Tap: "ngtap1", MAC: mustMAC("52:54:00:ab:cd:ef")}}
	// A network without IPv6.
	withGuests[2].Guests = []Guest{{Tap: "ngtap2", MAC: mustMAC("52:54:00:00:00:02"), IPv4: mustAddr("10.97.1.2")}}
	batch := captureBatch(t, func(conn *nftables.Conn) {
		var g guestFilter
		if _, err := g.queueRebuild(conn, withGuests); err != nil {
			t.Fatal(err)
		}
	})
	golden(t, "nftables-bridge.golden", renderBatch(t, batch, bridgeWords(withGuests)))
	// Networks without guests have no bridge table.
	empty := captureBatch(t, func(conn *nftables.Conn) {
		var g guestFilter
		if _, err := g.queueRebuild(conn, goldenNets); err != nil {
			t.Fatal(err)
		}
	})
	for _, m := range empty {
		if msgType(m) == unix.NFT_MSG_NEWCHAIN || msgType(m) == unix.NFT_MSG_NEWRULE {
			t.Errorf("networks without guests still get bridge chains or rules")
		}
	}
}
