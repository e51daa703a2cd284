package firewall

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// The iptables backend's layout: per-network chains named NG-<bridge>-IN,
// -TO, -FROM (filter) and -NAT (nat), jumped to from NETGRANT-INPUT,
// NETGRANT-FORWARD and NETGRANT-POSTROUTING, which the built-in chains jump
// to first of all, so other tools' rules and policies (Docker's FORWARD
// DROP) do not decide for netgrant's guests.
const chainPrefix = "NG-"

var roleSuffixes = [...]string{roleIn: "-IN", roleTo: "-TO", roleFrom: "-FROM", roleNAT: "-NAT", roleDNAT: "-DNAT"}

// topChain is one of netgrant's chains that a built-in chain jumps to.
type topChain struct {
	table, builtin, name string
}

var topChains = [...]topChain{
	hookInput:       {"filter", "INPUT", "NETGRANT-INPUT"},
	hookForward:     {"filter", "FORWARD", "NETGRANT-FORWARD"},
	hookPostrouting: {"nat", "POSTROUTING", "NETGRANT-POSTROUTING"},
	hookPrerouting:  {"nat", "PREROUTING", "NETGRANT-PREROUTING"},
	hookOutput:      {"nat", "OUTPUT", "NETGRANT-OUTPUT"},
	hookTapInput:    {"filter", "INPUT", "NETGRANT-TAPS-IN"},
	hookTapForward:  {"filter", "FORWARD", "NETGRANT-TAPS-FWD"},
}

func iptablesChain(bridge string, r role) string { return chainPrefix + bridge + roleSuffixes[r] }

func iptablesTable(r role) string { return topChains[roleHooks[r]].table }

// isNetworkChain tells whether name in table is a per-network chain of ours.
func isNetworkChain(table, name string) bool {
	if !strings.HasPrefix(name, chainPrefix) {
		return false
	}
	for r, suffix := range roleSuffixes {
		if iptablesTable(role(r)) == table && len(name) > len(chainPrefix)+len(suffix) && strings.HasSuffix(name, suffix) {
			return true
		}
	}
	return false
}

// ruleSpec renders r as iptables-save prints it back, so the rules in the
// kernel can be compared with it as text.
func ruleSpec(bridge string, r rule) string {
	var b []string
	if r.src.IsValid() {
		b = append(b, "-s", r.src.String())
	}
	if r.dst.IsValid() {
		if r.notDst {
			b = append(b, "!")
		}
		b = append(b, "-d", r.dst.String())
	}
	if r.iif != "" {
		b = append(b, "-i", r.iif)
	}
	if r.iifPrefix != "" {
		b = append(b, "-i", r.iifPrefix+"+")
	}
	if r.oif != "" {
		b = append(b, "-o", r.oif)
	}
	if r.proto != "" {
		b = append(b, "-p", protoName(r.proto))
	}
	if r.dport != 0 {
		b = append(b, "-m", r.proto, "--dport", strconv.Itoa(int(r.dport)))
	}
	if r.localDst {
		b = append(b, "-m", "addrtype", "--dst-type", "LOCAL")
	}
	if r.established {
		b = append(b, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED")
	}
	if r.ctDNAT {
		b = append(b, "-m", "conntrack", "--ctstate", "DNAT")
	}
	switch r.verdict {
	case accept:
		b = append(b, "-j", "ACCEPT")
	case returnVerdict:
		b = append(b, "-j", "RETURN")
	case drop:
		b = append(b, "-j", "DROP")
	case jumpVerdict:
		b = append(b, "-j", iptablesChain(bridge, r.jumpTo))
	case masquerade:
		b = append(b, "-j", "MASQUERADE")
		if r.toPorts {
			b = append(b, "--to-ports", "1024-65535")
		}
	case rejectPortUnreachable:
		b = append(b, "-j", "REJECT", "--reject-with", "icmp-port-unreachable")
	case rejectTCPReset:
		b = append(b, "-j", "REJECT", "--reject-with", "tcp-reset")
	case rejectHostProhibited:
		b = append(b, "-j", "REJECT", "--reject-with", "icmp-host-prohibited")
	case rejectPortUnreachable6:
		b = append(b, "-j", "REJECT", "--reject-with", "icmp6-port-unreachable")
	case rejectAdminProhibited6:
		b = append(b, "-j", "REJECT", "--reject-with", "icmp6-adm-prohibited")
	case dnat:
		b = append(b, "-j", "DNAT", "--to-destination", r.dnatTo.String())
	}
	return strings.Join(b, " ")
}

// ruleset is what iptables-save shows of the filter and nat tables: for
// each table, its chains and each chain's rule specs in order.
type ruleset map[string]map[string][]string

// parseSave reads iptables-save's output.
func parseSave(out string) ruleset {
	rs := ruleset{}
	var table map[string][]string
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "*"):
			table = map[string][]string{}
			rs[line[1:]] = table
		case table == nil:
		case strings.HasPrefix(line, ":"):
			if name, _, ok := strings.Cut(line[1:], " "); ok {
				table[name] = []string{}
			}
		case strings.HasPrefix(line, "-A "):
			chain, spec, _ := strings.Cut(line[3:], " ")
			table[chain] = append(table[chain], spec)
		}
	}
	return rs
}

