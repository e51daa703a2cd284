package harness

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// Agent is a polkit authentication agent (pkttyagent) on a terminal of its
// own, serving one process, that nobody answers: polkit's prompts show on
// its terminal and wait there, like a desktop whose user walked away.
type Agent struct {
	mu  sync.Mutex
	out bytes.Buffer
}

// SilentAgent starts pkttyagent as userName for process pid and returns
// once polkit has it registered. It stops when t ends.
func SilentAgent(t testing.TB, userName string, pid int) *Agent {
	t.Helper()
	ptm, pts, err := openPTY()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	notifyR, notifyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer notifyR.Close()
	cmd := CommandAs(t, userName, "pkttyagent", "--process", strconv.Itoa(pid), "--notify-fd", "3")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = pts, pts, pts
	cmd.ExtraFiles = []*os.File{notifyW}
	cmd.SysProcAttr.Setsid, cmd.SysProcAttr.Setctty, cmd.SysProcAttr.Ctty = true, true, 0
	err = cmd.Start()
	pts.Close()
	notifyW.Close()
	if err != nil {
		t.Fatalf("harness: starting pkttyagent: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	a := &Agent{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := ptm.Read(buf)
			a.mu.Lock()
			a.out.Write(buf[:n])
			a.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// pkttyagent closes the notify fd once registered (or by exiting).
	io.Copy(io.Discard, notifyR)
	return a
}

// Output is what the agent has written on its terminal so far.
func (a *Agent) Output() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.out.String()
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (ptm, pts *os.File, err error) {
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("opening /dev/ptmx: %w", err)
	}
	ptm = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("unlocking the pty: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		ptm.Close()
		return nil, nil, fmt.Errorf("naming the pty: %w", err)
	}
	pts, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		ptm.Close()
		return nil, nil, err
	}
	return ptm, pts, nil
}
