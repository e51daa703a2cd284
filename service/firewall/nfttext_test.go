package firewall

import (
	"fmt"
	"net/netip"
	"strings"
)

// The rules as nft(8) lists them: the words the batch goldens annotate
// each rule of the real netlink batch with (nftbatch_linux_test.go).

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

// nftPrefix writes a single address as nft lists it, without "/32" or
// "/128".
func nftPrefix(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

var etherTypeNames = map[uint16]string{etherIPv4: "ip", etherARP: "arp", etherIPv6: "ip6"}

func frameRuleText(r frameRule) string {
	var b []string
	if r.notSrcMAC != nil {
		b = append(b, "ether saddr != "+r.notSrcMAC.String())
	}
	if r.etherType != 0 {
		b = append(b, "ether type "+etherTypeNames[r.etherType])
	}
	if r.arpFrom {
		b = append(b, "arp htype 1 arp ptype ip arp hlen 6 arp plen 4")
		if r.arpMAC != nil {
			b = append(b, "arp saddr ether "+r.arpMAC.String())
		}
		b = append(b, "arp saddr ip "+nftPrefix(r.arpIP))
	}
	if r.ipSrc.IsValid() {
		b = append(b, nftAddrKeyword(r.ipSrc)+" saddr "+nftPrefix(r.ipSrc))
	}
	if r.proto != "" {
		b = append(b, "meta l4proto "+r.proto)
	}
	if r.proto == "icmpv6" {
		b = append(b, fmt.Sprintf("icmpv6 type %d", r.icmp6Type))
	}
	if r.ndTarget.IsValid() {
		b = append(b, "@th,64,128 "+fmt.Sprintf("0x%x", r.ndTarget.AsSlice()))
	}
	if r.sport != 0 {
		b = append(b, fmt.Sprintf("th sport %d", r.sport))
	}
	if r.dport != 0 {
		b = append(b, fmt.Sprintf("th dport %d", r.dport))
	}
	if r.notChaddr != nil {
		b = append(b, "@th,288,48 != 0x"+strings.ReplaceAll(r.notChaddr.String(), ":", ""))
	}
	switch {
	case r.pass:
		b = append(b, "return")
	case r.learn:
		b = append(b, fmt.Sprintf("limit rate %d/second log group %d drop", learnRate, LearnGroup))
	default:
		b = append(b, "drop")
	}
	return strings.Join(b, " ")
}
