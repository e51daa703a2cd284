package attack_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// One manager lock was held while hooks (up to TimeoutSec), dnsmasq and
// iptables ran: a network whose network-up hook took its time held up
// every other user's calls. Here alice's hook waits until the test lets
// it go; meanwhile bob's CreateTap and CreateNATNetwork must be answered.
func TestSlowHookHoldsUpNobodyElse(t *testing.T) {
	gate := t.TempDir()
	started, release := filepath.Join(gate, "started"), filepath.Join(gate, "release")
	hook := `[ "$1" = network-up ] && [ "$NETGRANT_NETWORK" = slow ] || exit 0
touch ` + started + `
while [ ! -e ` + release + ` ]; do sleep 0.05; done
`
	env := harness.Start(t, harness.Options{
		Rules:  allowAliceAndBob,
		Config: "[Hooks]\nTimeoutSec=600\n",
		Hooks:  map[string]string{"50-slow": hook},
	})
	alice, bob := env.Client(t, harness.UserAlice), env.Client(t, harness.UserBob)
	t.Cleanup(func() { os.WriteFile(release, nil, 0o644) })

	slow := alice.Begin(harness.Call{Method: "CreateNATNetwork", Args: []any{"slow", map[string]dbus.Variant{}}})
	harness.WaitFor(t, "alice's network-up hook to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})

	tapTook := answeredWhileBlocked(t, "CreateTap", func() error { _, _, _, err := bob.CreateTap(nil); return err })
	netTook := answeredWhileBlocked(t, "CreateNATNetwork", func() error { _, _, err := bob.CreateNATNetwork("quick", nil); return err })
	t.Logf("while alice's network-up hook ran, bob's CreateTap took %v and CreateNATNetwork %v", tapTook, netTook)

	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if r := slow(); r.ErrorName != "" {
		t.Fatalf("alice's network after her hook finished: %s: %s", r.ErrorName, r.ErrorMessage)
	}
}

// answeredWhileBlocked makes a call of bob's and returns how long it took.
// The minute's bound only turns a call held up behind alice's hook, which
// waits for the test, into a failure instead of a hang.
func answeredWhileBlocked(t *testing.T, what string, call func() error) time.Duration {
	t.Helper()
	begin := time.Now()
	done := make(chan error, 1)
	go func() { done <- call() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("bob's %s while alice's hook runs: %v", what, err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("bob's %s is still waiting after a minute: alice's hook holds him up", what)
	}
	return time.Since(begin)
}
