package service

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/netgrant/netgrant/service/dnsmasq"
)

// The core's unit tests: the Manager on a fakeHost, as an ordinary user,
// with no bus, polkit or kernel.

func bob() Caller {
	return Caller{UID: 4002, GID: 4002, Holder: "bus/:1.8", Auth: allow{}}
}

func mustCreateNetwork(t *testing.T, m *Manager, c Caller, name string) NetworkInfo {
	t.Helper()
	info, err := m.CreateNATNetwork(context.Background(), c, NetworkRequest{Name: name})
	if err != nil {
		t.Fatalf("creating network %s: %v", name, err)
	}
	return info
}

// mustCreateTap creates a tap and closes its fds, which the fake host's
// tap outlives until closeTap.
func mustCreateTap(t *testing.T, m *Manager, c Caller, req TapRequest) TapInfo {
	t.Helper()
	if req.Queues == 0 {
		req.Queues = 1
	}
	info, files, err := m.CreateTap(context.Background(), c, req)
	if err != nil {
		t.Fatalf("creating a tap: %v", err)
	}
	for _, f := range files {
		f.Close()
	}
	return info
}

// readState is every file of the state directory, by path below it.
func readState(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = data
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func writeState(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for rel, data := range files {
		path := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// withOthers is a host where bob's network "other" has a guest: what a
// failing call of alice's must leave alone.
func withOthers(t *testing.T) (*fakeHost, *Manager, string) {
	t.Helper()
	h, dir := newFakeHost(), t.TempDir()
	m := newFakeManager(t, h, dir)
	mustCreateNetwork(t, m, bob(), "other")
	mustCreateTap(t, m, bob(), TapRequest{Network: "other"})
	h.calls()
	return h, m, dir
}

// Each change a setup makes, failing in turn, leaves the host as it was
// before the call: everything done before it is undone, and nothing of
// another user's network is touched.
func TestFailedSetupUnwindsWhatItDid(t *testing.T) {
	ctx := context.Background()
	h, m, _ := withOthers(t)
	mustCreateNetwork(t, m, alice(nil), "lab")
	networkSteps := h.calls()
	tapRequest := TapRequest{Network: "lab", Queues: 1, MTU: 1400}
	mustCreateTap(t, m, alice(nil), tapRequest)
	tapSteps := h.calls()
	t.Logf("a network's setup:\n\t%s\na tap's:\n\t%s", strings.Join(networkSteps, "\n\t"), strings.Join(tapSteps, "\n\t"))
	if len(networkSteps) < 6 || len(tapSteps) < 5 {
		t.Fatalf("the setups made too few changes to test: %q, %q", networkSteps, tapSteps)
	}

	for _, step := range networkSteps {
		t.Run("network/"+step, func(t *testing.T) {
			h, m, dir := withOthers(t)
			host, state := h.leftovers(), readState(t, dir)
			h.failAt = step
			_, err := m.CreateNATNetwork(ctx, alice(nil), NetworkRequest{Name: "lab"})
			if !errors.Is(err, errInjected) {
				t.Fatalf("CreateNATNetwork with %q failing answered %v", step, err)
			}
			t.Logf("transcript:\n\t%s", strings.Join(h.calls(), "\n\t"))
			if left := h.leftovers(); left != host {
				t.Errorf("the host holds %s\nwant only what it held before: %s", left, host)
			}
			if _, ok := m.networks["lab"]; ok {
				t.Error("the failed network is still the manager's")
			}
			checkStateUnchanged(t, dir, state)
		})
	}

	for _, step := range tapSteps {
		t.Run("tap/"+step, func(t *testing.T) {
			h, m, dir := withOthers(t)
			mustCreateNetwork(t, m, alice(nil), "lab")
			h.calls()
			host, state := h.leftovers(), readState(t, dir)
			h.failAt = step
			_, files, err := m.CreateTap(ctx, alice(nil), tapRequest)
			if !errors.Is(err, errInjected) || files != nil {
				t.Fatalf("CreateTap with %q failing answered %v and %d fds", step, err, len(files))
			}
			t.Logf("transcript:\n\t%s", strings.Join(h.calls(), "\n\t"))
			if left := h.leftovers(); left != host {
				t.Errorf("the host holds %s\nwant only what it held before: %s", left, host)
			}
			if len(m.tapsOfUID(alice(nil).UID)) != 0 || len(m.networks["lab"].reserved) != 0 || m.pendingTaps[4001] != 0 {
				t.Errorf("the failed tap is still counted: taps %v, lab's reservations %v, pending %d",
					m.tapsOfUID(4001), m.networks["lab"].reserved, m.pendingTaps[4001])
			}
			checkStateUnchanged(t, dir, state)
		})
	}
}

func (m *Manager) tapsOfUID(uid uint32) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var names []string
	for name, t := range m.taps {
		if t.owner == uid {
			names = append(names, name)
		}
	}
	return names
}

// checkStateUnchanged compares the state directory with before: records,
// reservations and all.
func checkStateUnchanged(t *testing.T, dir string, before map[string][]byte) {
	t.Helper()
	after := readState(t, dir)
	for rel := range after {
		if _, ok := before[rel]; !ok {
			t.Errorf("the state directory gained %s", rel)
		}
	}
	for rel := range before {
		if _, ok := after[rel]; !ok {
			t.Errorf("the state directory lost %s", rel)
		}
	}
}

// A daemon killed before any change of a network's and a tap's whole
// life leaves records the next one undoes completely when the holder is
// gone too, and adopts and later tears down completely when it is not.
func TestRecoverUndoesWhateverADaemonDiedIn(t *testing.T) {
	ctx := context.Background()
	type crash struct {
		before string
		host   *fakeHost
		state  map[string][]byte
	}
	h, dir := newFakeHost(), t.TempDir()
	m := newFakeManager(t, h, dir)
	var crashes []crash
	h.around(func(call string) {
		crashes = append(crashes, crash{call, h.crashed(), readState(t, dir)})
	}, nil)
	mustCreateNetwork(t, m, alice(nil), "lab")
	mustCreateNetwork(t, m, alice(nil), "lab2")
	tapInfo := mustCreateTap(t, m, alice(nil), TapRequest{Network: "lab", Hold: true})
	if err := m.AttachBridge(ctx, alice(nil), tapInfo.Name, "ng-lab2"); err != nil {
		t.Fatal(err)
	}
	if err := m.DeleteTap(ctx, alice(nil), tapInfo.Name); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"lab", "lab2"} {
		if err := m.ReleaseNetwork(alice(nil), name); err != nil {
			t.Fatal(err)
		}
	}
	h.around(nil, nil)
	if left := h.leftovers(); left != "" {
		t.Fatalf("the life of a network and a tap left %s", left)
	}

	for i, c := range crashes {
		for _, holderAlive := range []bool{false, true} {
			t.Run(fmt.Sprintf("%02d before %s, holder alive %v", i, c.before, holderAlive), func(t *testing.T) {
				// The next daemon finds the state where the last left it.
				host := c.host.crashed()
				if err := os.RemoveAll(dir); err != nil {
					t.Fatal(err)
				}
				writeState(t, dir, c.state)
				m := newFakeManager(t, host, dir)
				m.Recover(func(string) bool { return holderAlive })
				adopted := slices.Sorted(maps.Keys(m.networks))
				if !holderAlive && len(adopted) > 0 {
					t.Errorf("networks adopted without a holder: %v", adopted)
				}
				for _, name := range adopted {
					if running := host.dnsmasqsOf("ng-" + name); running != 1 {
						t.Errorf("adopted network %s has %d dnsmasqs running", name, running)
					}
				}
				m.HolderGone(alice(nil).Holder)
				t.Logf("transcript after the restart (%v adopted):\n\t%s", adopted, strings.Join(host.calls(), "\n\t"))
				if left := host.leftovers(); left != "" {
					t.Errorf("left behind: %s", left)
				}
				if files := stateFiles(t, dir); len(files) != 0 {
					t.Errorf("records left behind: %v", files)
				}
			})
		}
	}
}

func (h *fakeHost) dnsmasqsOf(bridge string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	count := 0
	for _, d := range h.dnsmasqs {
		if d.bridge == bridge {
			count++
		}
	}
	return count
}

// A restarted daemon adopting a network stops the dnsmasq its
// predecessor left serving the bridge before it starts its own, which
// would find the ports taken.
func TestAdoptionReplacesThePreviousDnsmasq(t *testing.T) {
	h, dir := newFakeHost(), t.TempDir()
	mustCreateNetwork(t, newFakeManager(t, h, dir), alice(nil), "lab")
	after := h.crashed()
	if after.dnsmasqsOf("ng-lab") != 1 {
		t.Fatal("the crashed daemon's dnsmasq is not running")
	}
	m := newFakeManager(t, after, dir)
	m.Recover(func(string) bool { return true })
	calls := after.calls()
	t.Logf("transcript of the restart:\n\t%s", strings.Join(calls, "\n\t"))
	stop, start := slices.Index(calls, "dnsmasq stop-orphan ng-lab"), slices.Index(calls, "dnsmasq start ng-lab")
	if stop < 0 || start < stop {
		t.Fatalf("the previous dnsmasq was not stopped before the new one started")
	}
	if _, err := m.GetNetwork("lab"); err != nil {
		t.Fatalf("network lab was not adopted: %v", err)
	}
	if after.dnsmasqsOf("ng-lab") != 1 {
		t.Fatalf("%d dnsmasqs serve ng-lab", after.dnsmasqsOf("ng-lab"))
	}
	info := mustCreateTap(t, m, alice(nil), TapRequest{Network: "lab"})
	if info.IPv4 == "" {
		t.Error("a guest of the adopted network got no address")
	}
	reservations, err := os.ReadDir(dnsmasq.HostsDir(m.dnsmasqDir(m.networks["lab"])))
	if err != nil || len(reservations) != 1 {
		t.Errorf("the adopted dnsmasq's hosts directory has %d reservations (%v), want the guest's", len(reservations), err)
	}
}

// What polkit was asked about must still be so when its answer comes:
// else the call is refused, and what changed meanwhile is left alone.
func TestDecideRefusesWhatChangedDuringPolkit(t *testing.T) {
	ctx := context.Background()

	t.Run("subnet taken", func(t *testing.T) {
		h, dir := newFakeHost(), t.TempDir()
		m := newFakeManager(t, h, dir)
		subnet := "10.97.5.0/24"
		takeIt := func() {
			if _, err := m.CreateNATNetwork(ctx, bob(), NetworkRequest{Name: "bobs", Subnet: &subnet}); err != nil {
				t.Errorf("bob's network: %v", err)
			}
		}
		_, err := m.CreateNATNetwork(ctx, alice(takeIt), NetworkRequest{Name: "lab", Subnet: &subnet})
		if KindOf(err) != SubnetConflict {
			t.Fatalf("alice's network on a subnet taken meanwhile: %v", err)
		}
		if _, err := m.GetNetwork("bobs"); err != nil {
			t.Errorf("bob's network: %v", err)
		}
		if left := h.leftovers(); left != "bridge ng-bobs, dnsmasq ng-bobs, firewall holds ng-bobs[], hook up without down: network ng-bobs" {
			t.Errorf("the host holds %s", left)
		}
	})

	t.Run("network replaced", func(t *testing.T) {
		_, dir := newFakeHost(), t.TempDir()
		h := newFakeHost()
		m := newFakeManager(t, h, dir)
		mustCreateNetwork(t, m, alice(nil), "lab")
		replace := func() {
			if err := m.DeleteNetwork(ctx, alice(nil), "lab"); err != nil {
				t.Errorf("deleting lab: %v", err)
			}
			mustCreateNetwork(t, m, alice(nil), "lab")
		}
		// bob's tap on alice's network needs manage: polkit is asked.
		bobMeanwhile := bob()
		bobMeanwhile.Auth = allow{replace}
		_, _, err := m.CreateTap(ctx, bobMeanwhile, TapRequest{Network: "lab", Queues: 1})
		if KindOf(err) != NotFound {
			t.Fatalf("bob's tap on a network replaced meanwhile: %v", err)
		}
		info, _ := m.GetNetwork("lab")
		if len(info.Taps) != 0 || len(m.taps) != 0 {
			t.Errorf("the new lab has taps %v; the manager %d", info.Taps, len(m.taps))
		}
	})

	t.Run("tap replaced", func(t *testing.T) {
		h, dir := newFakeHost(), t.TempDir()
		m := newFakeManager(t, h, dir)
		first := mustCreateTap(t, m, alice(nil), TapRequest{})
		var second TapInfo
		replace := func() {
			m.tapGone(first.Name, h.closeTap(first.Name))
			second = mustCreateTap(t, m, alice(nil), TapRequest{})
		}
		bobMeanwhile := bob()
		bobMeanwhile.Auth = allow{replace}
		err := m.DeleteTap(ctx, bobMeanwhile, first.Name)
		if KindOf(err) != NotFound {
			t.Fatalf("bob deleting a tap replaced meanwhile: %v", err)
		}
		if second.Name != first.Name {
			t.Fatalf("the new tap is %s, not %s: the test needs the name taken again", second.Name, first.Name)
		}
		if _, ok := m.taps[second.Name]; !ok || h.leftovers() != "tap "+second.Name+", hook up without down: tap "+second.Name {
			t.Errorf("the tap that took the name was touched: the host holds %q", h.leftovers())
		}
	})
}

// A tap moved to another network while its network is deleted, its
// holder's connection leaves, it is deleted and its fds close, all at
// once, ends with nothing left, whatever order they meet in. Run with
// -race.
func TestConcurrentChangesOfOneTapAndNetwork(t *testing.T) {
	ctx := context.Background()
	for round := range 30 {
		h, dir := newFakeHost(), t.TempDir()
		m := newFakeManager(t, h, dir)
		mustCreateNetwork(t, m, alice(nil), "lab")
		mustCreateNetwork(t, m, alice(nil), "lab2")
		tapInfo := mustCreateTap(t, m, alice(nil), TapRequest{Network: "lab", Hold: true})
		errs := make(chan error, 3)
		var wg sync.WaitGroup
		for _, change := range []func(){
			func() { errs <- m.AttachBridge(ctx, alice(nil), tapInfo.Name, "ng-lab2") },
			func() { errs <- m.DeleteNetwork(ctx, alice(nil), "lab") },
			func() { errs <- m.DeleteTap(ctx, alice(nil), tapInfo.Name) },
			func() { m.HolderGone(alice(nil).Holder) },
			func() {
				if index := h.closeTap(tapInfo.Name); index != 0 {
					m.tapGone(tapInfo.Name, index)
				}
			},
		} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				change()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil && KindOf(err) != NotFound {
				t.Errorf("round %d: %v", round, err)
			}
		}
		m.Shutdown()
		if left := h.leftovers(); left != "" || len(m.taps)+len(m.networks) != 0 {
			t.Fatalf("round %d left %s; the manager has %d taps, %d networks", round, left, len(m.taps), len(m.networks))
		}
		if files := stateFiles(t, dir); len(files) != 0 {
			t.Fatalf("round %d left records %v", round, files)
		}
	}
}

