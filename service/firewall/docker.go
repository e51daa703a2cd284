package firewall

import "strings"

// Docker sets iptables' FORWARD policy to DROP. In iptables' own chains
// that is no matter: netgrant's jumps come first. But a table of
// netgrant's own cannot override a drop in another table's base chain, so
// the nftables backend does what Docker documents for other forwarding
// software: it accepts its bridges' traffic in DOCKER-USER, which Docker
// creates and never flushes. netgrant's table still filters that traffic
// after the accept.
const dockerUserChain = "DOCKER-USER"

// dockerUserMark tells netgrant's rules in DOCKER-USER from the admin's.
const dockerUserMark = "-m comment --comment netgrant"

func dockerUserSpecs(nets []Network) []string {
	var specs []string
	for _, n := range nets {
		specs = append(specs,
			"-i "+n.Bridge+" "+dockerUserMark+" -j ACCEPT",
			"-o "+n.Bridge+" "+dockerUserMark+" -j ACCEPT")
	}
	return specs
}

// dockerUserScript is the iptables-restore --noflush input that makes
// netgrant's rules in DOCKER-USER, whose rules are have, those of nets;
// "" when they already are. The admin's rules stay, after netgrant's.
func dockerUserScript(have []string, nets []Network) string {
	want := dockerUserSpecs(nets)
	var lines []string
	for _, spec := range have {
		if strings.Contains(spec, dockerUserMark) && !contains(want, spec) {
			lines = append(lines, "-D "+dockerUserChain+" "+spec)
		}
	}
	for i := len(want) - 1; i >= 0; i-- {
		if !contains(have, want[i]) {
			lines = append(lines, "-I "+dockerUserChain+" 1 "+want[i])
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "*filter\n" + strings.Join(lines, "\n") + "\nCOMMIT\n"
}

func contains(list []string, s string) bool { return countOf(list, s) > 0 }
