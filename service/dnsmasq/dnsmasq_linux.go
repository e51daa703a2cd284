package dnsmasq

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

const (
	// readyTimeout bounds how long dnsmasq may take to bind its sockets
	// and write its pid file.
	readyTimeout = 5 * time.Second
	// stopGrace is how long dnsmasq gets to exit on SIGTERM.
	stopGrace = 3 * time.Second
	// Restart backoff: it doubles from minBackoff up to maxBackoff, and
	// starts again from minBackoff once a dnsmasq ran for stableAfter.
	minBackoff  = 500 * time.Millisecond
	maxBackoff  = 30 * time.Second
	stableAfter = time.Minute
)

var errStopped = errors.New("stopped")

// Instance is a supervised dnsmasq: netgrantd's own child, or an instance
// of the systemd unit netgrant-dnsmasq@ that systemd supervises.
type Instance struct {
	cfg     Config
	bin     string
	unit    string // the systemd unit, when cfg.Unit
	leases  *leaseWatcher
	stop    chan struct{}
	stopped chan struct{} // closed when the supervisor has finished
	once    sync.Once
	stopErr error // written by the supervisor before stopped is closed

	mu   sync.Mutex
	proc *process
}

// Start launches dnsmasq for cfg and supervises it: when it dies it is
// started again, with a backoff. onLeases is called, never concurrently
// with itself, with all live leases each time a guest gets, changes or
// loses a lease; a renewal that only moves a lease's expiry is not reported.
// Start returns once dnsmasq serves, or an error and nothing left running.
func Start(cfg Config, onLeases func([]Lease)) (*Instance, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("dnsmasq for network %s: %w", cfg.Network, err)
	}
	bin, err := binary()
	if err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if err := makeDirs(cfg); err != nil {
		return nil, fmt.Errorf("dnsmasq for network %s: %w", cfg.Network, err)
	}
	i := &Instance{
		cfg:     cfg,
		bin:     bin,
		stop:    make(chan struct{}),
		stopped: make(chan struct{}),
	}
	if cfg.Unit {
		// The unit makes the directory of the lease file when it starts.
		i.unit = UnitName(cfg.Bridge)
		if err := startUnit(cfg); err != nil {
			return nil, err
		}
		if i.leases, err = watchLeases(cfg.leaseFile(), cfg.Prefix, onLeases); err != nil {
			StopUnit(cfg.Bridge)
			return nil, err
		}
		return i, nil
	}
	if err := prepareLeaseFile(cfg.leaseFile(), cfg.Identity); err != nil {
		return nil, fmt.Errorf("dnsmasq for network %s: %w", cfg.Network, err)
	}
	// Watch before dnsmasq starts, so no lease it writes goes unnoticed.
	if i.leases, err = watchLeases(cfg.leaseFile(), cfg.Prefix, onLeases); err != nil {
		return nil, err
	}
	p, err := i.launch()
	// dnsmasq lists every interface as it starts and gives up when one
	// vanishes meanwhile (a guest's tap closing): worth another try.
	for try := 1; err != nil && try < 3 && strings.Contains(err.Error(), "failed to find list of interfaces"); try++ {
		p, err = i.launch()
	}
	if err != nil {
		i.leases.Close()
		return nil, err
	}
	i.proc = p
	go i.supervise(p)
	return i, nil
}

// prepareLeaseFile gives a child dnsmasq, which never runs as root, the
// one file it writes: its lease file, made or kept in netgrantd's
// directory, which dnsmasq may enter but not write, whatever umask
// netgrantd runs with. dnsmasq rewrites the file in place, so it needs
// nothing more.
func prepareLeaseFile(path string, id Identity) error {
	if err := os.Chmod(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("preparing the lease file: %w", err)
	}
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("preparing the lease file: %w", &os.PathError{Op: "open", Path: path, Err: err})
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, id.UID, id.GID); err != nil {
		return fmt.Errorf("preparing the lease file: %w", &os.PathError{Op: "chown", Path: path, Err: err})
	}
	return nil
}

// Stop ends supervision and dnsmasq (SIGTERM, then SIGKILL after a grace
// period) and waits for it to exit. Its files stay in Dir. The error says
// dnsmasq had to be killed.
func (i *Instance) Stop() error {
	i.once.Do(func() {
		if i.unit != "" {
			i.stopErr = StopUnit(i.cfg.Bridge)
		} else {
			close(i.stop)
			<-i.stopped
		}
		i.leases.Close()
	})
	return i.stopErr
}