// wantedChains returns the chains of ours nets need in fam's iptables, by
// table, with their rule specs.
func wantedChains(fam family, nets []Network) ruleset {
	want := ruleset{"filter": {}, "nat": {}}
	nets = withFamily(fam, nets)
	if len(nets) == 0 {
		return want
	}
	for _, top := range topChains {
		want[top.table][top.name] = []string{}
	}
	for h, rules := range hookRules(fam, nets) {
		top := topChains[h]
		for _, nr := range rules {
			want[top.table][top.name] = append(want[top.table][top.name], ruleSpec(nr.owner, nr.rule))
		}
	}
	for _, n := range nets {
		for _, c := range networkChains(fam, n) {
			specs := make([]string, len(c.rules))
			for i, r := range c.rules {
				specs[i] = ruleSpec(n.Bridge, r)
			}
			want[iptablesTable(c.role)][iptablesChain(n.Bridge, c.role)] = specs
		}
	}
	return want
}

// restoreScript is the input for iptables-restore --noflush that turns have
// into want, touching only netgrant's chains and the built-in chains' jumps
// to them; "" when nothing needs to change. A chain declared in it is
// flushed, so only chains that differ are declared and rewritten.
func restoreScript(have, want ruleset) string {
	var b strings.Builder
	for _, table := range []string{"filter", "nat"} {
		var declare, commands, deletes []string
		for _, name := range slices.Sorted(maps.Keys(want[table])) {
			specs, ok := have[table][name]
			if ok && slices.Equal(specs, want[table][name]) {
				continue
			}
			declare = append(declare, ":"+name+" - [0:0]")
			for _, spec := range want[table][name] {
				commands = append(commands, "-A "+name+" "+spec)
			}
		}
		for _, top := range topChains {
			if top.table != table {
				continue
			}
			_, wanted := want[table][top.name]
			count := countOf(have[table][top.builtin], "-j "+top.name)
			switch {
			case wanted && count == 0:
				commands = append([]string{"-I " + top.builtin + " 1 -j " + top.name}, commands...)
			case wanted:
				count-- // one stays
			}
			for ; count > 0; count-- {
				commands = append([]string{"-D " + top.builtin + " -j " + top.name}, commands...)
			}
			if _, exists := have[table][top.name]; exists && !wanted {
				declare = append(declare, ":"+top.name+" - [0:0]")
				deletes = append(deletes, "-X "+top.name)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(have[table])) {
			if _, wanted := want[table][name]; !wanted && isNetworkChain(table, name) {
				declare = append(declare, ":"+name+" - [0:0]")
				deletes = append(deletes, "-X "+name)
			}
		}
		if len(declare)+len(commands)+len(deletes) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", table)
		for _, lines := range [][]string{declare, commands, deletes} {
			for _, line := range lines {
				b.WriteString(line + "\n")
			}
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

func countOf(list []string, s string) int {
	n := 0
	for _, x := range list {
		if x == s {
			n++
		}
	}
	return n
}
