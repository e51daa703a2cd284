// Package harness runs integration tests against the real thing: a private
// dbus-daemon with the project's bus policy, the real polkitd with the
// project's actions and per-test rules, netgrantd, and clients as
// unprivileged test users — all inside network, mount and pid namespaces
// that die with the test binary, so the host's network and files are never
// touched. A test package uses it like this:
//
//	func TestMain(m *testing.M) { harness.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := harness.Start(t, harness.Options{Rules: `...`})
//		alice := env.Client(t, harness.UserAlice)
//		path, fds, info, err := alice.CreateTap(nil)
//		...
//	}
//
// Only one Env can run at a time (there is one system bus socket), so tests
// using Start must not run in parallel.
package harness

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
)

// Names on the bus.
const (
	BusName        = names.BusName
	ManagerPath    = names.ManagerPath
	ManagerIface   = names.ManagerInterface
	PolkitName     = "org.freedesktop.PolicyKit1"
	PolkitPath     = dbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	PolkitIface    = "org.freedesktop.PolicyKit1.Authority"
	rulesFileName  = "50-netgrant-test.rules"
	readyTimeout   = 30 * time.Second
	pollInterval   = 20 * time.Millisecond
	polkitdBinary  = "/usr/lib/polkit-1/polkitd"
	busPolicyName  = "org.netgrant.NetGrant1.conf"
	netgrantdPkg   = "./cmd/netgrantd"
	netgrantdBuilt = binDir + "/netgrantd"
)

// busPolicyFile is the project's bus policy included in the bus
// configuration; tests of the harness itself may point it at a stand-in.
var busPolicyFile = func() string {
	root, err := ModuleRoot()
	if err != nil {
		return ""
	}
	return filepath.Join(root, "data", busPolicyName)
}()

// Options configures an Env.
type Options struct {
	// Rules is the polkit rules file (JavaScript); empty means polkit's
	// defaults only, which deny everything to inactive subjects.
	Rules string
	// Config is the contents of netgrant.conf.
	Config string
	// Hooks maps hook file names to script bodies, installed root-owned
	// and mode 0755; a body without "#!" gets "#!/bin/sh".
	Hooks map[string]string
	// DaemonArgs are added to netgrantd's command line.
	DaemonArgs []string
	// DaemonEnv is added to netgrantd's environment.
	DaemonEnv []string
	// NoDaemon starts only the bus and polkitd.
	NoDaemon bool
}

// FirewallBackend is the backend netgrantd runs with where a test's
// configuration names none: NETGRANT_TEST_FIREWALL (test/run runs the
// network tests once more with nftables), else iptables.
func FirewallBackend() string {
	if b := os.Getenv("NETGRANT_TEST_FIREWALL"); b != "" {
		return b
	}
	return "iptables"
}

// Env is a running private system bus with polkitd and, unless NoDaemon,
// netgrantd. Everything stops when the test ends.
type Env struct {
	t          testing.TB
	opts       Options
	StateDir   string
	HooksDir   string
	ConfigPath string

	busd    *proc
	polkitd *proc
	daemon  *proc
	// daemonDown is true while netgrantd is stopped on purpose.
	daemonDown bool
	bus        *dbus.Conn
	logs       []*lineLog
}

var envRunning atomic.Bool

// stateDir is netgrantd's state directory for every Env of a test binary.
// A stopped netgrantd keeps what is still held, as a restart must; the
// next Env's netgrantd starts on the same directory and removes what the
// previous test's clients, gone now, held — as a real restart would.
const stateDir = runDir + "/state"

