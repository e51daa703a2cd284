// Package soak_test is the chaos soak test: many clients create, join,
// release and delete taps and networks at random, some are SIGKILLed in the
// middle of a call, and netgrantd itself is killed and restarted at random
// moments. Once every client is gone, nothing netgrant made may remain and
// the daemon must be back to the goroutines and fds it had when fresh.
//
//	NETGRANT_SOAK_SEED=N         replay the random choices of a run (the
//	                             timing of the processes still differs)
//	NETGRANT_SOAK_DURATION=2m    how long the chaos lasts (default 60s,
//	                             10s with -short)
package soak_test

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) { harness.Main(m) }

// rules let both soak users do everything, managing each other's objects
// included, so any refusal is the daemon's, not polkit's.
var rules = harness.Rules(map[string]string{harness.UserAlice: "YES", harness.UserBob: "YES"})

// config keeps quotas out of the way most of the time; they are still hit
// now and then, which is expected.
const config = `[Limits]
TapsPerUser=64
NetworksPerUser=16
[Networks]
SubnetPool=10.97.0.0/16 10.98.0.0/16
`

const (
	networkIface = "org.netgrant.NetGrant1.Network"
	tapIface     = "org.netgrant.NetGrant1.Tap"
	apiError     = "org.netgrant.NetGrant1.Error."
	// serviceUnknown is the bus's answer while netgrantd is down.
	serviceUnknown = "org.freedesktop.DBus.Error.ServiceUnknown"

	workers = 20
	// callBound is how long one call may take, daemon restarts included,
	// before it counts as hanging. Debian 12's polkitd (122) now and then
	// answers nothing for up to 15 s (its rules thread's wakeup is lost
	// and it waits for its runaway-script timeout), so this is well above.
	callBound = 40 * time.Second
	// settleBound is how long teardown may take once every client is gone.
	settleBound = 30 * time.Second
	// tapsPerWorker keeps a worker from holding taps without end.
	tapsPerWorker = 6
)

// Few names, so creates of one name by several clients join each other or
// clash; keep* networks are persistent.
var (
	transientNames  = []string{"soak0", "soak1", "soak2", "soak3", "soak4"}
	persistentNames = []string{"keep0", "keep1"}
)

// expected are the error replies chaos legitimately causes: races between
// clients, quotas, and calls that meet a daemon that is down or dies before
// it answers.
var expected = map[string]bool{
	apiError + "Exists":                  true,
	apiError + "NotFound":                true,
	apiError + "NotOwner":                true,
	apiError + "QuotaExceeded":           true,
	apiError + "SubnetConflict":          true,
	serviceUnknown:                       true,
	"org.freedesktop.DBus.Error.NoReply": true,
	// A network or tap object that went away between choosing and calling.
	"org.freedesktop.DBus.Error.UnknownObject": true,
	"org.freedesktop.DBus.Error.NoSuchObject":  true,
}

// TestChaosSoak runs the chaos on each firewall backend in turn.
func TestChaosSoak(t *testing.T) {
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) { chaosSoak(t, backend) })
	}
}

