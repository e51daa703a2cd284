package network_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/harness"
)

// Docker, starting after netgrant on the nftables backend, sets FORWARD's
// policy to DROP, which netgrant's own table cannot override: netgrantd
// puts its accepts into Docker's DOCKER-USER as soon as Docker makes it,
// and a guest keeps reaching the upstream host.
func TestDockerStartingAfterNetgrant(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules, Config: "[Firewall]\nBackend=nftables\n"})
	addUpstreamWithDNS(t)
	serveHello(t, nil)
	alice := env.Client(t, harness.UserAlice)
	_, info := mustCreateNetwork(t, alice, "dk", nil)
	bridge, gateway := info["bridge"].Value().(string), info["gateway"].Value().(string)
	g := addNetnsGuest(t, bridge)
	g.check(t, gateway)

	// What dockerd does as it starts.
	run(t, "iptables", "-P", "FORWARD", "DROP")
	t.Cleanup(func() { exec.Command("iptables", "-P", "FORWARD", "ACCEPT").Run() })
	run(t, "iptables", "-N", "DOCKER-USER")
	t.Cleanup(func() {
		exec.Command("iptables", "-D", "FORWARD", "-j", "DOCKER-USER").Run()
		exec.Command("iptables", "-F", "DOCKER-USER").Run()
		exec.Command("iptables", "-X", "DOCKER-USER").Run()
	})
	run(t, "iptables", "-I", "FORWARD", "-j", "DOCKER-USER")
	harness.WaitFor(t, "netgrant's accepts in DOCKER-USER", func() bool {
		out, _ := exec.Command("iptables", "-S", "DOCKER-USER").Output()
		return strings.Contains(string(out), "-o "+bridge+" -m comment --comment netgrant -j ACCEPT")
	})
	g.check(t, gateway)
}