// waitFinishedOrWaitingForTheTap returns once a change is finished or
// waits for a tap's attachMu (teardownTap), which the change it was made
// in the middle of holds: that one must go on for it to finish.
func waitFinishedOrWaitingForTheTap(finished chan struct{}) {
	waitingForTheTap := regexp.MustCompile(`\nsync\.\(\*Mutex\)\.Lock\([^\n]*\n\t[^\n]*\ngithub\.com/netgrant/netgrant/service\.\(\*Manager\)\.teardownTap\(`)
	stacks := make([]byte, 1<<20)
	for polls := 1; ; polls++ {
		select {
		case <-finished:
			return
		default:
		}
		// Reading every goroutine's stack is slow: most changes finish
		// before the hundredth look.
		if polls%100 == 0 && waitingForTheTap.Match(stacks[:runtime.Stack(stacks, true)]) {
			return
		}
		runtime.Gosched()
	}
}

// The same changes, one made in the middle of another — before and after
// each change the first asks of the host — in every pairing: whatever
// met midway, nothing is left once all have run, and each call either
// did its work or answered NotFound.
func TestChangesMeetingMidway(t *testing.T) {
	ctx := context.Background()
	type scene struct {
		h   *fakeHost
		m   *Manager
		dir string
		tap string
	}
	setUp := func(t *testing.T) scene {
		h, dir := newFakeHost(), t.TempDir()
		m := newFakeManager(t, h, dir)
		mustCreateNetwork(t, m, alice(nil), "lab")
		mustCreateNetwork(t, m, alice(nil), "lab2")
		info := mustCreateTap(t, m, alice(nil), TapRequest{Network: "lab", Hold: true})
		h.calls()
		return scene{h, m, dir, info.Name}
	}
	changes := map[string]func(s scene) error{
		"attach to lab2": func(s scene) error { return s.m.AttachBridge(ctx, alice(nil), s.tap, "ng-lab2") },
		"delete lab":     func(s scene) error { return s.m.DeleteNetwork(ctx, alice(nil), "lab") },
		"delete the tap": func(s scene) error { return s.m.DeleteTap(ctx, alice(nil), s.tap) },
		"holder leaves": func(s scene) error {
			s.m.HolderGone(alice(nil).Holder)
			return nil
		},
		"fds closed": func(s scene) error {
			if index := s.h.closeTap(s.tap); index != 0 {
				s.m.tapGone(s.tap, index)
			}
			return nil
		},
	}
	names := slices.Sorted(maps.Keys(changes))
	cases := 0
	for _, first := range names {
		alone := setUp(t)
		if err := changes[first](alone); err != nil {
			t.Fatalf("%s alone: %v", first, err)
		}
		for _, step := range alone.h.calls() {
			// The firewall is written with its own lock held (fwState's
			// applyMu): a change made there would wait for itself.
			if strings.HasPrefix(step, "firewall ") {
				continue
			}
			for _, when := range []string{"before", "after"} {
				for _, meanwhile := range names {
					if meanwhile == first {
						continue
					}
					cases++
					s := setUp(t)
					var errs []error
					met := false
					var meanwhileErr error
					finished := make(chan struct{})
					hook := func(call string) {
						if call == step && !met {
							met = true
							go func() {
								defer close(finished)
								meanwhileErr = changes[meanwhile](s)
							}()
							waitFinishedOrWaitingForTheTap(finished)
						}
					}
					if when == "before" {
						s.h.around(hook, nil)
					} else {
						s.h.around(nil, hook)
					}
					errs = append(errs, changes[first](s))
					s.h.around(nil, nil)
					if met {
						<-finished
						errs = append(errs, meanwhileErr)
					}
					for _, rest := range names {
						errs = append(errs, changes[rest](s))
					}
					what := fmt.Sprintf("%q %s %s of %q", meanwhile, when, step, first)
					for _, err := range errs {
						if err != nil && KindOf(err) != NotFound {
							t.Errorf("%s: %v", what, err)
						}
					}
					if left := s.h.leftovers(); left != "" || len(s.m.taps)+len(s.m.networks) != 0 {
						t.Errorf("%s left %s; the manager has %d taps, %d networks", what, left, len(s.m.taps), len(s.m.networks))
					}
					if files := stateFiles(t, s.dir); len(files) != 0 {
						t.Errorf("%s left records %v", what, files)
					}
				}
			}
		}
	}
	t.Logf("%d pairings", cases)
}
