package rig_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/harness"
	"golang.org/x/sys/unix"
)

// container is a booted Debian system: systemd-nspawn -b with a network
// namespace of its own.
type container struct {
	dir    string
	nspawn *exec.Cmd
	exited chan struct{}
	// leader is the host pid of the container's PID 1.
	leader int
	// console is read while nspawn still writes it.
	console harness.Output
	cgroups []string
	// bootTime is from starting nspawn to systemd reporting the system up.
	bootTime time.Duration
}

// machineEnv is the environment commands get inside the container, as a
// root shell there would have it.
var machineEnv = []string{
	"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	"LANG=C.UTF-8",
	"SYSTEMD_PAGER=",
	"SYSTEMD_COLORS=0",
}

// boot unpacks the rootfs into a scratch directory, lets prepare add
// files to it, and boots it. It returns once systemd reports the system
// up.
func boot(tarball string, prepare func(root string) error) (*container, error) {
	dir, err := os.MkdirTemp("/var/tmp", "netgrant-rig-")
	if err != nil {
		return nil, err
	}
	c := &container{dir: dir, exited: make(chan struct{})}
	if out, err := exec.Command("tar", "--numeric-owner", "-xpf", tarball, "-C", dir).CombinedOutput(); err != nil {
		c.remove()
		return nil, fmt.Errorf("unpacking %s: %w: %s", tarball, err, out)
	}
	if err := prepare(dir); err != nil {
		c.remove()
		return nil, err
	}
	if err := c.joinOwnCgroups(); err != nil {
		c.remove()
		return nil, err
	}
	// --register=no --keep-unit: this host may run no systemd. bpf() is
	// allowed so DevicePolicy= is enforced, as on a real machine.
	c.nspawn = exec.Command("systemd-nspawn", "--quiet", "--register=no", "--keep-unit",
		"-D", dir, "-M", "ngrig", "--private-network", "--console=read-only",
		"--system-call-filter=bpf", "--capability=CAP_BPF", "-b")
	// Pure cgroup v2 inside, as on desktops: systemd then enforces
	// DevicePolicy= with a BPF program, which it cannot on this host's
	// hybrid hierarchy.
	c.nspawn.Env = append(os.Environ(), "SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1")
	c.nspawn.Stdout, c.nspawn.Stderr = &c.console, &c.console
	if err := c.nspawn.Start(); err != nil {
		c.remove()
		return nil, fmt.Errorf("starting systemd-nspawn: %w", err)
	}
	go func() { c.nspawn.Wait(); close(c.exited) }()
	start := time.Now()
	if err := c.waitUp(); err != nil {
		c.shutdown()
		return nil, err
	}
	c.bootTime = time.Since(start)
	return c, nil
}

// joinOwnCgroups moves the test into cgroups of its own, where nspawn makes
// the container's: at the host's cgroup root two containers would collide.
func (c *container) joinOwnCgroups() error {
	roots := []string{"/sys/fs/cgroup"}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		roots = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd"}
	}
	name := filepath.Base(c.dir)
	for _, root := range roots {
		group := filepath.Join(root, name)
		if err := os.Mkdir(group, 0o755); err != nil && !os.IsExist(err) {
			return fmt.Errorf("making cgroup: %w", err)
		}
		c.cgroups = append(c.cgroups, group)
		if err := os.WriteFile(filepath.Join(group, "cgroup.procs"), []byte("0"), 0); err != nil {
			return fmt.Errorf("joining cgroup %s: %w", group, err)
		}
	}
	return nil
}

func (c *container) waitUp() error {
	deadline := time.Now().Add(2 * time.Minute)
	for c.leader == 0 {
		select {
		case <-c.exited:
			return fmt.Errorf("systemd-nspawn exited: %v\n%s", c.nspawn.ProcessState, c.console.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no container PID 1 after 2 minutes:\n%s", c.console.String())
		}
		c.leader = containerInit(c.nspawn.Process.Pid)
	}
	// "offline", then no bus, until PID 1 has become systemd and set up its
	// runtime directory; then --wait waits for the boot to finish.
	var state string
	var err error
	for {
		var out []byte
		out, err = c.command("systemctl", "is-system-running", "--wait").CombinedOutput()
		state = strings.TrimSpace(string(out))
		early := state == "offline" || strings.HasPrefix(state, "Failed to connect to bus")
		if !early || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if state != "running" {
		failed, _ := c.command("systemctl", "--failed", "--no-legend").CombinedOutput()
		return fmt.Errorf("system is %q (%v); failed units:\n%s", state, err, failed)
	}
	return nil
}

// containerInit finds the host pid of the container's PID 1 among the
// descendants of nspawn: the process that is pid 1 in a namespace below ours.
func containerInit(nspawn int) int {
	pending := []int{nspawn}
	for len(pending) > 0 {
		pid := pending[0]
		pending = pending[1:]
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
				return pid
			}
		}
		children, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		for _, f := range strings.Fields(string(children)) {
			if child, err := strconv.Atoi(f); err == nil {
				pending = append(pending, child)
			}
		}
	}
	return 0
}

// command runs in all of the container's namespaces, as root, but outside
// its cgroups: logind ties no session to it.
func (c *container) command(args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(c.leader), "-a", "--"}, args...)...)
	cmd.Env = machineEnv
	return cmd
}

// run runs a command as root in the container and returns its output; a
// failure ends the test.
func (c *container) run(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.command(args...).CombinedOutput()
	if err != nil {
		t.Fatalf("in the container: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// asUser is a command run by user outside any login session, as from a
// cron job or ssh without PAM: polkit sees no session.
func (c *container) asUser(user string, args ...string) *exec.Cmd {
	return c.command(append([]string{"setpriv", "--reuid=" + user, "--regid=" + user, "--init-groups", "--reset-env"}, args...)...)
}

// inSession runs a command as user in a new logind session on seat0,
// active and local, as a desktop login gives; it waits for the command
// unless background is set.
func (c *container) inSession(user, unit string, args ...string) *exec.Cmd {
	run := []string{"systemd-run", "--quiet", "--uid=" + user, "-p", "PAMName=login",
		"-E", "XDG_SEAT=seat0", "-E", "XDG_SESSION_TYPE=tty", "-E", "XDG_SESSION_CLASS=user"}
	if unit != "" {
		run = append(run, "--unit="+unit)
	} else {
		run = append(run, "--pipe", "--wait")
	}
	return c.command(append(append(run, "--"), args...)...)
}

func inNetnsOf(pid int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is left locked, so it dies with the goroutine rather
		// than serve others from the wrong namespace.
		runtime.LockOSThread()
		ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			errc <- err
			return
		}
		defer ns.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering netns of %d: %w", pid, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// shutdown powers the container off and removes it.
func (c *container) shutdown() {
	if c.nspawn != nil && c.nspawn.Process != nil {
		c.nspawn.Process.Signal(unix.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.nspawn.Process.Kill()
			<-c.exited
		}
	}
	c.remove()
}

func (c *container) remove() {
	for _, group := range c.cgroups {
		os.WriteFile(filepath.Join(filepath.Dir(group), "cgroup.procs"), []byte("0"), 0)
		removeCgroup(group)
	}
	os.RemoveAll(c.dir)
}

// removeCgroup removes group and the groups nspawn made below it, deepest
// first: a cgroup directory goes only with rmdir, and only when empty.
func removeCgroup(group string) {
	entries, _ := os.ReadDir(group)
	for _, e := range entries {
		if e.IsDir() {
			removeCgroup(filepath.Join(group, e.Name()))
		}
	}
	unix.Rmdir(group)
}