func chaosSoak(t *testing.T, backend string) {
	seed := soakSeed(t)
	duration := soakDuration(t)
	t.Logf("soak: seed %d (NETGRANT_SOAK_SEED=%d to replay), duration %v, %d workers, firewall %s", seed, seed, duration, workers, backend)

	env := harness.Start(t, harness.Options{Rules: rules, Config: config + "[Firewall]\nBackend=" + backend + "\n"})
	pristine := harness.IPTablesSave(t)
	warmUp(t, env)
	baseGoroutines, baseFDs := env.DaemonStats()
	baseIPTables := harness.IPTablesSave(t)
	if ours(baseIPTables) != "" {
		t.Errorf("with no network left, iptables still holds netgrant's rules or chains:\n%s", ours(baseIPTables))
	}
	if baseIPTables != pristine {
		t.Errorf("a create/delete cycle left iptables changed:\n--- before\n%s--- after\n%s", pristine, baseIPTables)
	}
	t.Logf("soak: baseline after a warm-up cycle: goroutines=%d fds=%d", baseGoroutines, baseFDs)

	s := &soak{t: t, env: env, stop: make(chan struct{}), started: time.Now()}
	for i := range workers {
		user := harness.UserAlice
		if i%2 == 1 {
			user = harness.UserBob
		}
		w := &worker{s: s, id: i, user: user, rng: rand.New(rand.NewPCG(uint64(seed), uint64(i)+1))}
		s.wg.Add(1)
		go w.run()
	}
	// Workers must be done before the test returns, also when the
	// controller below ends it early: their clients log to t.
	stopped := false
	stopWorkers := func() {
		if !stopped {
			stopped = true
			close(s.stop)
			s.wg.Wait()
		}
	}
	defer stopWorkers()

	s.chaos(rand.New(rand.NewPCG(uint64(seed), 0)), duration)
	stopWorkers()
	t.Logf("soak: %s", s.summary())
	for _, f := range s.failures {
		t.Error(f)
	}

	deletePersistent(t, env)
	assertNothingLeft(t, env, baseIPTables)

	goroutines, fds := settledStats(env, baseGoroutines, baseFDs)
	t.Logf("soak: daemon at the end: goroutines=%d fds=%d (baseline goroutines=%d fds=%d)", goroutines, fds, baseGoroutines, baseFDs)
	if goroutines != baseGoroutines || fds != baseFDs {
		t.Errorf("daemon did not return to its baseline: goroutines %d (baseline %d), fds %d (baseline %d)", goroutines, baseGoroutines, fds, baseFDs)
	}
	if t.Failed() {
		t.Logf("soak: seed was %d; daemon log tail:\n%s", seed, tail(env.DaemonLog(), 60))
	}
}

func soakSeed(t *testing.T) int64 {
	if s := os.Getenv("NETGRANT_SOAK_SEED"); s != "" {
		seed, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("NETGRANT_SOAK_SEED: %v", err)
		}
		return seed
	}
	return time.Now().UnixNano()
}

func soakDuration(t *testing.T) time.Duration {
	if s := os.Getenv("NETGRANT_SOAK_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			t.Fatalf("NETGRANT_SOAK_DURATION: %q is not a positive duration", s)
		}
		return d
	}
	if testing.Short() {
		return 10 * time.Second
	}
	return 60 * time.Second
}

// warmUp runs one network and one tap through their whole life, so what
// the daemon opens lazily on first use is in the baseline.
func warmUp(t *testing.T, env *harness.Env) {
	t.Helper()
	alice := env.Client(t, harness.UserAlice)
	r := alice.Call("CreateNATNetwork", "warmup", map[string]dbus.Variant{})
	var netPath dbus.ObjectPath
	var info map[string]dbus.Variant
	if err := r.Store(&netPath, &info); err != nil {
		t.Fatalf("warm-up CreateNATNetwork: %v", err)
	}
	tapPath, _, _, err := alice.CreateTap(map[string]dbus.Variant{"network": dbus.MakeVariant("warmup")})
	if err != nil {
		t.Fatalf("warm-up CreateTap: %v", err)
	}
	if r := alice.Do(harness.Call{Path: tapPath, Interface: tapIface, Method: "Delete"}); r.Err() != nil {
		t.Fatalf("warm-up tap Delete: %v", r.Err())
	}
	if r := alice.Do(harness.Call{Path: netPath, Interface: networkIface, Method: "Delete"}); r.Err() != nil {
		t.Fatalf("warm-up network Delete: %v", r.Err())
	}
	alice.Exit()
	settled := waitUntil(settleBound, func() bool {
		return len(harness.Links(t, "ng-")) == 0 && len(harness.Links(t, "ngtap")) == 0 &&
			len(harness.ProcessesNamed("dnsmasq")) == 0 && len(stateEntries(env)) == 0
	})
	if !settled {
		t.Fatalf("the warm-up cycle left links %v, dnsmasq %v, state %v", append(harness.Links(t, "ng-"), harness.Links(t, "ngtap")...), harness.ProcessesNamed("dnsmasq"), stateEntries(env))
	}
}

