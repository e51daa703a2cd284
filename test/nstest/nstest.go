// Package nstest runs a package's tests inside network and mount namespaces
// of their own, so tests that create links, firewall rules or daemons never
// touch the host's network. Use it from TestMain:
//
//	func TestMain(m *testing.M) { nstest.Main(m) }
//
// Outside the sandbox it re-executes the test binary under unshare(1); the
// namespaces die with that process, whatever the tests left behind.
package nstest

import (
	"fmt"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

const insideEnv = "NETGRANT_NSTEST_INSIDE"

// Main runs m in fresh namespaces. Without root it runs only the tests that
// do not call Require.
func Main(m *testing.M) {
	if os.Getenv(insideEnv) == "1" {
		if err := prepare(); err != nil {
			fmt.Fprintln(os.Stderr, "nstest:", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nstest:", err)
		os.Exit(1)
	}
	args := append([]string{"--net", "--mount", "--fork", "--kill-child", "--", self}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), insideEnv+"=1")
	if err := cmd.Run(); err != nil {
		if exit, ok := err.(*exec.ExitError); ok {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "nstest: running unshare:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// Require skips t unless it runs inside the sandbox (that is, as root).
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(insideEnv) != "1" {
		t.Skip("needs root: runs in private network and mount namespaces")
	}
}

// prepare makes the new mount namespace private and gives it a sysfs that
// shows this network namespace's links rather than the host's.
func prepare() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("mounting sysfs: %w", err)
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("bringing up lo: %w: %s", err, out)
	}
	return nil
}
