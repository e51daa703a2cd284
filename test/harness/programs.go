package harness

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

var (
	programsOnce sync.Once
	programsErr  error
)

// Programs builds netgrant's user-facing programs (netgrant,
// netgrant-bridge-helper) once per test binary, next to the examples, in a
// directory every test user can read and run from; it returns the directory.
func Programs(t testing.TB) string {
	t.Helper()
	Require(t)
	programsOnce.Do(func() { programsErr = buildPrograms() })
	if programsErr != nil {
		t.Fatalf("harness: %v", programsErr)
	}
	return binDir
}

func buildPrograms() error {
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	for _, name := range []string{"netgrant", "netgrant-bridge-helper"} {
		if err := goBuild(root, filepath.Join(binDir, name), "./cmd/"+name); err != nil {
			return err
		}
	}
	examples, err := os.ReadDir(filepath.Join(root, "examples"))
	if err != nil {
		return err
	}
	for _, e := range examples {
		data, err := os.ReadFile(filepath.Join(root, "examples", e.Name()))
		if err != nil {
			return err
		}
		dst := filepath.Join(binDir, e.Name())
		if err := os.WriteFile(dst, data, 0o755); err != nil {
			return err
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(dst, 0o755); err != nil {
			return err
		}
	}
	return nil
}

// goBuild builds pkg to out. There is no network in the sandbox: it fails
// at once rather than trying to download.
func goBuild(root, out, pkg string) error {
	cmd := exec.Command(goTool(), "build", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly", "CGO_ENABLED=0")
	if output, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building %s: %w\n%s", pkg, err, output)
	}
	return nil
}

// RunDir is the sandbox's own directory: a tmpfs of the sandbox, every
// user may enter it.
const RunDir = runDir

// IDs are test user userName's uid and primary gid.
func IDs(t testing.TB, userName string) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// CommandAs is program run as test user userName, on the private bus, with
// Programs first on PATH.
func CommandAs(t testing.TB, userName, program string, args ...string) *exec.Cmd {
	t.Helper()
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	groupIDs, err := u.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	var groups []uint32
	for _, g := range groupIDs {
		id, _ := strconv.Atoi(g)
		groups = append(groups, uint32(id))
	}
	cmd := exec.Command(program, args...)
	cmd.Dir = "/"
	cmd.Env = []string{
		"PATH=" + Programs(t) + ":/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"DBUS_SYSTEM_BUS_ADDRESS=" + BusAddress,
		"HOME=/nonexistent", "USER=" + userName, "LANG=C.UTF-8",
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	return cmd
}