// soak is the shared state of one run.
type soak struct {
	t    *testing.T
	env  *harness.Env
	stop chan struct{}
	wg   sync.WaitGroup

	// daemonMu keeps workers from reading the daemon's log while the
	// controller replaces the daemon.
	daemonMu sync.RWMutex

	mu       sync.Mutex
	failures []string
	outcomes map[string]int
	// taps are the tap objects any worker created, so workers also delete
	// each other's.
	taps []dbus.ObjectPath
	// started is when the chaos began; slow are the calls that took long.
	started time.Time
	slow    []string
}

// slowCall is how long a call may take before the summary lists it: a
// call that waits for a daemon restart takes about as long as one.
const slowCall = 3 * time.Second

func (s *soak) timed(op string, start time.Time) {
	if took := time.Since(start); took > slowCall {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.slow = append(s.slow, fmt.Sprintf("%s at %v took %v", op, start.Sub(s.started).Round(time.Millisecond), took.Round(time.Millisecond)))
	}
}

func (s *soak) count(op, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outcomes == nil {
		s.outcomes = map[string]int{}
	}
	s.outcomes[op+" "+outcome]++
}

func (s *soak) fail(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.daemonMu.RLock()
	log := tail(s.env.DaemonLog(), 30)
	s.daemonMu.RUnlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failures = append(s.failures, fmt.Sprintf("%s\ndaemon log tail at that moment:\n%s", msg, log))
}

func (s *soak) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.outcomes))
	for k := range s.outcomes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("outcomes:")
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %-45s %d", k, s.outcomes[k])
	}
	fmt.Fprintf(&b, "\ncalls slower than %v: %d", slowCall, len(s.slow))
	for _, c := range s.slow {
		b.WriteString("\n  " + c)
	}
	return b.String()
}

func (s *soak) rememberTap(p dbus.ObjectPath) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.taps = append(s.taps, p)
	if len(s.taps) > 200 {
		s.taps = s.taps[len(s.taps)-200:]
	}
}

func (s *soak) anyTap(rng *rand.Rand) (dbus.ObjectPath, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.taps) == 0 {
		return "", false
	}
	return s.taps[rng.IntN(len(s.taps))], true
}

func (s *soak) stopping() bool {
	select {
	case <-s.stop:
		return true
	default:
		return false
	}
}

// chaos runs on the test goroutine (the harness's daemon control may end
// the test): it kills netgrantd 3 or 4 times and stops it with SIGTERM
// once, at random moments, each time starting it again after a short
// pause, and returns when the soak's time is up, with the daemon running.
func (s *soak) chaos(rng *rand.Rand, duration time.Duration) {
	start := time.Now()
	kills := 3 + rng.IntN(2)
	events := make([]time.Duration, kills+1)
	for i := range events {
		events[i] = time.Duration(float64(duration) * (0.1 + 0.75*rng.Float64()))
	}
	slices.Sort(events)
	term := rng.IntN(len(events))
	for i, at := range events {
		time.Sleep(time.Until(start.Add(at)))
		if i == term {
			s.t.Logf("soak: %v: restarting netgrantd with SIGTERM", time.Since(start).Round(time.Millisecond))
			s.daemonMu.Lock()
			s.env.RestartDaemon()
			s.daemonMu.Unlock()
			continue
		}
		pause := time.Duration(rng.IntN(1500)) * time.Millisecond
		s.t.Logf("soak: %v: killing netgrantd, starting it again in %v", time.Since(start).Round(time.Millisecond), pause)
		s.daemonMu.Lock()
		s.env.KillDaemon()
		s.daemonMu.Unlock()
		time.Sleep(pause)
		s.daemonMu.Lock()
		s.env.StartDaemon()
		s.daemonMu.Unlock()
	}
	time.Sleep(time.Until(start.Add(duration)))
}

// clientTB makes the harness's fatal client errors (a client that died,
// as one killed mid-call does) panics the worker recovers from: the
// workers are not the test goroutine.
type clientTB struct{ testing.TB }

type clientFailure struct{ msg string }

func (c clientTB) Fatalf(format string, args ...any) {
	panic(clientFailure{fmt.Sprintf(format, args...)})
}

func (c clientTB) Fatal(args ...any) { panic(clientFailure{fmt.Sprint(args...)}) }

// heldTap is a tap a worker's client created and still holds fds of.
type heldTap struct {
	path dbus.ObjectPath
	fds  []int
}

