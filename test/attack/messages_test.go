// Package attack_test performs, as unprivileged users and as guests, the
// attacks netgrant must withstand, against the real daemon in the test
// sandbox, and checks each defence.
package attack_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// allowAlice lets ngalice do everything and refuses ngmallory everything:
// mallory is the attacker, alice the user who must not notice.
var allowAlice = harness.Rules(map[string]string{harness.UserAlice: "YES", harness.UserMallory: "NO"})

const invalidArgs = "org.freedesktop.DBus.Error.InvalidArgs"

// stillServes checks that the daemon that started the test still runs and
// still gives alice a working tap.
func stillServes(t *testing.T, env *harness.Env, pid int) {
	t.Helper()
	if now := env.DaemonPID(); now != pid {
		t.Fatalf("netgrantd was restarted (pid %d, then %d)", pid, now)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err != nil {
		t.Fatalf("netgrantd (pid %d) is gone: %v", pid, err)
	}
	alice := env.Client(t, harness.UserAlice)
	if _, _, _, err := alice.CreateTap(nil); err != nil {
		t.Fatalf("after the attack alice's CreateTap failed: %v", err)
	}
	alice.Exit()
}

// An array of fds where CreateTap takes options made godbus panic in the
// daemon's reader goroutine, and netgrantd exited with status 2.
func TestFDArrayCannotCrashTheDaemon(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	pid := env.DaemonPID()
	mallory := env.Client(t, harness.UserMallory)
	for _, attack := range []struct {
		sig  string
		args []any
		fds  int
	}{
		{"ah", []any{[]dbus.UnixFDIndex{0}}, 1},
		{"ah", []any{[]dbus.UnixFDIndex{0, 1, 0}}, 2},
		{"a{sh}", []any{map[string]dbus.UnixFDIndex{"network": 0}}, 1},
		{"h", []any{dbus.UnixFDIndex(0)}, 1},
		{"a{sv}", []any{map[string]dbus.Variant{"queues": dbus.MakeVariant(dbus.UnixFDIndex(0))}}, 1},
		{"a{sv}", []any{map[string]dbus.Variant{}}, 8},
	} {
		r := mallory.Do(harness.Call{Method: "CreateTap", Signature: attack.sig, Args: attack.args, AttachFDs: attack.fds})
		want := invalidArgs
		if attack.sig == "a{sv}" {
			want = "org.netgrant.NetGrant1.Error.InvalidArgument"
			if len(attack.args[0].(map[string]dbus.Variant)) == 0 {
				want = "org.freedesktop.DBus.Error.AccessDenied"
			}
		}
		if r.ErrorName != want {
			t.Errorf("CreateTap(%s) with %d fds: got %q (%s), want %s", attack.sig, attack.fds, r.ErrorName, r.ErrorMessage, want)
		}
	}
	stillServes(t, env, pid)
	_, fds := env.DaemonStats()
	if fds > 32 {
		t.Errorf("netgrantd holds %d fds after being sent fds it never asked for", fds)
	}
}

// fuzzMessages is how many random messages the fuzz test sends; the issue
// asks for at least 100,000. NETGRANT_FUZZ_MESSAGES changes it for a
// longer run.
func fuzzMessages(t *testing.T) int {
	if v := os.Getenv("NETGRANT_FUZZ_MESSAGES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("NETGRANT_FUZZ_MESSAGES=%q: %v", v, err)
		}
		return n
	}
	return 100_000
}

func fuzzSeed(t *testing.T) int64 {
	if v := os.Getenv("NETGRANT_FUZZ_SEED"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("NETGRANT_FUZZ_SEED=%q: %v", v, err)
		}
		return n
	}
	return time.Now().UnixNano()
}

