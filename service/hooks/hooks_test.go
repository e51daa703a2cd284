package hooks

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fixture is a root-owned, 0755 hooks directory, a directory outside it
// where hooks leave traces, and a logger the test can read.
type fixture struct {
	dir, out string
	logs     *bytes.Buffer
	runner   *Runner
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("hooks must be owned by root; run the tests as root")
	}
	dir := filepath.Join(t.TempDir(), "hooks.d")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The umask may have taken bits away; the check wants exactly these.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	logs := new(bytes.Buffer)
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &fixture{
		dir:    dir,
		out:    t.TempDir(),
		logs:   logs,
		runner: &Runner{Dir: dir, Timeout: 10 * time.Second, Log: log},
	}
}

// writeScript writes a shell script at path with exactly mode.
func writeScript(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// tracer is a hook body that appends "<its name> <event>" to the trace.
func (f *fixture) tracer() string {
	return `echo "${0##*/} $1" >> ` + f.out + `/trace`
}

func (f *fixture) trace(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.out, "trace"))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(strings.ReplaceAll(string(b), " ", "/"))
}

func TestOrder(t *testing.T) {
	f := newFixture(t)
	for _, name := range []string{"20-b", "10-a", "30-c"} {
		writeScript(t, filepath.Join(f.dir, name), f.tracer(), 0o755)
	}
	if err := f.runner.Up(context.Background(), TapUp, Env{}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	f.runner.Down(context.Background(), TapDown, Env{})
	want := []string{"10-a/tap-up", "20-b/tap-up", "30-c/tap-up", "30-c/tap-down", "20-b/tap-down", "10-a/tap-down"}
	if got := f.trace(t); !slices.Equal(got, want) {
		t.Errorf("hooks ran as %q, want %q", got, want)
	}
}

func TestEnvironment(t *testing.T) {
	f := newFixture(t)
	t.Setenv("NETGRANT_LEAK", "daemon environment")
	// /proc/$$/environ is what the hook was started with, before the shell
	// added anything of its own.
	writeScript(t, filepath.Join(f.dir, "10-env"), `
tr '\0' '\n' < /proc/$$/environ > `+f.out+`/env
{ echo "$#"; echo "$1"; readlink /proc/$$/cwd; readlink /proc/$$/fd/0; } > `+f.out+`/misc`, 0o755)
	env := Env{IfName: "ngtap3", Network: "my-net", Subnet: "10.97.3.0/24", MAC: "52:54:00:12:34:56", UID: 4294967294}
	if err := f.runner.Up(context.Background(), NetworkUp, env); err != nil {
		t.Fatalf("Up: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(f.out, "env"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	slices.Sort(got)
	want := []string{
		"NETGRANT_BRIDGE=",
		"NETGRANT_EVENT=network-up",
		"NETGRANT_IFNAME=ngtap3",
		"NETGRANT_MAC=52:54:00:12:34:56",
		"NETGRANT_NETWORK=my-net",
		"NETGRANT_SUBNET=10.97.3.0/24",
		"NETGRANT_UID=4294967294",
		"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
	}
	if !slices.Equal(got, want) {
		t.Errorf("hook environment:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	b, err = os.ReadFile(filepath.Join(f.out, "misc"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "1\nnetwork-up\n/\n/dev/null\n"; got != want {
		t.Errorf("argc, argv[1], cwd, stdin = %q, want %q", got, want)
	}
}

func TestSkipsUnsafeFiles(t *testing.T) {
	f := newFixture(t)
	hook := func(name string, mode os.FileMode) string {
		path := filepath.Join(f.dir, name)
		writeScript(t, path, f.tracer(), mode)
		return path
	}
	hook("10-good", 0o755)
	if err := os.Chown(hook("20-foreign", 0o755), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	hook("30-group-writable", 0o775)
	hook("40-other-writable", 0o757)
	hook("50-not-executable", 0o644)
	hook(".hidden", 0o755)
	hook("60-backup~", 0o755)
	if err := os.Mkdir(filepath.Join(f.dir, "70-directory"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Symlinks are judged by their target.
	target := filepath.Join(f.out, "target")
	writeScript(t, target, f.tracer(), 0o755)
	if err := os.Symlink(target, filepath.Join(f.dir, "80-link")); err != nil {
		t.Fatal(err)
	}
	writable := filepath.Join(f.out, "writable")
	writeScript(t, writable, f.tracer(), 0o777)
	if err := os.Symlink(writable, filepath.Join(f.dir, "85-link-to-writable")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(f.out, "nowhere"), filepath.Join(f.dir, "90-dangling")); err != nil {
		t.Fatal(err)
	}

	if err := f.runner.Up(context.Background(), TapUp, Env{}); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if got, want := f.trace(t), []string{"10-good/tap-up", "80-link/tap-up"}; !slices.Equal(got, want) {
		t.Errorf("hooks ran: %q, want %q", got, want)
	}
	logs := f.logs.String()
	for _, want := range []string{
		`level=WARN msg="skipping hook" dir=` + f.dir + ` hook=20-foreign reason="owned by uid 65534, not root"`,
		`hook=30-group-writable reason="writable by group or others (mode 0775)"`,
		`hook=40-other-writable reason="writable by group or others (mode 0757)"`,
		`hook=50-not-executable reason="not executable"`,
		`hook=70-directory reason="not a regular file"`,
		`hook=85-link-to-writable reason="writable by group or others (mode 0777)"`,
		`hook=90-dangling reason="stat ` + f.dir + `/90-dangling: no such file or directory"`,
		`level=DEBUG msg="ignoring hidden or backup file in hooks directory" dir=` + f.dir + ` hook=.hidden`,
		`level=DEBUG msg="ignoring hidden or backup file in hooks directory" dir=` + f.dir + ` hook=60-backup~`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s\nlog:\n%s", want, logs)
		}
	}
}

func TestUpFailure(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{"exit with stderr", "echo starting >&2; echo 'vlan 5 missing' >&2; echo >&2; echo '  ' >&2; exit 3",
			"hook 20-fail: exit status 3: vlan 5 missing"},
		{"exit without stderr", "echo only stdout; exit 1", "hook 20-fail: exit status 1"},
		{"killed by signal", "echo dying >&2; kill -TERM $$", "hook 20-fail: signal: terminated: dying"},
		{"long stderr keeps its end", "head -c 100000 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'final words' >&2; exit 2",
			"hook 20-fail: exit status 2: final words"},
		{"invalid UTF-8 made valid", `printf 'bad \377 byte\n' >&2; exit 1`, "hook 20-fail: exit status 1: bad \uFFFD byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			writeScript(t, filepath.Join(f.dir, "10-ok"), f.tracer(), 0o755)
			writeScript(t, filepath.Join(f.dir, "20-fail"), f.tracer()+"\n"+tt.body, 0o755)
			writeScript(t, filepath.Join(f.dir, "30-after"), f.tracer(), 0o755)
			err := f.runner.Up(context.Background(), TapUp, Env{})
			if err == nil || err.Error() != tt.want {
				t.Errorf("Up error = %v, want %s", err, tt.want)
			}
			if got, want := f.trace(t), []string{"10-ok/tap-up", "20-fail/tap-up"}; !slices.Equal(got, want) {
				t.Errorf("hooks ran: %q, want %q (stop at the failure)", got, want)
			}
		})
	}
}

func TestDownGoesOnAfterFailure(t *testing.T) {
	f := newFixture(t)
	writeScript(t, filepath.Join(f.dir, "10-a"), f.tracer(), 0o755)
	writeScript(t, filepath.Join(f.dir, "20-fail"), f.tracer()+"\necho 'no such vlan' >&2; exit 4", 0o755)
	writeScript(t, filepath.Join(f.dir, "30-c"), f.tracer(), 0o755)
	f.runner.Down(context.Background(), NetworkDown, Env{Network: "lab"})
	want := []string{"30-c/network-down", "20-fail/network-down", "10-a/network-down"}
	if got := f.trace(t); !slices.Equal(got, want) {
		t.Errorf("hooks ran: %q, want %q", got, want)
	}
	if logs, want := f.logs.String(), `level=WARN msg="hook failed" event=network-down ifname="" network=lab error="hook 20-fail: exit status 4: no such vlan"`; !strings.Contains(logs, want) {
		t.Errorf("log lacks %s\nlog:\n%s", want, logs)
	}
}

func TestTimeoutKillsProcessGroup(t *testing.T) {
	f := newFixture(t)
	f.runner.Timeout = time.Second
	childPid := filepath.Join(f.out, "child")
	writeScript(t, filepath.Join(f.dir, "10-slow"), "sleep 100 & echo $! > "+childPid+"\nsleep 100", 0o755)
	writeScript(t, filepath.Join(f.dir, "20-after"), f.tracer(), 0o755)

	err := f.runner.Up(context.Background(), TapUp, Env{})
	if want := "hook 10-slow: killed after timeout of 1s"; err == nil || err.Error() != want {
		t.Errorf("Up error = %v, want %s", err, want)
	}
	if got := f.trace(t); got != nil {
		t.Errorf("hooks after the timed-out one ran: %q", got)
	}
	b, err := os.ReadFile(childPid)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	// SIGKILL takes effect asynchronously; wait for it rather than time it.
	deadline := time.Now().Add(30 * time.Second)
	for !dead(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d still runs", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dead reports whether pid is gone or a zombie waiting to be reaped.
func dead(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	// The state follows the parenthesized command name.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	return fields[0] == "Z" || fields[0] == "X"
}

func TestCancelKillsHook(t *testing.T) {
	f := newFixture(t)
	f.runner.Timeout = 0
	started := filepath.Join(f.out, "started")
	if err := syscall.Mkfifo(started, 0o600); err != nil {
		t.Fatal(err)
	}
	writeScript(t, filepath.Join(f.dir, "10-slow"), "echo $$ > "+started+"\nsleep 100", 0o755)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Opening the fifo waits for the hook to open it.
		b, _ := os.ReadFile(started)
		if len(b) == 0 {
			t.Error("the hook did not start")
		}
		cancel()
	}()
	err := f.runner.Up(ctx, TapUp, Env{})
	if want := "hook 10-slow: context canceled"; err == nil || err.Error() != want {
		t.Errorf("Up error = %v, want %s", err, want)
	}
}

func TestMissingDirRunsNothing(t *testing.T) {
	f := newFixture(t)
	f.runner.Dir = filepath.Join(f.dir, "absent")
	if err := f.runner.Up(context.Background(), TapUp, Env{}); err != nil {
		t.Errorf("Up: %v", err)
	}
	f.runner.Down(context.Background(), TapDown, Env{})
	if f.logs.Len() != 0 {
		t.Errorf("a missing hooks directory was logged:\n%s", f.logs)
	}
}

func TestUnsafeDirRunsNothing(t *testing.T) {
	tests := []struct {
		name   string
		mode   os.FileMode
		uid    int
		reason string
	}{
		{"group writable", 0o775, 0, "writable by group or others (mode 0775)"},
		{"other writable", 0o757, 0, "writable by group or others (mode 0757)"},
		{"not root's", 0o755, 65534, "owned by uid 65534, not root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			writeScript(t, filepath.Join(f.dir, "10-hook"), f.tracer(), 0o755)
			if err := os.Chmod(f.dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(f.dir, tt.uid, 0); err != nil {
				t.Fatal(err)
			}
			if err := f.runner.Up(context.Background(), TapUp, Env{}); err != nil {
				t.Errorf("Up: %v", err)
			}
			f.runner.Down(context.Background(), TapDown, Env{})
			if got := f.trace(t); got != nil {
				t.Errorf("hooks ran: %q", got)
			}
			want := `level=ERROR msg="hooks directory is unsafe, running no hooks" dir=` + f.dir + ` reason="` + tt.reason + `"`
			if logs := f.logs.String(); !strings.Contains(logs, want) {
				t.Errorf("log lacks %s\nlog:\n%s", want, logs)
			}
		})
	}
}

func TestDirNotADirectoryRunsNothing(t *testing.T) {
	f := newFixture(t)
	f.runner.Dir = filepath.Join(f.out, "file")
	writeScript(t, f.runner.Dir, f.tracer(), 0o755)
	if err := f.runner.Up(context.Background(), TapUp, Env{}); err != nil {
		t.Errorf("Up: %v", err)
	}
	if got := f.trace(t); got != nil {
		t.Errorf("hooks ran: %q", got)
	}
	if logs, want := f.logs.String(), `level=ERROR msg="hooks directory is not a directory, running no hooks"`; !strings.Contains(logs, want) {
		t.Errorf("log lacks %s\nlog:\n%s", want, logs)
	}
}