// worker owns one client process at a time and does random things with it.
type worker struct {
	s    *soak
	id   int
	user string
	rng  *rand.Rand

	client *harness.Client
	// killed is set before the worker kills its own client.
	killed atomic.Bool
	taps   []heldTap
	// networks are those this client created or joined, by name.
	networks map[string]dbus.ObjectPath
	// guests are a guest address of each of those networks.
	guests map[string]string
}

func (w *worker) run() {
	defer w.s.wg.Done()
	w.newClient()
	for !w.s.stopping() {
		if w.client == nil {
			w.newClient()
			if w.client == nil {
				return
			}
		}
		w.step()
		time.Sleep(time.Duration(w.rng.IntN(30)) * time.Millisecond)
	}
	if w.client != nil {
		// Leave both ways a client goes: cleanly and killed.
		if w.rng.IntN(2) == 0 {
			w.exit()
		} else {
			w.client.Kill()
		}
	}
}

func (w *worker) newClient() {
	w.client, w.taps, w.networks, w.guests = nil, nil, map[string]dbus.ObjectPath{}, map[string]string{}
	w.killed.Store(false)
	defer func() {
		if v := recover(); v != nil {
			f, isClient := v.(clientFailure)
			if !isClient {
				panic(v)
			}
			w.s.fail("worker %d (%s): starting a client: %s", w.id, w.user, f.msg)
		}
	}()
	w.client = w.s.env.Client(clientTB{w.s.t}, w.user)
}

// exit ends the client cleanly.
func (w *worker) exit() {
	w.guard(w.client, "Exit", func() { w.client.Exit() })
	w.client = nil
}

// guard runs fn, which talks to client, with a bound: a call that hangs
// is a failure, and the client is killed to free the worker. A client that
// dies is expected only if the worker killed it. It reports whether fn
// finished with the client alive.
func (w *worker) guard(client *harness.Client, what string, fn func()) (ok bool) {
	var hung atomic.Bool
	timer := time.AfterFunc(callBound, func() {
		hung.Store(true)
		client.Kill()
	})
	defer timer.Stop()
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		f, isClient := v.(clientFailure)
		if !isClient {
			panic(v)
		}
		ok = false
		switch {
		case hung.Load():
			w.s.fail("worker %d (%s): %s hung for more than %v", w.id, w.user, what, callBound)
		case !w.killed.Load():
			w.s.fail("worker %d (%s): %s: %s", w.id, w.user, what, f.msg)
		}
	}()
	fn()
	return true
}

// call makes one call and classifies its reply; it returns the reply only
// for a success.
func (w *worker) call(op string, c harness.Call) *harness.Reply {
	var r *harness.Reply
	defer w.s.timed(op, time.Now())
	if !w.guard(w.client, op, func() { r = w.client.Do(c) }) {
		w.s.count(op, "client gone")
		w.client = nil
		return nil
	}
	return w.judge(op, c, r)
}

func (w *worker) judge(op string, c harness.Call, r *harness.Reply) *harness.Reply {
	switch {
	case r.ErrorName == "":
		w.s.count(op, "ok")
		return r
	case r.ErrorName == serviceUnknown:
		w.s.count(op, "ServiceUnknown")
		// The daemon is down: let it come back rather than spin.
		time.Sleep(time.Duration(50+w.rng.IntN(100)) * time.Millisecond)
	case r.ErrorName == apiError+"Failed" && strings.HasPrefix(r.ErrorMessage, "netgrantd is stopping: call again"):
		// A call that met the daemon stopping for a restart is told so.
		w.s.count(op, "Stopping")
	case expected[r.ErrorName], op == "AttachBridge" && r.ErrorName == apiError+"BridgeNotAllowed",
		// Host-only networks take no forwards; a network replaced by
		// another of its name may have another subnet than the guest's.
		op == "AddPortForward" && (r.ErrorName == apiError+"Unsupported" || r.ErrorName == apiError+"InvalidArgument"):
		// A bridge that went with its network is no netgrant bridge any
		// more, and no allowed host bridge either.
		w.s.count(op, strings.TrimPrefix(strings.TrimPrefix(r.ErrorName, apiError), "org.freedesktop.DBus.Error."))
	default:
		w.s.count(op, "FAILED "+r.ErrorName)
		w.s.fail("worker %d (%s): %s %s%v: unexpected %s: %s", w.id, w.user, op, c.Path, c.Args, r.ErrorName, r.ErrorMessage)
	}
	return nil
}

