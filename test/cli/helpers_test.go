// Package cli_test runs the netgrant CLI, the bridge helper and the
// examples as unprivileged test users against the real netgrantd, polkitd
// and system bus of the harness, and checks what their users see.
package cli_test

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) {
	guest.PrepareBeforeSandbox()
	harness.Main(m)
}

// rules lets ngalice do everything and refuses ngmallory everything; ngbob
// gets polkit's defaults, which want an administrator's password.
var rules = harness.Rules(map[string]string{harness.UserAlice: "YES", harness.UserMallory: "NO"})

// bin is the path of a program built from cmd/, or of an example script,
// in a directory every test user can read.
func bin(t *testing.T, name string) string {
	t.Helper()
	return filepath.Join(harness.Programs(t), name)
}

// commandAs is a command run as test user userName, on the harness's bus,
// with the built programs first on PATH.
func commandAs(t *testing.T, userName, program string, args ...string) *exec.Cmd {
	t.Helper()
	return harness.CommandAs(t, userName, program, args...)
}

type result struct {
	stdout, stderr string
	code           int
}

// runAs runs program as userName to its end.
func runAs(t *testing.T, userName, program string, args ...string) result {
	t.Helper()
	cmd := commandAs(t, userName, program, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("running %s: %v", program, err)
	}
	t.Logf("%s$ %s %s\n(exit %d)\nstdout:\n%s\nstderr:\n%s", userName, filepath.Base(program), strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// netgrant runs the CLI as userName.
func netgrant(t *testing.T, userName string, args ...string) result {
	t.Helper()
	return runAs(t, userName, bin(t, "netgrant"), args...)
}

func mustSucceed(t *testing.T, r result) {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit status %d, want 0; stderr: %s", r.code, r.stderr)
	}
}

// Exit statuses netgrant(1) documents.
const (
	exitFailure     = 1
	exitNotFound    = 4
	exitUnavailable = 69
	exitNoPerm      = 77
)

// wantFailure checks a refusal: exit status code and a message in plain
// words that contains every one of want, and no bare D-Bus error name.
func wantFailure(t *testing.T, r result, code int, want ...string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit status %d, want %d", r.code, code)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr %q lacks %q", r.stderr, w)
		}
	}
	if strings.Contains(r.stderr, "org.freedesktop.DBus.Error") || strings.Contains(r.stderr, "NetGrant1.Error") {
		t.Errorf("stderr %q shows a D-Bus error name instead of plain words", r.stderr)
	}
}

// eventually waits for cond, which the daemon makes true asynchronously
// (it sees a client leave the bus some time after it exits).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still not %s after 30s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// networkExists asks the daemon, as root, whether network name exists.
func networkExists(t *testing.T, env *harness.Env, name string) bool {
	t.Helper()
	var path dbus.ObjectPath
	err := env.Bus().Object(harness.BusName, harness.ManagerPath).Call(harness.ManagerIface+".GetNetwork", 0, name).Store(&path)
	var dbusErr dbus.Error
	if errors.As(err, &dbusErr) && dbusErr.Name == "org.netgrant.NetGrant1.Error.NotFound" {
		return false
	}
	if err != nil {
		t.Fatalf("GetNetwork(%s): %v", name, err)
	}
	return true
}

// readLine reads one line from r (the child's output), failing the test
// at EOF.
func readLine(t *testing.T, r io.Reader) string {
	t.Helper()
	var line []byte
	b := make([]byte, 1)
	for {
		if _, err := r.Read(b); err != nil {
			t.Fatalf("reading output: %v (so far %q)", err, line)
		}
		if b[0] == '\n' {
			return string(line)
		}
		line = append(line, b[0])
	}
}
