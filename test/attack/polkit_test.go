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
// as long as she stayed. Now a uid has at most 4 checks pending, and a
// caller that leaves takes its check with it.
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

	fifth := env.Client(t, harness.UserMallory)
	if r := fifth.Do(interactiveTap); r.ErrorName != quotaExceeded {
		t.Fatalf("mallory's fifth pending check: got %q (%s), want %s", r.ErrorName, r.ErrorMessage, quotaExceeded)
	}

	alice := env.Client(t, harness.UserAlice)
	if _, _, _, err := alice.CreateTap(nil); err != nil {
		t.Fatalf("alice's CreateTap while mallory's agent is silent: %v", err)
	}
	if _, _, err := alice.CreateNATNetwork("lab", nil); err != nil {
		t.Fatalf("alice's CreateNATNetwork while mallory's agent is silent: %v", err)
	}

	// A parked caller leaves: its check is withdrawn and its place freed.
	parked[0].Kill()
	harness.WaitFor(t, "mallory's departed check to free its place", func() bool {
		return fifth.Do(harness.Call{Method: "CreateTap", Args: []any{emptyOptions()}}).ErrorName != quotaExceeded
	})
	for _, c := range parked[1:] {
		c.Kill()
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	line, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(line)
}
