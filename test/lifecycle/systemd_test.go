package lifecycle_test

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/harness"
)

// Under systemd (Type=dbus, or a notify-aware supervisor), netgrantd says
// when it is ready and what it does, and that it is stopping.
func TestDaemonTellsSystemdItsState(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: socket, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	env := harness.Start(t, harness.Options{Rules: rules, DaemonEnv: []string{"NOTIFY_SOCKET=" + socket}})

	var messages []string
	read := func(until string) {
		t.Helper()
		buf := make([]byte, 4096)
		for !strings.Contains(strings.Join(messages, "\n"), until) {
			conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			n, err := conn.Read(buf)
			if err != nil {
				t.Fatalf("netgrantd never sent %q; it sent %q: %v", until, messages, err)
			}
			messages = append(messages, string(buf[:n]))
		}
	}
	read("READY=1")
	if !strings.Contains(strings.Join(messages, "\n"), "STATUS=Serving org.netgrant.NetGrant1") {
		t.Errorf("no STATUS with READY: %q", messages)
	}
	env.KillDaemonGracefully()
	read("STOPPING=1")
}

// A configuration mistake stops netgrantd at start, saying where and why.
func TestBadConfigurationStopsTheDaemon(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	config := filepath.Join(t.TempDir(), "netgrant.conf")
	if err := os.WriteFile(config, []byte("[Limits]\nTapsPerUser=32\nTapsPerGroup=4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(harness.DaemonBinary(), "--config", config, "--state-dir", t.TempDir(), "--hooks-dir", env.HooksDir).CombinedOutput()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
		t.Fatalf("netgrantd with a bad configuration: %v, want exit status 1\n%s", err, out)
	}
	if want := config + ":3:"; !strings.Contains(string(out), want) || !strings.Contains(string(out), "TapsPerGroup") {
		t.Fatalf("netgrantd does not say %s and the key:\n%s", want, out)
	}
}