func (w *worker) step() {
	switch n := w.rng.IntN(100); {
	case n < 22:
		w.createNetwork()
	case n < 44:
		w.createTap()
	case n < 52:
		w.releaseNetwork()
	case n < 60:
		w.deleteNetwork()
	case n < 68:
		w.deleteTap()
	case n < 78:
		w.closeTapFD()
	case n < 81:
		w.attachBridge()
	case n < 83:
		w.getNetwork()
	case n < 86:
		w.portForward()
	case n < 95:
		w.killMidCall()
	default:
		w.exit()
	}
}

func (w *worker) networkCall() harness.Call {
	var name string
	opts := map[string]dbus.Variant{}
	if w.rng.IntN(5) == 0 {
		name = persistentNames[w.rng.IntN(len(persistentNames))]
		if w.rng.IntN(2) == 0 {
			opts["persistent"] = dbus.MakeVariant(true)
		}
	} else {
		name = transientNames[w.rng.IntN(len(transientNames))]
	}
	switch w.rng.IntN(8) {
	case 0:
		// Few subnets, so they conflict now and then.
		opts["subnet"] = dbus.MakeVariant(fmt.Sprintf("10.98.%d.0/24", w.rng.IntN(4)))
	case 1:
		opts["dhcp"] = dbus.MakeVariant(false)
		opts["dns"] = dbus.MakeVariant(false)
	case 2:
		opts["outbound"] = dbus.MakeVariant(false)
	}
	return harness.Call{Method: "CreateNATNetwork", Args: []any{name, opts}}
}

func (w *worker) createNetwork() {
	c := w.networkCall()
	r := w.call("CreateNATNetwork", c)
	if r == nil {
		return
	}
	var path dbus.ObjectPath
	var info map[string]dbus.Variant
	if err := r.Store(&path, &info); err != nil {
		w.s.fail("worker %d: CreateNATNetwork reply: %v", w.id, err)
		return
	}
	w.networks[c.Args[0].(string)] = path
	if gateway, err := netip.ParseAddr(info["gateway"].Value().(string)); err == nil {
		w.guests[c.Args[0].(string)] = gateway.Next().String()
	}
}

func (w *worker) tapCall() harness.Call {
	opts := map[string]dbus.Variant{}
	if w.rng.IntN(2) == 0 {
		all := append(append([]string(nil), transientNames...), persistentNames...)
		opts["network"] = dbus.MakeVariant(all[w.rng.IntN(len(all))])
	}
	if w.rng.IntN(4) == 0 {
		opts["queues"] = dbus.MakeVariant(uint32(2))
	}
	return harness.Call{Method: "CreateTap", Args: []any{opts}}
}

func (w *worker) createTap() {
	if len(w.taps) >= tapsPerWorker {
		w.closeTapFD()
		return
	}
	c := w.tapCall()
	r := w.call("CreateTap", c)
	if r == nil {
		return
	}
	var path dbus.ObjectPath
	var indexes []dbus.UnixFDIndex
	var info map[string]dbus.Variant
	if err := r.Store(&path, &indexes, &info); err != nil {
		w.s.fail("worker %d: CreateTap reply: %v", w.id, err)
		return
	}
	var fds []int
	for _, i := range indexes {
		fds = append(fds, r.FDs[i])
	}
	w.taps = append(w.taps, heldTap{path: path, fds: fds})
	w.s.rememberTap(path)
}

// networkPath is a network this client holds, or else any name's path.
func (w *worker) networkPath() dbus.ObjectPath {
	if len(w.networks) > 0 && w.rng.IntN(3) != 0 {
		for _, p := range w.networks {
			return p
		}
	}
	all := append(append([]string(nil), transientNames...), persistentNames...)
	return dbus.ObjectPath("/org/netgrant/NetGrant1/network/" + all[w.rng.IntN(len(all))])
}

