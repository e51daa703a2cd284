package harness

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The test binary runs in three stages, told apart by stageEnv: outside (as
// started by go test), init (pid 1 of the new pid namespace, reaping
// orphans) and inside (runs the tests). clientEnv marks a client process.
const (
	stageEnv  = "NETGRANT_HARNESS_STAGE"
	clientEnv = "NETGRANT_HARNESS_CLIENT"
)

// Everything the sandbox creates lives below runDir, on a tmpfs that is
// mounted over /run inside the private mount namespace and vanishes with it.
const (
	runDir       = "/run/netgrant-test"
	binDir       = runDir + "/bin"
	etcDir       = runDir + "/etc"
	rulesDir     = runDir + "/polkit-rules.d"
	actionsDir   = runDir + "/polkit-actions"
	busSocketDir = "/run/dbus"
	// BusAddress is the private system bus, at the path the system bus has
	// (polkit's setuid agent helper insists on it).
	BusAddress = "unix:path=/run/dbus/system_bus_socket"
)

// Test users. Each has a group of its own name and id; ngalice is also in
// netdev. All of them have the password TestPassword when PasswordSet is true.
const (
	UserAlice   = "ngalice"
	UserBob     = "ngbob"
	UserMallory = "ngmallory"
	// UserCarol and UserDave make, with ngalice and ngbob, four users whose
	// clients together may have 16 polkit checks waiting (4 each).
	UserCarol    = "ngcarol"
	UserDave     = "ngdave"
	GroupNetdev  = "netdev"
	NetdevGID    = 4000
	TestPassword = "netgrant-test-password"
)

type testUser struct {
	name   string
	id     uint32
	groups []uint32
}

// DnsmasqUser is dnsmasq's system account in the sandbox, as
// data/netgrant.sysusers creates it on a real system, with the block of
// ids delegated to it (/etc/subuid, /etc/subgid) that netgrantd runs each
// network's dnsmasq under, one identity each.
const (
	DnsmasqUser    = "netgrant-dnsmasq"
	DnsmasqUID     = 4090
	DnsmasqIDFirst = 4100
	DnsmasqIDCount = 128
)

var testUsers = []testUser{
	{UserAlice, 4001, []uint32{NetdevGID}},
	{UserBob, 4002, nil},
	{UserMallory, 4003, nil},
	{UserCarol, 4004, nil},
	{UserDave, 4005, nil},
}

// PasswordSet reports whether the test users got TestPassword (it needs
// openssl to hash it); otherwise their passwords are locked.
var PasswordSet bool

// hostPasswd is /etc/passwd as it was before the sandbox covered it.
var hostPasswd []byte

// testBinary is the copy of the test binary that clients, running as test
// users, can execute.
var testBinary = filepath.Join(binDir, "harness.test")

// Main runs m inside new network, mount and pid namespaces prepared for
// integration tests. Call it from TestMain. Without root, the tests run
// outside and every test that calls Start or Require is skipped.
func Main(m *testing.M) {
	if os.Getenv(clientEnv) != "" {
		os.Exit(runClient())
	}
	switch os.Getenv(stageEnv) {
	case "init":
		os.Exit(runInit())
	case "inside":
		if err := prepareSandbox(); err != nil {
			fmt.Fprintln(os.Stderr, "harness:", err)
			os.Exit(1)
		}
		os.Exit(m.Run())
	}
	if os.Geteuid() != 0 {
		os.Exit(m.Run())
	}
	os.Exit(reexec())
}

// Require skips t unless it runs inside the sandbox (that is, as root).
func Require(t testing.TB) {
	t.Helper()
	if os.Getenv(stageEnv) != "inside" {
		t.Skip("needs root: runs in private network, mount and pid namespaces")
	}
}

// reexec runs the test binary again as pid 1 of fresh namespaces; when that
// process ends, the kernel kills everything left in them.
func reexec() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	args := append([]string{"--net", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc", "--", self}, os.Args[1:]...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = append(os.Environ(), stageEnv+"=init")
	if err := cmd.Run(); err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		fmt.Fprintln(os.Stderr, "harness: running unshare:", err)
		return 1
	}
	return 0
}

// runInit is pid 1: it starts the inside stage, forwards termination
// signals to it and reaps every orphan (daemons' children) so none linger as
// zombies.
func runInit() int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, stageEnv+"=") {
			env = append(env, kv)
		}
	}
	child, err := os.StartProcess(self, os.Args, &os.ProcAttr{
		Env:   append(env, stageEnv+"=inside"),
		Files: []*os.File{os.Stdin, os.Stdout, os.Stderr},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "harness:", err)
		return 1
	}
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGQUIT)
	go func() {
		for sig := range signals {
			child.Signal(sig)
		}
	}()
	for {
		var status unix.WaitStatus
		pid, err := unix.Wait4(-1, &status, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "harness: waiting:", err)
			return 1
		}
		if pid != child.Pid {
			continue
		}
		if status.Signaled() {
			return 128 + int(status.Signal())
		}
		return status.ExitStatus()
	}
}

