package firewall

import (
	"fmt"
	"net/netip"
	"strings"
)

// The nftables backend's layout: a table per family, ip netgrant and ip6
// netgrant, each with base chains input, forward (filter, priority 0),
// postrouting (nat, srcnat), prerouting and output (nat, dstnat), and
// per-network chains <bridge>-in, -to, -from, -nat and -dnat.
const nftTable = "netgrant"

var nftFamilyNames = [...]string{ipv4: "ip", ipv6: "ip6"}

var nftRoleSuffixes = [...]string{roleIn: "-in", roleTo: "-to", roleFrom: "-from", roleNAT: "-nat", roleDNAT: "-dnat"}

type nftBaseChain struct {
	name, kind, hook, priority string
}

var nftBaseChains = [...]nftBaseChain{
	hookInput:       {"input", "filter", "input", "filter"},
	hookForward:     {"forward", "filter", "forward", "filter"},
	hookPostrouting: {"postrouting", "nat", "postrouting", "srcnat"},
	hookPrerouting:  {"prerouting", "nat", "prerouting", "dstnat"},
	hookOutput:      {"output", "nat", "output", "dstnat"},
	hookTapInput:    {"taps-input", "filter", "input", "filter - 10"},
	hookTapForward:  {"taps-forward", "filter", "forward", "filter - 10"},
}

func nftChain(bridge string, r role) string { return bridge + nftRoleSuffixes[r] }

// nftText renders the tables nets need as nft(8) would list them: what
// the netlink transaction of NFTables.Apply builds, in words.
func nftText(nets []Network) string {
	if len(nets) == 0 {
		return ""
	}
	var b strings.Builder
	for _, fam := range families {
		nftTableText(&b, fam, nets)
	}
	return b.String()
}

func nftTableText(b *strings.Builder, fam family, nets []Network) {
	fmt.Fprintf(b, "table %s %s {\n", nftFamilyNames[fam], nftTable)
	hooks := hookRules(fam, nets)
	for h, base := range nftBaseChains {
		fmt.Fprintf(b, "\tchain %s {\n\t\ttype %s hook %s priority %s; policy accept;\n", base.name, base.kind, base.hook, base.priority)
		for _, nr := range hooks[hook(h)] {
			fmt.Fprintf(b, "\t\t%s comment %q\n", nftRuleText(nr.owner, nr.rule), nr.owner)
		}
		b.WriteString("\t}\n")
	}
	for _, n := range nets {
		for _, c := range networkChains(fam, n) {
			fmt.Fprintf(b, "\tchain %s {\n", nftChain(n.Bridge, c.role))
			for _, r := range c.rules {
				fmt.Fprintf(b, "\t\t%s\n", nftRuleText(n.Bridge, r))
			}
			b.WriteString("\t}\n")
		}
	}
	b.WriteString("}\n")
}

func nftRuleText(bridge string, r rule) string {
	var b []string
	if r.iif != "" {
		b = append(b, fmt.Sprintf("iifname %q", r.iif))
	}
	if r.iifPrefix != "" {
		b = append(b, fmt.Sprintf("iifname %q", r.iifPrefix+"*"))
	}
	if r.oif != "" {
		b = append(b, fmt.Sprintf("oifname %q", r.oif))
	}
	if r.src.IsValid() {
		b = append(b, nftAddrKeyword(r.src)+" saddr "+nftPrefix(r.src))
	}
	if r.dst.IsValid() {
		op := ""
		if r.notDst {
			op = "!= "
		}
		b = append(b, nftAddrKeyword(r.dst)+" daddr "+op+nftPrefix(r.dst))
	}
	if r.proto != "" {
		b = append(b, "meta l4proto "+protoName(r.proto))
	}
	if r.dport != 0 {
		b = append(b, fmt.Sprintf("th dport %d", r.dport))
	}
	if r.localDst {
		b = append(b, "fib daddr type local")
	}
	if r.established {
		b = append(b, "ct state established,related")
	}
	if r.ctDNAT {
		b = append(b, "ct status dnat")
	}
	switch r.verdict {
	case accept:
		b = append(b, "accept")
	case returnVerdict:
		b = append(b, "return")
	case drop:
		b = append(b, "drop")
	case jumpVerdict:
		b = append(b, "jump "+nftChain(bridge, r.jumpTo))
	case masquerade:
		if r.toPorts {
			b = append(b, "masquerade to :1024-65535")
		} else {
			b = append(b, "masquerade")
		}
	case rejectPortUnreachable:
		b = append(b, "reject with icmp port-unreachable")
	case rejectTCPReset:
		b = append(b, "reject with tcp reset")
	case rejectHostProhibited:
		b = append(b, "reject with icmp host-prohibited")
	case rejectPortUnreachable6:
		b = append(b, "reject with icmpv6 port-unreachable")
	case rejectAdminProhibited6:
		b = append(b, "reject with icmpv6 admin-prohibited")
	case dnat:
		b = append(b, "dnat to "+r.dnatTo.String())
	}
	return strings.Join(b, " ")
}

func nftAddrKeyword(p netip.Prefix) string {
	if p.Addr().Is6() {
		return "ip6"
	}
	return "ip"
}

// protoName is how iptables-save and nft(8) print a protocol.
func protoName(proto string) string {
	if proto == "icmpv6" {
		return "ipv6-icmp"
	}
	return proto
}

// nftPrefix writes a single address as nft lists it, without "/32" or
// "/128".
func nftPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}
