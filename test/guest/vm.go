package guest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// VM is a running guest whose console is being read.
type VM struct {
	t       testing.TB
	cmd     *exec.Cmd
	stderr  bytes.Buffer
	done    chan struct{}
	stopped sync.Once

	mu      sync.Mutex
	lines   []string
	exited  bool
	exitErr error
	// changed is closed when a line arrives or the guest exits.
	changed chan struct{}
}

// Boot starts the guest with checks c on the tap device tapFD, its NIC
// using mac (QEMU's default if empty). The VM is stopped when t ends.
func Boot(t testing.TB, kit Kit, tapFD *os.File, mac string, c Checks) *VM {
	t.Helper()
	device := "virtio-net-pci,netdev=n0"
	if mac != "" {
		device += ",mac=" + mac
	}
	args := append(kit.QEMUArgs(c), "-netdev", "tap,id=n0,fd=3,vhost=off", "-device", device)
	cmd := exec.Command("qemu-system-x86_64", args...)
	cmd.ExtraFiles = []*os.File{tapFD}
	return Start(t, cmd)
}

// Start starts cmd, which must run a guest (QEMU with QEMUArgs, possibly
// through a wrapper) with its console on cmd's stdout, logs each console
// line as "guest: <line>" and returns the handle. The VM is stopped when t
// ends.
func Start(t testing.TB, cmd *exec.Cmd) *VM {
	t.Helper()
	v := &VM{t: t, cmd: cmd, done: make(chan struct{}), changed: make(chan struct{})}
	cmd.Stderr = &v.stderr
	console, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatalf("guest console: %v", err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting guest: %v", err)
	}
	t.Cleanup(v.Stop)
	go func() {
		defer close(v.done)
		sc := bufio.NewScanner(console)
		for sc.Scan() {
			line := strings.TrimRight(sc.Text(), "\r")
			t.Log("guest: " + line)
			v.mu.Lock()
			v.lines = append(v.lines, line)
			close(v.changed)
			v.changed = make(chan struct{})
			v.mu.Unlock()
		}
		err := cmd.Wait()
		if v.stderr.Len() > 0 {
			t.Log("qemu: " + strings.TrimSpace(v.stderr.String()))
		}
		v.mu.Lock()
		v.exited, v.exitErr = true, err
		close(v.changed)
		v.mu.Unlock()
	}()
	return v
}

// WaitLine returns the first console line starting with prefix, waiting up
// to timeout for it.
func (v *VM) WaitLine(prefix string, timeout time.Duration) (string, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for next := 0; ; {
		v.mu.Lock()
		for ; next < len(v.lines); next++ {
			if strings.HasPrefix(v.lines[next], prefix) {
				line := v.lines[next]
				v.mu.Unlock()
				return line, nil
			}
		}
		exited, exitErr, changed := v.exited, v.exitErr, v.changed
		v.mu.Unlock()
		if exited {
			return "", fmt.Errorf("guest exited (%v) without printing %q", exitErr, prefix)
		}
		select {
		case <-changed:
		case <-timer.C:
			return "", fmt.Errorf("guest printed no %q within %v", prefix, timeout)
		}
	}
}

// Results waits up to timeout for the guest to finish its checks and
// returns them by name.
func (v *VM) Results(timeout time.Duration) (map[string]Result, error) {
	if _, err := v.WaitLine("NETGRANT-DONE", timeout); err != nil {
		return nil, err
	}
	return Results(v.consoleLines())
}

// Results reads the checks' results, by name, from a guest's console
// lines.
func Results(lines []string) (map[string]Result, error) {
	results := map[string]Result{}
	for _, line := range lines {
		rest, ok := strings.CutPrefix(line, "NETGRANT-RESULT ")
		if !ok {
			continue
		}
		fields := strings.SplitN(rest, " ", 3)
		if len(fields) < 2 {
			return nil, fmt.Errorf("malformed result line %q", line)
		}
		r := Result{OK: fields[1] == "ok"}
		if len(fields) == 3 {
			r.Detail = fields[2]
		}
		results[fields[0]] = r
	}
	return results, nil
}

// Lease is the address the guest got from DHCP, or "" if it got none (yet:
// call it after WaitLine("NETGRANT-LEASE", …) or Results).
func (v *VM) Lease() (ip string) { return Lease(v.consoleLines()) }

// Lease is the address a guest's console lines say its first NIC got from
// DHCP, or "".
func Lease(lines []string) string {
	for _, line := range lines {
		if fields := strings.Fields(line); len(fields) >= 2 && fields[0] == "NETGRANT-LEASE" {
			if fields[1] == "none" {
				return ""
			}
			return fields[1]
		}
	}
	return ""
}

// Stop kills the guest and waits until QEMU is gone.
func (v *VM) Stop() {
	v.stopped.Do(func() {
		v.cmd.Process.Kill()
		<-v.done
	})
}

func (v *VM) consoleLines() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.lines[:len(v.lines):len(v.lines)]
}
