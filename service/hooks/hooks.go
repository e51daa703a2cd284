// Package hooks runs the administrator's downscript-style hooks: the
// executables in the hooks directory, in name order when a tap or network
// comes up and in reverse order before it goes down.
//
// Hooks run as root with what a caller chose (names, MACs) in their
// environment, so only files that nobody but root can have planted run.
package hooks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Event says why the hooks run; it is the hooks' first argument and
// NETGRANT_EVENT.
type Event string

const (
	TapUp       Event = "tap-up"
	TapDown     Event = "tap-down"
	NetworkUp   Event = "network-up"
	NetworkDown Event = "network-down"
)

// ValidDownEvent reports whether ev is a teardown event.
func ValidDownEvent(ev Event) bool { return ev == TapDown || ev == NetworkDown }

// Env describes the tap or network the hooks run for. Empty fields are
// passed as empty variables.
type Env struct {
	IfName, Bridge, Network, Subnet, MAC string
	UID                                  uint32
}

// Runner runs the hooks in Dir.
type Runner struct {
	// Dir is the hooks directory; a missing one means no hooks.
	Dir string
	// Timeout is how long one hook may run before it and every process in
	// its process group are killed; zero or less means only the context
	// limits it.
	Timeout time.Duration
	// Log receives why hooks were skipped, their output and Down's
	// failures; nil means slog.Default().
	Log *slog.Logger
}

const path = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// outputTail is how much of a hook's stdout and stderr is kept each.
const outputTail = 4096

// waitDelay bounds how long a hook's output is still read after it exited
// or was killed, in case a process it detached holds the pipes open.
const waitDelay = time.Second

var errTimeout = errors.New("timed out")

// Up runs the hooks in name order. The first failure stops it; the error
// names the hook and carries the exit status and the last line of its
// stderr, or says it timed out.
func (r *Runner) Up(ctx context.Context, ev Event, env Env) error {
	for _, name := range r.hooks() {
		if err := r.run(ctx, name, ev, env); err != nil {
			return err
		}
	}
	return nil
}

// Down runs every hook in reverse name order. Failures are logged, not
// returned: teardown goes on whatever a hook does.
func (r *Runner) Down(ctx context.Context, ev Event, env Env) {
	for _, name := range slices.Backward(r.hooks()) {
		if err := r.run(ctx, name, ev, env); err != nil {
			r.log().Warn("hook failed", "event", ev, "ifname", env.IfName, "network", env.Network, "error", err)
		}
	}
}

func (r *Runner) log() *slog.Logger {
	if r.Log != nil {
		return r.Log
	}
	return slog.Default()
}

// hooks lists the names of the hooks safe to run, sorted.
func (r *Runner) hooks() []string {
	dir, err := os.Stat(r.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		r.log().Error("hooks directory unusable, running no hooks", "dir", r.Dir, "error", err)
		return nil
	}
	if !dir.IsDir() {
		r.log().Error("hooks directory is not a directory, running no hooks", "dir", r.Dir)
		return nil
	}
	// Whoever can write the directory can plant a hook that runs as root.
	if reason := untrusted(dir); reason != "" {
		r.log().Error("hooks directory is unsafe, running no hooks", "dir", r.Dir, "reason", reason)
		return nil
	}
	entries, err := os.ReadDir(r.Dir)
	if err != nil {
		r.log().Error("reading hooks directory, running no hooks", "dir", r.Dir, "error", err)
		return nil
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") {
			r.log().Debug("ignoring hidden or backup file in hooks directory", "dir", r.Dir, "hook", name)
			continue
		}
		fi, err := os.Stat(filepath.Join(r.Dir, name))
		if err != nil {
			r.log().Warn("skipping hook", "dir", r.Dir, "hook", name, "reason", err)
			continue
		}
		reason := untrusted(fi)
		switch {
		case !fi.Mode().IsRegular():
			reason = "not a regular file"
		case reason == "" && fi.Mode().Perm()&0o111 == 0:
			reason = "not executable"
		}
		if reason != "" {
			r.log().Warn("skipping hook", "dir", r.Dir, "hook", name, "reason", reason)
			continue
		}
		names = append(names, name)
	}
	return names
}

// unsafe says why someone other than root could change fi, or "".
func untrusted(fi fs.FileInfo) string {
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != 0 {
		return fmt.Sprintf("owned by uid %d, not root", uid)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return fmt.Sprintf("writable by group or others (mode %#o)", fi.Mode().Perm())
	}
	return ""
}

func (r *Runner) run(ctx context.Context, name string, ev Event, env Env) error {
	hookCtx := ctx
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		hookCtx, cancel = context.WithTimeoutCause(ctx, r.Timeout, errTimeout)
		defer cancel()
	}
	var stdout, stderr tail
	cmd := exec.CommandContext(hookCtx, filepath.Join(r.Dir, name), string(ev))
	cmd.Dir = "/"
	cmd.Env = []string{
		path,
		"NETGRANT_EVENT=" + string(ev),
		"NETGRANT_IFNAME=" + env.IfName,
		"NETGRANT_BRIDGE=" + env.Bridge,
		"NETGRANT_NETWORK=" + env.Network,
		"NETGRANT_SUBNET=" + env.Subnet,
		"NETGRANT_MAC=" + env.MAC,
		"NETGRANT_UID=" + strconv.FormatUint(uint64(env.UID), 10),
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A hook's children die with it: its own process group is killed as a
	// whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay

	err := cmd.Run()
	level := slog.LevelDebug
	if err != nil {
		level = slog.LevelInfo
	}
	if len(stdout.buf) > 0 || len(stderr.buf) > 0 {
		r.log().Log(ctx, level, "hook output", "hook", name, "event", ev, "stdout", string(stdout.buf), "stderr", string(stderr.buf))
	}
	switch {
	case err == nil:
		return nil
	case context.Cause(hookCtx) == errTimeout:
		return fmt.Errorf("hook %s: killed after timeout of %s", name, r.Timeout)
	case ctx.Err() != nil:
		return fmt.Errorf("hook %s: %w", name, ctx.Err())
	}
	if line := lastLine(stderr.buf); line != "" {
		return fmt.Errorf("hook %s: %w: %s", name, err, line)
	}
	return fmt.Errorf("hook %s: %w", name, err)
}

// tail keeps the last outputTail bytes written to it.
type tail struct{ buf []byte }

func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) > outputTail {
		p = p[len(p)-outputTail:]
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - outputTail; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// lastLine returns the last non-blank line of out, made valid UTF-8 since
// it ends up in a D-Bus error message.
func lastLine(out []byte) string {
	lines := bytes.Split(out, []byte("\n"))
	for _, line := range slices.Backward(lines) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			return strings.ToValidUTF8(string(line), "\uFFFD")
		}
	}
	return ""
}
