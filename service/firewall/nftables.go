package firewall

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

// protoName is how iptables-save and nft(8) print a protocol.
func protoName(proto string) string {
	if proto == "icmpv6" {
		return "ipv6-icmp"
	}
	return proto
}
