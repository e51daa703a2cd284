package harness

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// stopTimeout bounds how long a process may take to exit after SIGTERM
// before it gets SIGKILL.
const stopTimeout = 10 * time.Second

// proc is a started daemon whose output goes to the test log.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *lineLog
	done chan struct{}
	err  error // set when done is closed
}

func startProc(t testing.TB, name string, cmd *exec.Cmd) (*proc, error) {
	p := &proc{name: name, cmd: cmd, log: &lineLog{t: t, prefix: name + ": "}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	// Children of a daemon may keep its output pipe open; don't wait for
	// them once the daemon itself has exited.
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL if the process does not exit in time.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.log.write(fmt.Sprintf("still running %v after SIGTERM, sending SIGKILL", stopTimeout))
		p.kill()
	}
}

func (p *proc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// lineLog writes a process's output line by line to the test log, and to
// stderr once the test is over (a late line must not panic the test).
type lineLog struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
	closed bool
	lines  []string
}

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		l.emit(string(l.buf[:i]))
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

func (l *lineLog) write(line string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.emit(line)
}

func (l *lineLog) emit(line string) {
	l.lines = append(l.lines, line)
	if l.closed {
		fmt.Fprintln(os.Stderr, l.prefix+line)
		return
	}
	l.t.Log(l.prefix + line)
}

// close flushes a partial last line and sends later output to stderr.
func (l *lineLog) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buf) > 0 {
		l.emit(string(l.buf))
		l.buf = nil
	}
	l.closed = true
}

// Lines is everything written so far, line by line.
func (l *lineLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}
