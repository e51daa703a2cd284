package lifecycle_test

import (
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// restarts are the two ways netgrantd goes away while VMs run.
var restarts = []struct {
	name    string
	restart func(env *harness.Env, whileDown func())
}{
	{"SIGKILL", func(env *harness.Env, whileDown func()) { env.KillDaemon(); whileDown(); env.StartDaemon() }},
	{"SIGTERM", func(env *harness.Env, whileDown func()) {
		// SIGTERM is what a package upgrade or systemctl restart sends.
		env.KillDaemonGracefully()
		whileDown()
		env.StartDaemon()
	}},
}

func TestRestartAdoptsWhatIsStillHeld(t *testing.T) {
	for _, r := range restarts {
		t.Run(r.name, func(t *testing.T) {
			env := harness.Start(t, harness.Options{Rules: rules})
			alice := env.Client(t, harness.UserAlice)
			netPath := mustCreateNetwork(t, alice, "kept", opts{"subnet": v("10.97.4.0/24")})
			tapPath, fds, info := mustCreateTap(t, alice, opts{"network": v("kept")})
			ifname := info["ifname"].Value().(string)
			forward := func(c *harness.Client, path dbus.ObjectPath, port uint16, guest string) {
				t.Helper()
				if r := c.Do(harness.Call{Path: path, Interface: networkIface, Method: "AddPortForward",
					Args: []any{"tcp", port, guest, uint16(22), opts{}}}); r.Err() != nil {
					t.Fatalf("AddPortForward %d: %v", port, r.Err())
				}
			}
			forward(alice, netPath, 8090, "10.97.4.50")
			bob := env.Client(t, harness.UserBob)
			dropped := mustCreateNetwork(t, bob, "dropped", opts{"subnet": v("10.97.0.0/24")})
			forward(bob, dropped, 8091, "10.97.0.51")
			rulesBefore := harness.FirewallRules(t)
			dnsmasqBefore := harness.ProcessesNamed("dnsmasq")

			r.restart(env, func() { bob.Kill() })

			// What alice holds is back, working and watched.
			objs := objectPaths(env)
			if strings.Join(objs, " ") != string(netPath)+" "+string(tapPath) {
				t.Fatalf("objects after the restart: %v, want %s and %s", objs, netPath, tapPath)
			}
			if h := env.Property(netPath, networkIface, "Holders"); h != uint32(1) {
				t.Errorf("Holders = %v after the restart, want 1", h)
			}
			if got := env.Property(netPath, networkIface, "Taps").([]dbus.ObjectPath); len(got) != 1 || got[0] != tapPath {
				t.Errorf("Network.Taps = %v after the restart", got)
			}
			if links := harness.Links(t, "ng-"); len(links) != 1 {
				t.Errorf("bridges after the restart: %v, want only the kept network's", links)
			}
			if pids := harness.ProcessesNamed("dnsmasq"); len(pids) != 1 {
				t.Errorf("dnsmasq processes after the restart: %v (before: %v)", pids, dnsmasqBefore)
			}
			if name, flags := alice.TunGetIff(fds[0]); name != ifname || flags == 0 {
				t.Errorf("the tap fd no longer works: %q %#x", name, flags)
			}
			// bob's network went with bob, firewall rules and port
			// forward included; alice's forward is back.
			if after := harness.FirewallRules(t); strings.Contains(after, "10.97.0.0/24") || strings.Contains(after, "10.97.0.51") ||
				!strings.Contains(after, "10.97.4.0/24") || !strings.Contains(after, "10.97.4.50:22") {
				t.Errorf("firewall after the restart:\n%s\nbefore:\n%s", after, rulesBefore)
			}
			if got := fmt.Sprint(env.Property(netPath, networkIface, "PortForwards")); got != "[[tcp 8090 10.97.4.50 22 ]]" {
				t.Errorf("PortForwards after the restart: %s", got)
			}

			// The new daemon watches the adopted holder and tap.
			alice.CloseFD(fds[0])
			harness.WaitFor(t, "the adopted tap to go with its fd", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
			alice.Kill()
			harness.WaitFor(t, "the adopted network to go with its holder", func() bool { return len(env.ManagedObjects()) == 0 })
			assertNothingLeft(t, env, baselineRules(t))
		})
	}
}

// baselineRules is iptables with nothing of netgrant's: the sandbox starts
// empty.
func baselineRules(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, line := range strings.SplitAfter(harness.IPTablesSave(t), "\n") {
		if !strings.Contains(line, "NETGRANT") && !strings.Contains(line, "NG-") {
			b.WriteString(line)
		}
	}
	return b.String()
}

// A call the daemon dies in leaves nothing once the next daemon started.
func TestHalfDoneCallIsUndone(t *testing.T) {
	log := newHookLog(t)
	marker := log + ".started"
	env := harness.Start(t, harness.Options{Rules: rules, Hooks: map[string]string{
		"10-log":  log.script("10-log"),
		"20-slow": `[ "$1" = network-up ] || exit 0; touch ` + string(marker) + `; sleep 5`,
	}})
	before := harness.IPTablesSave(t)
	alice := env.Client(t, harness.UserAlice)
	done := make(chan error, 1)
	go func() {
		_, _, err := alice.CreateNATNetwork("halfway", nil)
		done <- err
	}()
	harness.WaitFor(t, "the slow network-up hook to start", func() bool { return len(log.runs(t, "network-up")) == 1 && fileExists(string(marker)) })
	if len(harness.Links(t, "ng-")) != 1 || len(harness.ProcessesNamed("dnsmasq")) != 1 {
		t.Fatal("the call had not set the network up when its hook ran")
	}
	env.KillDaemon()
	if err := <-done; err == nil {
		t.Fatal("the call the daemon died in succeeded")
	}
	env.StartDaemon()
	log.waitRuns(t, "network-down", "10-log network-down")
	assertNothingLeft(t, env, before)
}

func TestFirewallRulesComeBackAfterAFlush(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	mustCreateNetwork(t, alice, "lab", opts{"subnet": v("10.97.5.0/24")})
	want := harness.IPTablesSave(t)
	flush := func() {
		run(t, "iptables", "-F")
		run(t, "iptables", "-t", "nat", "-F")
		if strings.Contains(harness.IPTablesSave(t), "10.97.5.0/24") {
			t.Fatal("the flush left netgrant's rules")
		}
	}
	hasLabRules := func() bool {
		got := harness.IPTablesSave(t)
		for _, line := range strings.Split(want, "\n") {
			if !strings.Contains(got, line) {
				return false
			}
		}
		return true
	}

	// The next time netgrant touches the firewall.
	flush()
	mustCreateNetwork(t, alice, "second", nil)
	if !hasLabRules() {
		t.Errorf("creating another network did not restore lab's rules:\n%s", harness.IPTablesSave(t))
	}

	// firewalld's reload.
	flush()
	if err := env.ActAsFirewalld(t).Emit("/org/fedoraproject/FirewallD1", "org.fedoraproject.FirewallD1.Reloaded"); err != nil {
		t.Fatal(err)
	}
	harness.WaitFor(t, "the rules to come back after firewalld's Reloaded", hasLabRules)

	// A restart.
	flush()
	env.RestartDaemon()
	if !hasLabRules() {
		t.Errorf("a restart did not restore lab's rules:\n%s", harness.IPTablesSave(t))
	}
}

// A restart never loses a held network: 50 restarts, SIGKILL and SIGTERM
// in turn, with the network's holder on the bus and a guest renewing its
// lease after each. The next dnsmasq used to start before the previous
// one had let go of its sockets, and the network was then removed as one
// "whose dnsmasq would not start again", in about half of the restarts.
func TestRestartsNeverLoseAHeldNetwork(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	netPath, info, err := alice.CreateNATNetwork("kept", opts{"subnet": v("10.97.6.0/24")})
	if err != nil {
		t.Fatal(err)
	}
	dhcp := harness.AddNetnsGuest(t, "renewer", info["bridge"].Value().(string)).RunDHCPClient(t)
	leased := dhcp.IP(t)
	for i := range 50 {
		how := restarts[i%2]
		how.restart(env, func() {})
		if objs := objectPaths(env); len(objs) != 1 || objs[0] != string(netPath) {
			t.Fatalf("restart %d (%s): objects %v, want %s", i+1, how.name, objs, netPath)
		}
		if h := env.Property(netPath, networkIface, "Holders"); h != uint32(1) {
			t.Fatalf("restart %d (%s): Holders = %v, want 1", i+1, how.name, h)
		}
		if renewed := dhcp.Renew(t); renewed != leased {
			t.Fatalf("restart %d (%s): the guest's renewal gave %s, its lease was %s", i+1, how.name, renewed, leased)
		}
	}
}

// A forward's port is held by netgrantd itself: while it restarts, a
// program on the host may take the port, and then the program keeps it:
// the next netgrantd drops that forward rather than shadow the program,
// and keeps the others.
func TestForwardOfAPortTakenWhileDownIsDropped(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	alice := env.Client(t, harness.UserAlice)
	netPath := mustCreateNetwork(t, alice, "kept", opts{"subnet": v("10.97.7.0/24")})
	for _, port := range []uint16{8096, 8097} {
		if r := alice.Do(harness.Call{Path: netPath, Interface: networkIface, Method: "AddPortForward",
			Args: []any{"tcp", port, "10.97.7.50", uint16(22), opts{}}}); r.Err() != nil {
			t.Fatalf("AddPortForward %d: %v", port, r.Err())
		}
	}
	env.KillDaemon()
	program, err := net.Listen("tcp4", "0.0.0.0:8096")
	if err != nil {
		t.Fatalf("a program taking port 8096 while netgrantd is down: %v", err)
	}
	defer program.Close()
	env.StartDaemon()
	if got := fmt.Sprint(env.Property(netPath, networkIface, "PortForwards")); got != "[[tcp 8097 10.97.7.50 22 ]]" {
		t.Errorf("PortForwards after the restart: %s, want only the forward of 8097", got)
	}
	if rules := harness.FirewallRules(t); strings.Contains(rules, "8096") || !strings.Contains(rules, "8097") {
		t.Errorf("the firewall after the restart:\n%s", rules)
	}
	if _, err := net.Listen("tcp4", "0.0.0.0:8097"); err == nil {
		t.Error("the kept forward's port is not held")
	}
}