// Reload makes dnsmasq read its reservations again, forgetting removed
// ones; leases and the other guests are not disturbed.
func (i *Instance) Reload() error {
	if i.unit != "" {
		return systemctl("kill", "--signal=SIGHUP", "--kill-whom=main", i.unit)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.proc == nil {
		// Restarting: the new dnsmasq reads them afresh.
		return nil
	}
	if err := i.proc.cmd.Process.Signal(syscall.SIGHUP); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Leases returns the live leases.
func (i *Instance) Leases() []Lease { return i.leases.Leases() }

// PID is the process id of the running dnsmasq (0 while it is restarting).
func (i *Instance) PID() int {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.proc == nil {
		return 0
	}
	return i.proc.cmd.Process.Pid
}

func (i *Instance) supervise(p *process) {
	defer close(i.stopped)
	backoff := minBackoff
	for {
		select {
		case <-i.stop:
			i.stopErr = p.terminate()
			return
		case <-p.exited:
		}
		p.drainStderr()
		i.mu.Lock()
		i.proc = nil
		i.mu.Unlock()
		i.cfg.Log.Warn(fmt.Sprintf("dnsmasq for network %s exited (%s): restarting", i.cfg.Network, p.status()),
			"pid", p.cmd.Process.Pid, "stderr", p.lastLine())
		if time.Since(p.started) >= stableAfter {
			backoff = minBackoff
		}
		for {
			select {
			case <-i.stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, maxBackoff)
			var err error
			p, err = i.launch()
			if err == nil {
				break
			}
			if errors.Is(err, errStopped) {
				return
			}
			i.cfg.Log.Warn(fmt.Sprintf("restarting dnsmasq for network %s failed: %v", i.cfg.Network, err))
		}
		i.mu.Lock()
		i.proc = p
		i.mu.Unlock()
	}
}

// launch starts dnsmasq and waits until it serves. On failure nothing is
// left running and the error carries dnsmasq's last word.
func (i *Instance) launch() (*process, error) {
	p, err := startProcess(i.bin, i.cfg.args(), i.cfg.Identity, i.cfg.Log)
	if err != nil {
		return nil, err
	}
	if err := p.waitReady(i.stop); err != nil {
		p.terminate()
		if errors.Is(err, errStopped) {
			return nil, err
		}
		return nil, fmt.Errorf("dnsmasq for network %s: %w", i.cfg.Network, err)
	}
	return p, nil
}

// process is one run of dnsmasq.
type process struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed once cmd.Wait returned
	stderr  chan struct{} // closed once stderr reached EOF
	ready   chan struct{} // closed once dnsmasq said it started

	mu   sync.Mutex
	last string
}

// dnsmasqCaps are all dnsmasq needs of root's powers: binding ports 53
// and 67 (NET_BIND_SERVICE), binding DHCP to the bridge and sending router
// advertisements (NET_RAW), and putting a client without an address into
// the ARP cache to answer it (NET_ADMIN).
var dnsmasqCaps = []uintptr{unix.CAP_NET_BIND_SERVICE, unix.CAP_NET_RAW, unix.CAP_NET_ADMIN}

// startProcess starts dnsmasq under id from the first instruction on,
// never as root, with only dnsmasqCaps.
func startProcess(bin string, args []string, id Identity, log *slog.Logger) (*process, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("creating pipe: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own process group, so that the TCP DNS children it forks
		// are killed with it and no terminal signal reaches it behind
		// our back.
		Setpgid:     true,
		Credential:  &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}},
		AmbientCaps: dnsmasqCaps,
	}
	err = cmd.Start()
	w.Close()
	if err != nil {
		r.Close()
		return nil, fmt.Errorf("starting dnsmasq: %w", err)
	}
	p := &process{cmd: cmd, started: time.Now(), exited: make(chan struct{}), stderr: make(chan struct{}), ready: make(chan struct{})}
	go p.forwardStderr(r, log)
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// forwardStderr logs what dnsmasq says at debug level, keeps the last
// line for error messages, and tells when dnsmasq has started.
func (p *process) forwardStderr(r *os.File, log *slog.Logger) {
	defer close(p.stderr)
	defer r.Close()
	started := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		log.Debug("dnsmasq: " + line)
		if !started && startedLine(line) {
			started = true
			close(p.ready)
		}
		p.mu.Lock()
		p.last = line
		p.mu.Unlock()
	}
}

func (p *process) lastLine() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

func (p *process) status() string {
	return p.cmd.ProcessState.String()
}

// startedLine reports dnsmasq's "dnsmasq[PID]: started, version …", which
// it logs once every socket is bound and the lease file open.
func startedLine(line string) bool {
	_, rest, ok := strings.Cut(line, "]: ")
	return ok && strings.HasPrefix(line, "dnsmasq[") && strings.HasPrefix(rest, "started, version ")
}

// waitReady waits until dnsmasq has started.
func (p *process) waitReady(stop <-chan struct{}) error {
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		p.drainStderr()
		return fmt.Errorf("exited (%s): %s", p.status(), p.lastLine())
	case <-deadline.C:
		return fmt.Errorf("not serving after %v: %s", readyTimeout, p.lastLine())
	case <-stop:
		return errStopped
	}
}

// terminate asks dnsmasq to exit, kills its process group if it does not
// within stopGrace, and waits for it.
func (p *process) terminate() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	var err error
	select {
	case <-p.exited:
	case <-time.After(stopGrace):
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		err = fmt.Errorf("dnsmasq (pid %d) ignored SIGTERM and was killed", p.cmd.Process.Pid)
	}
	p.drainStderr()
	return err
}

// drainStderr waits, after dnsmasq exited, for the rest of what it wrote,
// so its last line is known and nothing is logged after Stop returns. TCP
// children of a killed dnsmasq may hold the pipe open: hence the bound.
func (p *process) drainStderr() {
	select {
	case <-p.stderr:
	case <-time.After(time.Second):
	}
}
