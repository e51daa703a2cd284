package attack_test

import (
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/harness"
)

// silentAgentRules make mallory prove who she is for a tap, so each of her
// interactive calls waits at her agent; alice is allowed everything.
const silentAgentRules = `
polkit.addRule(function(action, subject) {
	if (action.id.indexOf("org.netgrant.") != 0) return polkit.Result.NOT_HANDLED;
	if (subject.user == "ngalice") return polkit.Result.YES;
	if (subject.user == "ngmallory") return polkit.Result.AUTH_SELF;
	return polkit.Result.NOT_HANDLED;
});
`

const quotaExceeded = "org.netgrant.NetGrant1.Error.QuotaExceeded"

// A user whose agent never answers parked 128 interactive checks, filling
// netgrantd's pending replies to polkit: every other user was refused for
// as long as she stayed. Now a uid has at most 4 checks with polkit; its
// later calls wait their turn (32 at most, then QuotaExceeded), and a
// caller that leaves takes its check with it: the silent agent's owner is
// delayed, nobody else is.
func TestSilentAgentHurtsOnlyItsOwner(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: silentAgentRules})
	interactiveTap := harness.Call{Method: "CreateTap", Args: []any{emptyOptions()}, Interactive: true}

	var parked []*harness.Client
	var agents []*harness.Agent
	for range 4 {
		c := env.Client(t, harness.UserMallory)
		agents = append(agents, harness.SilentAgent(t, harness.UserMallory, c.PID()))
		c.Begin(interactiveTap) // never answered while mallory is silent
		parked = append(parked, c)
	}
	for i, a := range agents {
		harness.WaitFor(t, "polkit to ask mallory's agent", func() bool {
			return strings.Contains(a.Output(), "AUTHENTICATING FOR org.netgrant.create-tap")
		})
		t.Logf("mallory's agent %d shows: %q", i, firstLine(a.Output()))
	}

	// 36 more of mallory's calls, from three connections: 32 wait their
	// turn, the other 4 are refused at once.
	plainTap := harness.Call{Method: "CreateTap", Args: []any{emptyOptions()}}
	var flooders []*harness.Client
	for range 3 {
		c := env.Client(t, harness.UserMallory)
		flooders = append(flooders, c)
		c.Flood(plainTap, 12)
	}
	answers := func() map[string]int {
		all := map[string]int{}
		for _, c := range flooders {
			for name, n := range c.Tally() {
				all[name] += n
			}
		}
		return all
	}
	harness.WaitFor(t, "4 of mallory's 36 calls to be refused", func() bool { return answers()[quotaExceeded] >= 4 })

	alice := env.Client(t, harness.UserAlice)
	if _, _, _, err := alice.CreateTap(nil); err != nil {
		t.Fatalf("alice's CreateTap while mallory's agent is silent: %v", err)
	}
	if _, _, err := alice.CreateNATNetwork("lab", nil); err != nil {
		t.Fatalf("alice's CreateNATNetwork while mallory's agent is silent: %v", err)
	}
	// By now the 32 waiting ones would have been answered too, had they
	// not waited for their turn.
	if got := answers(); len(got) != 1 || got[quotaExceeded] != 4 {
		t.Fatalf("mallory's 36 calls beyond her 4 checks were answered %v, want only 4 refused", got)
	}

	// Callers that leave take their waiting calls with them. A parked
	// caller leaves: its check is withdrawn, and mallory's call that waits
	// now goes to polkit, which wants her password: delayed, not refused.
	for _, c := range flooders {
		c.Kill()
	}
	waiting := env.Client(t, harness.UserMallory).Begin(plainTap)
	parked[0].Kill()
	if r := waiting(); r.ErrorName != "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired" {
		t.Fatalf("mallory's call once a place was free: %q (%s), want InteractiveAuthorizationRequired", r.ErrorName, r.ErrorMessage)
	}
	for _, c := range parked[1:] {
		c.Kill()
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