// prepareSandbox gives the private mount namespace a sysfs of its own, a
// fresh /run, the test users and netgrant's polkit actions. The host's files
// are only covered by bind mounts, never changed.
func prepareSandbox() error {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	if err := unix.Mount("sysfs", "/sys", "sysfs", 0, ""); err != nil {
		return fmt.Errorf("mounting sysfs: %w", err)
	}
	if err := unix.Mount("tmpfs", "/run", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return fmt.Errorf("mounting tmpfs on /run: %w", err)
	}
	for _, dir := range []string{busSocketDir, binDir, etcDir, rulesDir, actionsDir} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	tmp := filepath.Join(runDir, "tmp")
	if err := os.Mkdir(tmp, 0o1777); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o1777); err != nil {
		return err
	}
	// Temporary files of the tests die with the namespace too.
	os.Setenv("TMPDIR", tmp)
	os.Setenv("DBUS_SYSTEM_BUS_ADDRESS", BusAddress)
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("bringing up lo: %w: %s", err, out)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := copyFile(self, testBinary, 0o755); err != nil {
		return fmt.Errorf("copying the test binary: %w", err)
	}
	if err := installUsers(); err != nil {
		return fmt.Errorf("adding test users: %w", err)
	}
	if err := installActions(); err != nil {
		return fmt.Errorf("installing polkit actions: %w", err)
	}
	if err := bindMount(rulesDir, "/etc/polkit-1/rules.d"); err != nil {
		return fmt.Errorf("installing polkit rules dir: %w", err)
	}
	return nil
}

func bindMount(src, dst string) error {
	if err := unix.Mount(src, dst, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind-mounting %s on %s: %w", src, dst, err)
	}
	return nil
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// installUsers covers /etc/passwd, /etc/group and /etc/shadow with copies
// that also hold the test users and groups; host entries with the same
// names or ids are left out of the copies.
func installUsers() error {
	hash := "!"
	if out, err := exec.Command("openssl", "passwd", "-6", TestPassword).Output(); err == nil {
		hash = strings.TrimSpace(string(out))
		PasswordSet = true
	}
	var passwd, group, shadow []string
	groupMembers := map[uint32][]string{}
	for _, u := range testUsers {
		id := strconv.Itoa(int(u.id))
		passwd = append(passwd, fmt.Sprintf("%s:x:%s:%s:netgrant test user:/nonexistent:/usr/sbin/nologin", u.name, id, id))
		shadow = append(shadow, fmt.Sprintf("%s:%s:19000:0:99999:7:::", u.name, hash))
		group = append(group, fmt.Sprintf("%s:x:%s:", u.name, id))
		for _, g := range u.groups {
			groupMembers[g] = append(groupMembers[g], u.name)
		}
	}
	group = append(group, fmt.Sprintf("%s:x:%d:%s", GroupNetdev, NetdevGID, strings.Join(groupMembers[NetdevGID], ",")))
	passwd = append(passwd, fmt.Sprintf("%s:x:%d:%d:netgrant dnsmasq:/nonexistent:/usr/sbin/nologin", DnsmasqUser, DnsmasqUID, DnsmasqUID))
	group = append(group, fmt.Sprintf("%s:x:%d:", DnsmasqUser, DnsmasqUID))
	shadow = append(shadow, DnsmasqUser+":!:19000::::::")

	taken := map[string]bool{GroupNetdev: true, strconv.Itoa(NetdevGID): true, DnsmasqUser: true, strconv.Itoa(DnsmasqUID): true}
	for _, u := range testUsers {
		taken[u.name] = true
		taken[strconv.Itoa(int(u.id))] = true
	}
	var err error
	hostPasswd, err = os.ReadFile("/etc/passwd")
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path  string
		extra []string
	}{{"/etc/passwd", passwd}, {"/etc/group", group}, {"/etc/shadow", shadow}} {
		if err := coverTable(f.path, f.extra, taken); err != nil {
			return err
		}
	}
	delegated := []string{fmt.Sprintf("%s:%d:%d", DnsmasqUser, DnsmasqIDFirst, DnsmasqIDCount)}
	for _, path := range []string{"/etc/subuid", "/etc/subgid"} {
		if err := coverTable(path, delegated, map[string]bool{DnsmasqUser: true}); err != nil {
			return fmt.Errorf("%w (Debian's login package makes it)", err)
		}
	}
	return nil
}

// coverTable bind-mounts over path a copy with the given entries appended,
// keeping the original's owner and mode (shadow must stay unreadable).
func coverTable(path string, extra []string, taken map[string]bool) error {
	orig, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	info, err := os.Stat(path)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	for _, line := range strings.Split(strings.TrimRight(string(orig), "\n"), "\n") {
		fields := strings.Split(line, ":")
		if taken[fields[0]] || (len(fields) > 2 && taken[fields[2]] && path != "/etc/shadow") {
			continue
		}
		out.WriteString(line + "\n")
	}
	for _, line := range extra {
		out.WriteString(line + "\n")
	}
	copyPath := filepath.Join(etcDir, filepath.Base(path))
	if err := os.WriteFile(copyPath, out.Bytes(), info.Mode().Perm()); err != nil {
		return err
	}
	st := info.Sys().(*syscall.Stat_t)
	if err := os.Chown(copyPath, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := os.Chmod(copyPath, info.Mode().Perm()); err != nil {
		return err
	}
	return bindMount(copyPath, path)
}

// installActions covers polkit's actions directory with a copy that adds
// the project's data/org.netgrant.policy, when that file exists.
func installActions() error {
	const system = "/usr/share/polkit-1/actions"
	entries, err := os.ReadDir(system)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := copyFile(filepath.Join(system, e.Name()), filepath.Join(actionsDir, e.Name()), 0o644); err != nil {
			return err
		}
	}
	root, err := ModuleRoot()
	if err != nil {
		return err
	}
	policy := filepath.Join(root, "data", "org.netgrant.policy")
	if _, err := os.Stat(policy); err == nil {
		if err := copyFile(policy, filepath.Join(actionsDir, "org.netgrant.policy"), 0o644); err != nil {
			return err
		}
	}
	return bindMount(actionsDir, system)
}

// ModuleRoot is the directory of the project's go.mod, found upwards from
// the working directory (go test runs tests in their package directory).
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