// Start brings up an Env for t; failures end t. It registers a cleanup
// that stops everything, in reverse order, also when t fails.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	Require(t)
	if !envRunning.CompareAndSwap(false, true) {
		t.Fatal("harness: another Env is running; tests using Start must not run in parallel")
	}
	dir := t.TempDir()
	e := &Env{
		t:          t,
		opts:       opts,
		StateDir:   stateDir,
		HooksDir:   filepath.Join(dir, "hooks.d"),
		ConfigPath: filepath.Join(dir, "netgrant.conf"),
	}
	t.Cleanup(e.stop)
	if err := e.writeFiles(dir); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := e.startBus(dir); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := e.startPolkitd(); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if !opts.NoDaemon {
		if err := e.startDaemon(); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	return e
}

func (e *Env) writeFiles(dir string) error {
	if err := os.MkdirAll(e.StateDir, 0o755); err != nil {
		return err
	}
	if err := os.Mkdir(e.HooksDir, 0o755); err != nil {
		return err
	}
	for name, body := range e.opts.Hooks {
		if !strings.HasPrefix(body, "#!") {
			body = "#!/bin/sh\n" + body
		}
		path := filepath.Join(e.HooksDir, name)
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			return err
		}
		// WriteFile's mode is filtered by the umask.
		if err := os.Chmod(path, 0o755); err != nil {
			return err
		}
	}
	config := e.opts.Config
	// A test that waits is no idle daemon: netgrantd stays unless the test
	// is about its idle exit.
	if !strings.Contains(config, "IdleExitSec") {
		config += "\n[Daemon]\nIdleExitSec=0\n"
	}
	if !strings.Contains(config, "[Firewall]") {
		config += "\n[Firewall]\nBackend=" + FirewallBackend() + "\n"
	}
	if err := os.WriteFile(e.ConfigPath, []byte(config), 0o644); err != nil {
		return err
	}
	return writeRules(e.opts.Rules)
}

