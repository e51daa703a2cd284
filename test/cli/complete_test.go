package cli_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/netgrant/netgrant/test/harness"
)

// completers drive each shell's completion of a command line the way the
// shell does on TAB, with the script netgrant completion prints, and print
// the candidates one a line.
var completers = map[string]func(line string) []string{
	// bash-completion's functions, then COMP_* as bash sets them.
	"bash": func(line string) []string {
		return []string{"bash", "-c", `source /usr/share/bash-completion/bash_completion
source <(netgrant completion bash)
read -ra COMP_WORDS <<<"$1"
[[ $1 == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1)) COMP_LINE=$1 COMP_POINT=${#1}
__start_netgrant
printf '%s\n' "${COMPREPLY[@]}"`, "bash", line}
	},
	// zsh's completion system hands the candidates to _describe and
	// compadd: here they print them.
	"zsh": func(line string) []string {
		return []string{"zsh", "-c", `compdef() { : }
_describe() { print -l -- "${(@P)2}" }
compadd() { print -l -- "$@" }
source <(netgrant completion zsh)
words=(${(z)1})
[[ $1 == *" " ]] && words+=("")
CURRENT=${#words}
_netgrant`, "zsh", line}
	},
	// fish completes a whole command line with complete -C.
	"fish": func(line string) []string {
		return []string{"fish", "-c", `netgrant completion fish | source; complete -C "$argv[1]"`, line}
	},
}

// candidates are what shell offers for line, run as userName, without
// their descriptions and without the shells' own options-to-options.
func candidates(t *testing.T, shell, userName, line string) []string {
	t.Helper()
	args := completers[shell](line)
	r := runAs(t, userName, "/usr/bin/env", args...)
	var out []string
	for _, l := range strings.Split(r.stdout, "\n") {
		// zsh's "name:description", fish's "name<TAB>description".
		l, _, _ = strings.Cut(l, "\t")
		if shell == "zsh" {
			l, _, _ = strings.Cut(l, ":")
		}
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "-") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// bash, zsh and fish complete netgrant's commands, and the names of its
// networks and taps from the running netgrantd.
func TestCompletionInEveryShell(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	for _, name := range []string{"lab", "lan"} {
		mustSucceed(t, netgrant(t, harness.UserAlice, "network", "create", name))
		t.Cleanup(func() { netgrant(t, harness.UserAlice, "network", "delete", name) })
	}
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "forward", "add", "lab", "tcp", "2222", "10.97.0.10", "22"))
	alice := env.Client(t, harness.UserAlice)
	_, _, tapInfo, err := alice.CreateTap(nil)
	if err != nil {
		t.Fatal(err)
	}
	tap := tapInfo["ifname"].Value().(string)
	for shell := range completers {
		t.Run(shell, func(t *testing.T) {
			for _, tc := range []struct {
				line string
				want []string
			}{
				{"netgrant net", []string{"network"}},
				{"netgrant network ", []string{"create", "delete", "forward", "list", "show"}},
				{"netgrant network show ", []string{"lab", "lan"}},
				{"netgrant network forward remove lab ", []string{"tcp", "udp"}},
				{"netgrant network forward remove lab tcp ", []string{"2222"}},
				{"netgrant run --network ", []string{"lab", "lan"}},
				{"netgrant tap delete ", []string{tap}},
			} {
				if got := candidates(t, shell, harness.UserBob, tc.line); !slices.Equal(got, tc.want) {
					t.Errorf("%s: %q offers %q, want %q", shell, tc.line, got, tc.want)
				}
			}
		})
	}
}

// Completing asks the bus whether netgrantd runs before it asks
// netgrantd anything: a TAB never starts it. Against a bus that starts
// a stand-in for netgrantd on demand, completion leaves it alone, while
// netgrant list starts it (so the test can fail).
func TestCompletionNeverStartsTheService(t *testing.T) {
	harness.Require(t)
	dir := t.TempDir()
	started := filepath.Join(dir, "started")
	services := filepath.Join(dir, "services")
	if err := os.MkdirAll(services, 0o755); err != nil {
		t.Fatal(err)
	}
	service := fmt.Sprintf("[D-BUS Service]\nName=org.netgrant.NetGrant1\nExec=/usr/bin/touch %s\n", started)
	if err := os.WriteFile(filepath.Join(services, "org.netgrant.NetGrant1.service"), []byte(service), 0o644); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "bus")
	config := fmt.Sprintf(`<busconfig><type>session</type><listen>unix:path=%s</listen><servicedir>%s</servicedir>
<policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/></policy></busconfig>`, socket, services)
	if err := os.WriteFile(filepath.Join(dir, "bus.conf"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	bus := exec.Command("dbus-daemon", "--config-file="+filepath.Join(dir, "bus.conf"), "--nofork", "--nopidfile", "--print-address")
	out, err := bus.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bus.Process.Kill(); bus.Wait() })
	readLine(t, out)
	netgrantOn := func(args ...string) *exec.Cmd {
		cmd := exec.Command(bin(t, "netgrant"), args...)
		cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS=unix:path="+socket)
		return cmd
	}
	for _, args := range [][]string{{"__complete", "network", "show", ""}, {"__complete", "tap", "delete", ""}} {
		if out, err := netgrantOn(args...).CombinedOutput(); err != nil {
			t.Fatalf("netgrant %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if _, err := os.Stat(started); err == nil {
		t.Fatal("completing started the service")
	}
	netgrantOn("list").Run()
	harness.WaitFor(t, "netgrant list to start the service", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
}