func (w *worker) releaseNetwork() {
	w.call("Release", harness.Call{Path: w.networkPath(), Interface: networkIface, Method: "Release"})
}

func (w *worker) deleteNetwork() {
	w.call("Network.Delete", harness.Call{Path: w.networkPath(), Interface: networkIface, Method: "Delete"})
}

func (w *worker) deleteTap() {
	var path dbus.ObjectPath
	if len(w.taps) > 0 && w.rng.IntN(2) == 0 {
		path = w.taps[w.rng.IntN(len(w.taps))].path
	} else if p, ok := w.s.anyTap(w.rng); ok {
		path = p
	} else {
		return
	}
	w.call("Tap.Delete", harness.Call{Path: path, Interface: tapIface, Method: "Delete"})
}

// closeTapFD closes one fd of a held tap; the last one ends the tap.
func (w *worker) closeTapFD() {
	if len(w.taps) == 0 {
		return
	}
	i := w.rng.IntN(len(w.taps))
	tap := &w.taps[i]
	if !w.guard(w.client, "closing a tap fd", func() { w.client.CloseFD(tap.fds[0]) }) {
		w.client = nil
		return
	}
	w.s.count("close fd", "ok")
	tap.fds = tap.fds[1:]
	if len(tap.fds) == 0 {
		w.taps = append(w.taps[:i], w.taps[i+1:]...)
	}
}

// attachBridge moves a held tap onto the bridge of a network this client
// holds.
func (w *worker) attachBridge() {
	if len(w.taps) == 0 || len(w.networks) == 0 {
		return
	}
	tap := w.taps[w.rng.IntN(len(w.taps))]
	var name, bridge string
	for name = range w.networks {
		break
	}
	if !w.guard(w.client, "reading a bridge", func() { bridge = w.bridgeOf(name) }) {
		w.client = nil
		return
	}
	if bridge == "" {
		return
	}
	ifname := string(tap.path[strings.LastIndexByte(string(tap.path), '/')+1:])
	w.call("AttachBridge", harness.Call{Method: "AttachBridge", Args: []any{ifname, bridge, map[string]dbus.Variant{}}})
}

// bridgeOf reads a network's Bridge property, or "" if it is gone.
func (w *worker) bridgeOf(name string) string {
	r := w.client.Do(harness.Call{
		Path: "/org/netgrant/NetGrant1/network/" + dbus.ObjectPath(name), Interface: "org.freedesktop.DBus.Properties",
		Method: "Get", Args: []any{networkIface, "Bridge"},
	})
	var bridge dbus.Variant
	if r.Store(&bridge) != nil {
		return ""
	}
	s, _ := bridge.Value().(string)
	return s
}

// portForward adds or removes a forward of one of a few host ports on a
// network this client holds: forwards clash, and go with their networks.
func (w *worker) portForward() {
	for name, path := range w.networks {
		port := uint16(20000 + w.rng.IntN(4))
		if w.rng.IntN(2) == 0 {
			w.call("RemovePortForward", harness.Call{Path: path, Interface: networkIface, Method: "RemovePortForward", Args: []any{"tcp", port}})
			return
		}
		w.call("AddPortForward", harness.Call{Path: path, Interface: networkIface, Method: "AddPortForward",
			Args: []any{"tcp", port, w.guests[name], uint16(22), map[string]dbus.Variant{}}})
		return
	}
}

func (w *worker) getNetwork() {
	all := append(append([]string(nil), transientNames...), persistentNames...)
	w.call("GetNetwork", harness.Call{Method: "GetNetwork", Args: []any{all[w.rng.IntN(len(all))]}})
}

// killMidCall starts a create and SIGKILLs the client 0-50 ms later: the
// daemon sees its caller vanish before, during or after the work.
func (w *worker) killMidCall() {
	c := w.networkCall()
	op := "killed mid CreateNATNetwork"
	if w.rng.IntN(2) == 0 {
		c, op = w.tapCall(), "killed mid CreateTap"
	}
	delay := time.Duration(w.rng.IntN(51)) * time.Millisecond
	client := w.client
	done := make(chan struct{})
	var r *harness.Reply
	var ok bool
	go func() {
		defer close(done)
		defer w.s.timed(op, time.Now())
		ok = w.guard(client, op, func() { r = client.Do(c) })
	}()
	time.Sleep(delay)
	w.killed.Store(true)
	client.Kill()
	<-done
	if ok {
		// The reply came first; the kill still drops what it got.
		w.judge(op, c, r)
	} else {
		w.s.count(op, "client gone")
	}
	w.client = nil
}