// Random messages of every shape, with up to 8 fds, at every method of
// every interface, from a user polkit refuses: the daemon answers each,
// keeps running, serves alice afterwards, and ends with the goroutines and
// fds it had before.
func TestFuzzedMessagesLeaveTheDaemonAsItWas(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAlice})
	pid := env.DaemonPID()
	// A first call warms up what the daemon keeps for good (its polkit
	// and user lookups).
	warm := env.Client(t, harness.UserAlice)
	warm.CreateTap(nil)
	warm.Exit()
	harness.WaitFor(t, "the warm-up tap to go", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
	goroutines, fds := env.DaemonStats()

	seed, count := fuzzSeed(t), fuzzMessages(t)
	t.Logf("fuzzing with %d messages, seed %d (replay with NETGRANT_FUZZ_SEED=%d)", count, seed, seed)
	mallory := env.Client(t, harness.UserMallory)
	report := mallory.Fuzz(seed, count)
	t.Logf("sent %d; answers by error name (\"\" = success): %v", report.Sent, report.Replies)
	if report.Sent != count {
		t.Errorf("sent %d messages, want %d", report.Sent, count)
	}
	if report.NoReply > 0 {
		t.Errorf("%d calls got no reply", report.NoReply)
	}
	for name, n := range report.Replies {
		if len(name) > 0 && (name[:min(len(name), 5)] == "call:" || name[:min(len(name), 5)] == "send:" || len(name) > 10 && name[:10] == "generator:") {
			t.Errorf("%d messages could not be sent: %s", n, name)
		}
	}
	mallory.Exit()

	stillServes(t, env, pid)
	harness.WaitFor(t, "alice's tap to go", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
	var nowG, nowF int
	harness.WaitFor(t, "netgrantd's goroutines and fds to return to baseline", func() bool {
		nowG, nowF = env.DaemonStats()
		return nowG <= goroutines && nowF <= fds
	})
	t.Logf("netgrantd before: goroutines=%d fds=%d; after: goroutines=%d fds=%d", goroutines, fds, nowG, nowF)
}

func emptyOptions() map[string]dbus.Variant { return map[string]dbus.Variant{} }

// rss is a process's resident memory in KiB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kib
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// Bus input is bounded (API.md): a connection has at most 16 calls in
// progress (each holds a goroutine in the daemon), a message over 1 MiB
// is refused unread, and a message that came with other fds than it
// announced is refused without harm. Mallory floods slow calls (waiting
// behind her silent agent) from 20 connections, 40 each, and sends a 2 MiB
// one: the daemon's goroutines and memory stay bounded, and alice is
// served throughout.
func TestFloodsOfSlowCallsStayBounded(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: silentAgentRules})
	pid := env.DaemonPID()
	warm := env.Client(t, harness.UserAlice)
	warm.CreateTap(nil)
	warm.Exit()
	harness.WaitFor(t, "the warm-up tap to go", func() bool { return len(harness.Links(t, "ngtap")) == 0 })
	goroutines, _ := env.DaemonStats()
	memory := rss(t, pid)

	// Four checks with polkit, at her silent agents: every other call of
	// hers waits behind them.
	interactiveTap := harness.Call{Method: "CreateTap", Args: []any{emptyOptions()}, Interactive: true}
	for range 4 {
		c := env.Client(t, harness.UserMallory)
		agent := harness.SilentAgent(t, harness.UserMallory, c.PID())
		c.Begin(interactiveTap)
		harness.WaitFor(t, "polkit to ask mallory's agent", func() bool {
			return strings.Contains(agent.Output(), "AUTHENTICATING FOR org.netgrant.create-tap")
		})
	}
	plainTap := harness.Call{Method: "CreateTap", Args: []any{emptyOptions()}}
	tally := func(clients ...*harness.Client) map[string]int {
		all := map[string]int{}
		for _, c := range clients {
			for name, n := range c.Tally() {
				all[name] += n
			}
		}
		return all
	}
	const limitsExceeded = "org.freedesktop.DBus.Error.LimitsExceeded"
	// One connection's 16 calls wait their turn; its next 8 find it with
	// 16 in progress.
	first := env.Client(t, harness.UserMallory)
	first.Flood(plainTap, 16)
	first.Flood(plainTap, 8)
	harness.WaitFor(t, "the calls beyond a connection's 16 to be refused", func() bool { return tally(first)[limitsExceeded] == 8 })
	second := env.Client(t, harness.UserMallory)
	second.Flood(plainTap, 16)
	// Now 32 wait: 20 connections' 40 calls each are all refused, for
	// the connection's calls in progress or the uid's waiting.
	const connections, each = 20, 40
	var flooders []*harness.Client
	for range connections {
		c := env.Client(t, harness.UserMallory)
		c.Flood(plainTap, each)
		flooders = append(flooders, c)
	}
	var answers map[string]int
	harness.WaitFor(t, "the floods' refusals", func() bool {
		answers = tally(flooders...)
		return answers[limitsExceeded]+answers[quotaExceeded] == connections*each
	})
	if others := tally(first, second); fmt.Sprint(others) != fmt.Sprint(map[string]int{limitsExceeded: 8}) {
		t.Errorf("mallory's 32 waiting calls were answered %v, want only the 8 beyond 16 refused", others)
	}
	t.Logf("%d calls from %d connections answered %v", connections*each, connections, answers)

	// A 2 MiB call is refused unread, and its connection stays usable.
	huge := env.Client(t, harness.UserMallory)
	r := huge.Do(harness.Call{Method: "CreateTap", Args: []any{map[string]dbus.Variant{"network": dbus.MakeVariant(strings.Repeat("x", 2<<20))}}})
	if r.ErrorName != "org.freedesktop.DBus.Error.LimitsExceeded" {
		t.Errorf("a 2 MiB call: %q (%s), want LimitsExceeded", r.ErrorName, r.ErrorMessage)
	}
	if r := huge.Do(harness.Call{Method: "GetNetwork", Args: []any{"none"}}); r.ErrorName != "org.netgrant.NetGrant1.Error.NotFound" {
		t.Errorf("the next call on that connection: %q (%s)", r.ErrorName, r.ErrorMessage)
	}
	// Fewer and more fds than announced: whatever the bus makes of
	// them, the daemon's connection stays.
	for _, fds := range [][2]int{{1, 2}, {3, 1}} {
		c := env.Client(t, harness.UserMallory)
		c.Begin(harness.Call{Method: "CreateTap", Args: []any{emptyOptions()}, AttachFDs: fds[1], AnnouncedFDs: fds[0]})
	}

	during, _ := env.DaemonStats()
	memoryDuring := rss(t, pid)
	t.Logf("netgrantd with 4 checks at polkit and 32 calls waiting: goroutines %d (before %d), RSS %d KiB (before %d KiB)", during, goroutines, memoryDuring, memory)
	if during > goroutines+4*(maxChecks+32) {
		t.Errorf("netgrantd runs %d goroutines with 36 calls in progress, %d before", during, goroutines)
	}
	if memoryDuring > memory+64<<10 {
		t.Errorf("netgrantd's RSS grew from %d KiB to %d KiB", memory, memoryDuring)
	}
	stillServes(t, env, pid)
	if _, _, err := env.Client(t, harness.UserAlice).CreateNATNetwork("lab", nil); err != nil {
		t.Fatalf("alice's CreateNATNetwork during the flood: %v", err)
	}
}

// maxChecks is a uid's polkit checks at once (API.md).
const maxChecks = 4
