// Package rig_test proves netgrant on a real system: it builds the Debian
// package, boots Debian 12 with systemd as PID 1 (dbus, logind, polkitd) in
// a systemd-nspawn container with a network of its own, installs the
// package there with apt-get, and drives it as unprivileged users would.
//
// The rootfs is built once with mmdebstrap from the package mirror apt uses
// and cached in $NETGRANT_RIG_CACHE (default /var/cache/netgrant-rig). Run
// these tests alone with
//
//	sudo ./test/run --no-install -v ./test/rig
package rig_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/netgrant/netgrant/test/guest"
	"golang.org/x/sys/unix"
)

const stageEnv = "NETGRANT_RIG_INSIDE"

// rootfsTar is the cached rootfs tarball, or why there is none; both are
// found before the tests leave the host's network.
var rootfsTar, errRootfs = "", errors.New("not prepared")

func TestMain(m *testing.M) {
	if os.Getenv(stageEnv) != "" {
		rootfsTar, errRootfs = os.Getenv(stageEnv), nil
		if rootfsTar == "-" {
			rootfsTar, errRootfs = "", errors.New(os.Getenv(stageEnv+"_ERR"))
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			fmt.Fprintln(os.Stderr, "rig: making mounts private:", err)
			os.Exit(1)
		}
		// nspawn keeps its locks and mount propagation below /run: a
		// tmpfs of this namespace's own takes them away with it.
		if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			fmt.Fprintln(os.Stderr, "rig: mounting /run:", err)
			os.Exit(1)
		}
		code := m.Run()
		if booted != nil {
			booted.shutdown()
		}
		if debDir != "" {
			os.RemoveAll(debDir)
		}
		os.Exit(code)
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	// Downloads need the host's network, which the tests then leave.
	guest.PrepareBeforeSandbox()
	stage := "-"
	tar, err := cachedRootfs()
	if err == nil {
		stage = tar
	}
	self, err2 := os.Executable()
	if err2 != nil {
		fmt.Fprintln(os.Stderr, "rig:", err2)
		os.Exit(1)
	}
	// A pid namespace of their own: when the test binary ends, however it
	// ends, the kernel kills the container and everything else it started.
	args := append([]string{"--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--", self}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), stageEnv+"="+stage)
	if err != nil {
		cmd.Env = append(cmd.Env, stageEnv+"_ERR="+err.Error())
	}
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			os.Exit(exit.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "rig: running unshare:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// requireRoot skips t outside the namespaces, that is without root.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Getenv(stageEnv) == "" {
		t.Skip("needs root: builds a package and boots a container")
	}
}