// deletePersistent deletes, as their owners, the persistent networks the
// soak left: they rightly outlive every client.
func deletePersistent(t *testing.T, env *harness.Env) {
	t.Helper()
	clients := map[uint32]*harness.Client{}
	for _, user := range []string{harness.UserAlice, harness.UserBob} {
		c := env.Client(t, user)
		clients[c.UID] = c
	}
	for path, ifaces := range managedObjects(t, env) {
		props, ok := ifaces[networkIface]
		if !ok {
			continue
		}
		owner, _ := props["Owner"].Value().(uint32)
		persistent, _ := props["Persistent"].Value().(bool)
		c := clients[owner]
		if !persistent || c == nil {
			continue
		}
		t.Logf("soak: deleting persistent network %s as uid %d", path, owner)
		if r := c.Do(harness.Call{Path: path, Interface: networkIface, Method: "Delete"}); r.Err() != nil {
			t.Errorf("deleting persistent network %s as its owner: %v", path, r.Err())
		}
	}
	for _, c := range clients {
		c.Exit()
	}
}

// assertNothingLeft waits, bounded, for every trace of the soak to go, and
// reports each one that stays.
func assertNothingLeft(t *testing.T, env *harness.Env, baseIPTables string) {
	t.Helper()
	clean := func() bool {
		return len(harness.Links(t, "ngtap")) == 0 && len(harness.Links(t, "ng-")) == 0 &&
			ours(harness.IPTablesSave(t)) == "" && harness.IPTablesSave(t) == baseIPTables && nftTables(t) == "" && len(harness.ProcessesNamed("dnsmasq")) == 0 &&
			len(stateEntries(env)) == 0 && len(managedObjects(t, env)) == 0
	}
	if waitUntil(settleBound, clean) {
		return
	}
	if links := append(harness.Links(t, "ngtap"), harness.Links(t, "ng-")...); len(links) > 0 {
		t.Errorf("links left: %v", links)
	}
	if now := harness.IPTablesSave(t); ours(now) != "" {
		t.Errorf("iptables still holds netgrant's rules or chains:\n%s", ours(now))
	} else if now != baseIPTables {
		t.Errorf("iptables differs from the baseline:\n--- baseline\n%s--- now\n%s", baseIPTables, now)
	}
	if tables := nftTables(t); tables != "" {
		t.Errorf("nftables still holds netgrant's tables:\n%s", tables)
	}
	if pids := harness.ProcessesNamed("dnsmasq"); len(pids) > 0 {
		t.Errorf("dnsmasq still running: %s", describeProcesses(pids))
	}
	if entries := stateEntries(env); len(entries) > 0 {
		t.Errorf("state directory %s not empty:\n%s", env.StateDir, describeState(env, entries))
	}
	for path := range managedObjects(t, env) {
		t.Errorf("object %s is still exported", path)
	}
}

// ours are the lines of an iptables dump that netgrant made: its chains
// and the jumps to them, and rules about its bridges.
func ours(dump string) string {
	var lines []string
	for _, line := range strings.Split(dump, "\n") {
		if strings.Contains(line, "NETGRANT") || strings.Contains(line, "ng-") || strings.Contains(line, "ngtap") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

// settledStats waits a little for goroutines that are on their way out
// (a watch of a connection that just left, say) to end.
func settledStats(env *harness.Env, goroutines, fds int) (int, int) {
	var g, f int
	waitUntil(10*time.Second, func() bool {
		g, f = env.DaemonStats()
		return g == goroutines && f == fds
	})
	return g, f
}

// nftTables lists netgrant's nftables tables (ip and bridge), "" if none.
func nftTables(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "tables").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list tables: %v: %s", err, out)
	}
	var ours []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, " netgrant") {
			ours = append(ours, line)
		}
	}
	return strings.Join(ours, "\n")
}
