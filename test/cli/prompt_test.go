package cli_test

import (
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/harness"
)

// promptRules makes ngbob prove who he is for a tap, as a desktop's
// "auth_self" policy would.
const promptRules = `
polkit.addRule(function(action, subject) {
	if (action.id == "org.netgrant.create-tap" && subject.user == "ngbob") return polkit.Result.AUTH_SELF;
	return polkit.Result.NOT_HANDLED;
});
`

// onTerminal runs the CLI as ngbob on a terminal (script(1) gives it one),
// typing password when the prompt shows.
func onTerminal(t *testing.T, password string, args ...string) (output string, code int) {
	t.Helper()
	cmd := commandAs(t, harness.UserBob, "script", "-qec", strings.Join(append([]string{bin(t, "netgrant")}, args...), " "), "/dev/null")
	output, code = harness.AnswerPrompts(t, cmd, password)
	t.Logf("ngbob on a terminal$ netgrant %s\n%s(exit %d)", strings.Join(args, " "), output, code)
	return output, code
}

func TestPasswordPromptOnTheTerminal(t *testing.T) {
	harness.Start(t, harness.Options{Rules: promptRules})
	if !harness.PasswordSet {
		t.Skip("the test users have no password (openssl missing)")
	}
	out, code := onTerminal(t, harness.TestPassword, "run", "--tap", "vnet_hdr=on", "--", "echo", "child-ran-with-{ifname}")
	if code != 0 || !strings.Contains(out, "AUTHENTICATING FOR org.netgrant.create-tap") || !strings.Contains(out, "child-ran-with-ngtap") {
		t.Fatalf("with the right password: exit %d\n%s", code, out)
	}

	out, code = onTerminal(t, "not-the-password", "run", "--tap", "vnet_hdr=on", "--", "echo", "child-ran")
	if code == 0 || strings.Contains(out, "child-ran") || !strings.Contains(out, "not allowed") {
		t.Fatalf("with a wrong password: exit %d\n%s", code, out)
	}
}

// networkPromptRules let ngbob create networks but make him prove who he
// is for a tap, whether it goes onto a network or onto nothing.
const networkPromptRules = `
polkit.addRule(function(action, subject) {
	if (subject.user != "ngbob") return polkit.Result.NOT_HANDLED;
	if (action.id == "org.netgrant.create-nat-network") return polkit.Result.YES;
	if (action.id == "org.netgrant.create-tap" || action.id == "org.netgrant.use-network") return polkit.Result.AUTH_SELF;
	return polkit.Result.NOT_HANDLED;
});
`

// A tap onto a network is authorized by use-network alone: one prompt,
// one password. (Asking create-tap too made pkttyagent show one prompt and
// cancel the other, so the call failed right after the password.)
func TestOnePromptForATapOnANetwork(t *testing.T) {
	harness.Start(t, harness.Options{Rules: networkPromptRules})
	if !harness.PasswordSet {
		t.Skip("the test users have no password (openssl missing)")
	}
	out, code := onTerminal(t, harness.TestPassword, "run", "--network", "lab", "--", "echo", "child-ran-with-{ifname}")
	if code != 0 || !strings.Contains(out, "child-ran-with-ngtap") {
		t.Fatalf("with the right password: exit %d\n%s", code, out)
	}
	if n := strings.Count(out, "AUTHENTICATING FOR"); n != 1 || !strings.Contains(out, "AUTHENTICATING FOR org.netgrant.use-network") {
		t.Errorf("want exactly one prompt, for org.netgrant.use-network; got %d:\n%s", n, out)
	}
}
