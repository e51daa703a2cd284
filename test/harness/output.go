package harness

import (
	"bytes"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Output collects a process's output while the test reads it, as a
// terminal would show it.
type Output struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *Output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *Output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// AnswerPrompts runs cmd (a program on a terminal: script(1) gives it one),
// types password at each "Password:" it shows, and returns all it wrote
// and its exit code once it ends. A program still running after two
// minutes is killed and fails t.
func AnswerPrompts(t testing.TB, cmd *exec.Cmd, password string) (output string, code int) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out Output
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	deadline := time.After(2 * time.Minute)
	for typed := 0; ; {
		select {
		case err := <-done:
			if err != nil {
				return out.String(), cmd.ProcessState.ExitCode()
			}
			return out.String(), 0
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("%s still runs after 2 minutes:\n%s", cmd.Path, out.String())
		case <-time.After(pollInterval):
		}
		if strings.Count(out.String(), "Password:") > typed {
			stdin.Write([]byte(password + "\n"))
			typed++
		}
	}
}