func writeRules(js string) error {
	path := filepath.Join(rulesDir, rulesFileName)
	if js == "" {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	if err := os.WriteFile(path, []byte(js), 0o644); err != nil {
		return fmt.Errorf("writing polkit rules: %w", err)
	}
	return os.Chmod(path, 0o644)
}

// busConfig is a system bus like Debian's, minus activation, forking and
// syslog: its default policy denies owning names and method calls, so only
// the included service policies (polkit's and ours) open holes.
const busConfig = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>` + BusAddress + `</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus" send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
    <!-- ActAsFirewalld: firewalld's own policy lets root own its name too. -->
    <allow own="org.fedoraproject.FirewallD1"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
%s</busconfig>
`

func (e *Env) startBus(dir string) error {
	var include string
	if _, err := os.Stat(busPolicyFile); err == nil {
		include = fmt.Sprintf("  <include>%s</include>\n", busPolicyFile)
	} else {
		e.t.Logf("harness: %s is missing; the bus has no netgrant policy", busPolicyFile)
	}
	conf := filepath.Join(dir, "bus.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(busConfig, include)), 0o644); err != nil {
		return err
	}
	// A socket left by a killed bus would make the new one fail to listen.
	os.Remove(strings.TrimPrefix(BusAddress, "unix:path="))

	ready, readyW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer ready.Close()
	cmd := exec.Command("dbus-daemon", "--config-file="+conf, "--nofork", "--nopidfile", "--nosyslog", "--print-address=3")
	cmd.ExtraFiles = []*os.File{readyW}
	e.busd, err = startProc(e.t, "dbus-daemon", cmd)
	readyW.Close()
	if err != nil {
		return err
	}
	e.logs = append(e.logs, e.busd.log)
	// The address is printed once the bus listens.
	if _, err := bufio.NewReader(ready).ReadString('\n'); err != nil {
		return fmt.Errorf("dbus-daemon did not start: %v", e.busd.waitErr())
	}
	e.bus, err = dbus.Connect(BusAddress)
	if err != nil {
		return fmt.Errorf("connecting to the private bus: %w", err)
	}
	return nil
}

// waitErr is how the process ended, once it has.
func (p *proc) waitErr() error {
	<-p.done
	if p.err == nil {
		return fmt.Errorf("%s exited", p.name)
	}
	return fmt.Errorf("%s: %w", p.name, p.err)
}

func (e *Env) startPolkitd() error {
	cmd := exec.Command(polkitdBinary, "--no-debug")
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+BusAddress)
	p, err := startProc(e.t, "polkitd", cmd)
	if err != nil {
		return err
	}
	e.polkitd = p
	e.logs = append(e.logs, p.log)
	return e.waitOwner(PolkitName, p)
}

// waitOwner waits until name is owned by p's connection, so a restarted
// daemon is not mistaken for its predecessor.
func (e *Env) waitOwner(name string, p *proc) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("waiting for %s: %w", name, p.waitErr())
		}
		var owner string
		var pid uint32
		if e.bus.BusObject().Call("org.freedesktop.DBus.GetNameOwner", 0, name).Store(&owner) == nil &&
			e.bus.BusObject().Call("org.freedesktop.DBus.GetConnectionUnixProcessID", 0, owner).Store(&pid) == nil &&
			int(pid) == p.pid() {
			return nil
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("%s did not own %s within %v", p.name, name, readyTimeout)
}

// waitNoOwner waits until nobody owns name.
func (e *Env) waitNoOwner(name string) error {
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		var has bool
		if err := e.bus.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err != nil {
			return err
		}
		if !has {
			return nil
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("%s still owned after %v", name, readyTimeout)
}

// SetRules replaces the polkit rules and restarts polkitd, so the next
// check is sure to use them. Temporary authorizations (auth_admin_keep) and
// registered authentication agents are lost.
func (e *Env) SetRules(js string) {
	e.t.Helper()
	if err := writeRules(js); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	e.polkitd.stop()
	if err := e.waitNoOwner(PolkitName); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	if err := e.startPolkitd(); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
}

var (
	buildOnce sync.Once
	buildErr  error
)

// buildDaemon builds netgrantd once per test binary.
func buildDaemon() error {
	buildOnce.Do(func() {
		root, err := ModuleRoot()
		if err != nil {
			buildErr = err
			return
		}
		buildErr = goBuild(root, netgrantdBuilt, netgrantdPkg)
	})
	return buildErr
}

func goTool() string {
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	return "/usr/local/go/bin/go"
}

func (e *Env) startDaemon() error {
	if err := buildDaemon(); err != nil {
		return err
	}
	args := append([]string{"--config", e.ConfigPath, "--state-dir", e.StateDir, "--hooks-dir", e.HooksDir}, e.opts.DaemonArgs...)
	cmd := exec.Command(netgrantdBuilt, args...)
	cmd.Env = append(append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+BusAddress), e.opts.DaemonEnv...)
	p, err := startProc(e.t, "netgrantd", cmd)
	if err != nil {
		return err
	}
	e.daemon = p
	e.daemonDown = false
	e.logs = append(e.logs, p.log)
	return e.waitOwner(BusName, p)
}

// WaitDaemonExit waits for netgrantd to exit by itself and returns how it
// ended (nil for exit status 0). The bound only keeps a daemon that never
// exits from hanging the test.
func (e *Env) WaitDaemonExit(t testing.TB) error {
	t.Helper()
	select {
	case <-e.daemon.done:
	case <-time.After(time.Minute):
		t.Fatal("netgrantd did not exit")
	}
	e.daemonDown = true
	if err := e.waitNoOwner(BusName); err != nil {
		t.Fatalf("harness: %v", err)
	}
	return e.daemon.err
}

// RestartDaemon stops netgrantd with SIGTERM and starts it again on the
// same state directory, waiting until it owns its name.
func (e *Env) RestartDaemon() {
	e.t.Helper()
	e.stopDaemon(false)
	if err := e.startDaemon(); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
}

// KillDaemon kills netgrantd with SIGKILL and waits until its name is free.
func (e *Env) KillDaemon() {
	e.t.Helper()
	e.stopDaemon(true)
}

// KillDaemonGracefully stops netgrantd with SIGTERM, as a restart or an
// upgrade does, and waits until its name is free.
func (e *Env) KillDaemonGracefully() {
	e.t.Helper()
	e.stopDaemon(false)
}

// StartDaemon starts netgrantd after KillDaemon (or with NoDaemon).
func (e *Env) StartDaemon() {
	e.t.Helper()
	if e.daemon != nil && !e.daemon.exited() {
		e.t.Fatal("harness: netgrantd is already running")
	}
	if err := e.startDaemon(); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
}

func (e *Env) stopDaemon(kill bool) {
	e.t.Helper()
	if e.daemon == nil {
		e.t.Fatal("harness: netgrantd is not running")
	}
	e.daemonDown = true
	if kill {
		e.daemon.kill()
	} else if err := e.stopCleanly(e.daemon); err != nil {
		e.t.Error(err)
	}
	if err := e.waitNoOwner(BusName); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
}

// DaemonLog is what the running netgrantd logged so far.
func (e *Env) DaemonLog() []string {
	e.t.Helper()
	if e.daemon == nil {
		e.t.Fatal("harness: netgrantd is not running")
	}
	return e.daemon.log.Lines()
}

// CountLogLines counts netgrantd's log lines that contain substr.
func (e *Env) CountLogLines(substr string) int {
	n := 0
	for _, line := range e.DaemonLog() {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// DaemonStats asks netgrantd (SIGUSR1) for its goroutine and open fd
// counts, as it logs them.
func (e *Env) DaemonStats() (goroutines, fds int) {
	e.t.Helper()
	seen := len(e.DaemonLog())
	if err := e.daemon.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		e.t.Fatalf("harness: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		for _, line := range e.DaemonLog()[seen:] {
			if strings.Contains(line, "runtime stats") {
				if _, err := fmt.Sscanf(line[strings.Index(line, "goroutines="):], "goroutines=%d fds=%d", &goroutines, &fds); err == nil {
					return goroutines, fds
				}
			}
		}
	}
	e.t.Fatal("harness: netgrantd did not log its runtime stats")
	return 0, 0
}

// DaemonBinary is the netgrantd the harness built and runs.
func DaemonBinary() string { return netgrantdBuilt }

// DaemonPID is netgrantd's pid (0 without a daemon).
func (e *Env) DaemonPID() int {
	if e.daemon == nil {
		return 0
	}
	return e.daemon.pid()
}

// ActAsFirewalld connects as root and takes firewalld's bus name, so that
// what the test sends on the returned connection comes from firewalld as
// far as netgrantd can tell.
func (e *Env) ActAsFirewalld(t testing.TB) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(BusAddress)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	reply, err := conn.RequestName("org.fedoraproject.FirewallD1", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("harness: owning firewalld's name: %v %v", reply, err)
	}
	return conn
}

// Bus is a root connection to the private bus, for assertions.
func (e *Env) Bus() *dbus.Conn { return e.bus }

// stopCleanly stops p with SIGTERM and reports unless it exits with 0.
func (e *Env) stopCleanly(p *proc) error {
	if p.exited() {
		return fmt.Errorf("harness: %s exited during the test: %v", p.name, p.waitErr())
	}
	p.stop()
	if p.err != nil {
		return fmt.Errorf("harness: %s did not exit cleanly on SIGTERM: %w", p.name, p.err)
	}
	return nil
}

func (e *Env) stop() {
	if e.daemon != nil && !e.daemonDown {
		if err := e.stopCleanly(e.daemon); err != nil {
			e.t.Error(err)
		}
	}
	if e.bus != nil {
		e.bus.Close()
	}
	if e.polkitd != nil {
		e.polkitd.stop()
	}
	if e.busd != nil {
		e.busd.stop()
	}
	if err := writeRules(""); err != nil {
		e.t.Errorf("harness: %v", err)
	}
	for _, l := range e.logs {
		l.close()
	}
	envRunning.Store(false)
}
