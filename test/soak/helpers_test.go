package soak_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// waitUntil polls cond until it holds or bound passes; teardown after a
// disconnect is asynchronous, and the bound only keeps a broken daemon
// from hanging the test.
func waitUntil(bound time.Duration, cond func() bool) bool {
	for deadline := time.Now().Add(bound); ; time.Sleep(50 * time.Millisecond) {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}

func managedObjects(t *testing.T, env *harness.Env) map[dbus.ObjectPath]map[string]map[string]dbus.Variant {
	t.Helper()
	var managed map[dbus.ObjectPath]map[string]map[string]dbus.Variant
	err := env.Bus().Object(harness.BusName, harness.ManagerPath).Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&managed)
	if err != nil {
		t.Fatalf("GetManagedObjects: %v", err)
	}
	return managed
}

// stateEntries are the names in the daemon's state directory.
func stateEntries(env *harness.Env) []string {
	entries, _ := os.ReadDir(env.StateDir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// describeState lists what the state directory holds, with the journal
// files' contents, which say what was never undone.
func describeState(env *harness.Env, names []string) string {
	var b strings.Builder
	for _, name := range names {
		path := filepath.Join(env.StateDir, name)
		fmt.Fprintf(&b, "  %s", name)
		if st, err := os.Stat(path); err == nil && st.IsDir() {
			inner, _ := os.ReadDir(path)
			var names []string
			for _, e := range inner {
				names = append(names, e.Name())
			}
			fmt.Fprintf(&b, "/ %v\n", names)
			continue
		}
		body, _ := os.ReadFile(path)
		fmt.Fprintf(&b, ": %s\n", strings.TrimSpace(string(body)))
	}
	return b.String()
}

func describeProcesses(pids []int) string {
	var parts []string
	for _, pid := range pids {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		parts = append(parts, fmt.Sprintf("%d: %s", pid, strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")))
	}
	return strings.Join(parts, "; ")
}

// tail is the last n lines, for a failure report.
func tail(lines []string, n int) string {
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
