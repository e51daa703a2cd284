package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/netgrant/netgrant/service/bridge"
	"github.com/netgrant/netgrant/service/config"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/tap"
)

// fakeHost is the kernel, dnsmasq, the firewall and the hooks as the core
// sees them, in memory: every change it is asked for goes into a
// transcript, and the change named by failAt fails instead. What it holds
// is what a real host would hold after those calls.
type fakeHost struct {
	mu sync.Mutex
	// transcript lists the changes asked for, failed ones marked.
	transcript []string
	// failAt is the change to fail once, as the transcript writes it.
	failAt string
	// beforeChange, if set, runs before each change is made (without mu):
	// a test's snapshot of the state directory there is what a daemon
	// killed at that moment leaves. afterChange runs once it is made.
	beforeChange, afterChange func(call string)
	lastIndex                 int
	taps                      map[string]*fakeTap
	bridges                   map[string]*fakeBridge
	// dnsmasqs run by directory.
	dnsmasqs map[string]*fakeDnsmasq
	// rules are the networks the firewall holds, with their guests.
	rules []firewall.Network
	// hooksUp are the hooks that ran up and not down, as "event ifname".
	hooksUp map[string]bool
}

type fakeTap struct {
	index      int
	owner      uint32
	persistent bool
	bridge     string
	mtu        int
}

type fakeBridge struct {
	index int
	mac   net.HardwareAddr
	mtu   int
}

type fakeDnsmasq struct {
	host   *fakeHost
	dir    string
	bridge string
}

var errInjected = errors.New("injected failure")

func newFakeHost() *fakeHost {
	return &fakeHost{
		taps: map[string]*fakeTap{}, bridges: map[string]*fakeBridge{}, dnsmasqs: map[string]*fakeDnsmasq{},
		hooksUp: map[string]bool{}, lastIndex: 10,
	}
}

// change records call and, unless it is the one to fail, makes it with
// apply, under mu; beforeChange and afterChange run around it.
func (h *fakeHost) change(call string, apply func() error) error {
	h.mu.Lock()
	before, after := h.beforeChange, h.afterChange
	h.mu.Unlock()
	if before != nil {
		before(call)
	}
	if err := h.record(call, apply); err != nil {
		return err
	}
	if after != nil {
		after(call)
	}
	return nil
}

// around sets what runs before and after each change (nil: nothing).
func (h *fakeHost) around(before, after func(call string)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.beforeChange, h.afterChange = before, after
}

func (h *fakeHost) record(call string, apply func() error) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if call == h.failAt {
		h.failAt = ""
		h.transcript = append(h.transcript, call+" (fails)")
		return errInjected
	}
	h.transcript = append(h.transcript, call)
	return apply()
}

// calls returns the transcript so far and starts a new one.
func (h *fakeHost) calls() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	calls := h.transcript
	h.transcript = nil
	return calls
}

// crashed is what a host keeps of a daemon that died: every device and
// process but the taps, whose fds died with it.
func (h *fakeHost) crashed() *fakeHost {
	h.mu.Lock()
	defer h.mu.Unlock()
	after := newFakeHost()
	after.lastIndex = h.lastIndex
	for name, b := range h.bridges {
		after.bridges[name] = &fakeBridge{index: b.index, mac: b.mac, mtu: b.mtu}
	}
	for name, t := range h.taps {
		if t.persistent {
			after.taps[name] = &fakeTap{index: t.index, owner: t.owner, persistent: true, bridge: t.bridge, mtu: t.mtu}
		}
	}
	for dir, d := range h.dnsmasqs {
		after.dnsmasqs[dir] = &fakeDnsmasq{host: after, dir: dir, bridge: d.bridge}
	}
	after.rules = slices.Clone(h.rules)
	maps.Copy(after.hooksUp, h.hooksUp)
	return after
}

// leftovers describes what the host still holds: "" when it holds nothing.
func (h *fakeHost) leftovers() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var left []string
	for _, name := range slices.Sorted(maps.Keys(h.taps)) {
		left = append(left, "tap "+name)
	}
	for _, name := range slices.Sorted(maps.Keys(h.bridges)) {
		left = append(left, "bridge "+name)
	}
	for _, dir := range slices.Sorted(maps.Keys(h.dnsmasqs)) {
		left = append(left, "dnsmasq "+h.dnsmasqs[dir].bridge)
	}
	rules := slices.SortedFunc(slices.Values(h.rules), func(a, b firewall.Network) int { return strings.Compare(a.Bridge, b.Bridge) })
	if len(rules) > 0 {
		left = append(left, describeRules("holds", rules))
	}
	for _, hook := range slices.Sorted(maps.Keys(h.hooksUp)) {
		left = append(left, "hook up without down: "+hook)
	}
	return strings.Join(left, ", ")
}

func (h *fakeHost) kernel() Kernel {
	return Kernel{Taps: fakeTaps{h}, Bridges: fakeBridges{h}, Sysctls: fakeSysctls{h}, Dnsmasqs: fakeDnsmasqs{h}}
}

type fakeTaps struct{ h *fakeHost }

func (f fakeTaps) Create(cfg tap.Config) (*tap.Device, error) {
	h := f.h
	// The name is taken at once, as the kernel takes it.
	h.mu.Lock()
	name := ""
	for i := 0; name == ""; i++ {
		if _, taken := h.taps[tap.NamePrefix+strconv.Itoa(i)]; !taken {
			name = tap.NamePrefix + strconv.Itoa(i)
		}
	}
	h.lastIndex++
	t := &fakeTap{index: h.lastIndex, owner: cfg.UID, mtu: cfg.MTU}
	h.taps[name] = t
	h.mu.Unlock()
	if err := h.change("tap create "+name, nothing); err != nil {
		h.closeTap(name)
		return nil, err
	}
	// The fds are a pipe's: closing them is the caller's, as with a tap's.
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	w.Close()
	return &tap.Device{Name: name, Index: t.index, Files: []*os.File{r}}, nil
}

func (f fakeTaps) Delete(name string, index int) error {
	h := f.h
	return h.change("tap delete "+name, func() error {
		if t, ok := h.taps[name]; ok && t.index == index {
			delete(h.taps, name)
		}
		return nil
	})
}

func (f fakeTaps) SetMTU(name string, index, mtu int) error {
	h := f.h
	return h.change(fmt.Sprintf("tap mtu %s %d", name, mtu), func() error {
		if t, ok := h.taps[name]; ok && t.index == index {
			t.mtu = mtu
		}
		return nil
	})
}

func (f fakeTaps) Inspect(name string, index int) (tap.State, bool) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	t, ok := f.h.taps[name]
	if !ok || t.index != index {
		return tap.State{}, false
	}
	return tap.State{Persistent: t.persistent, Owner: t.owner}, true
}

// closeTap is the last fd of a tap closing: the device goes.
func (h *fakeHost) closeTap(name string) (index int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t, ok := h.taps[name]; ok {
		index = t.index
		delete(h.taps, name)
	}
	return index
}

type fakeBridges struct{ h *fakeHost }

func (f fakeBridges) Create(cfg bridge.Config) error {
	h := f.h
	h.mu.Lock()
	_, exists := h.bridges[cfg.Name]
	h.mu.Unlock()
	if exists {
		return fmt.Errorf("creating bridge %s: %w", cfg.Name, os.ErrExist)
	}
	return h.change("bridge create "+cfg.Name, func() error {
		h.lastIndex++
		h.bridges[cfg.Name] = &fakeBridge{index: h.lastIndex, mac: cfg.MAC, mtu: cfg.MTU}
		return nil
	})
}

func (f fakeBridges) DeleteOwn(name string, mac net.HardwareAddr) error {
	h := f.h
	return h.change("bridge delete "+name, func() error {
		if b, ok := h.bridges[name]; ok && bytes.Equal(b.mac, mac) {
			delete(h.bridges, name)
			for _, t := range h.taps {
				if t.bridge == name {
					t.bridge = ""
				}
			}
		}
		return nil
	})
}

func (f fakeBridges) Index(name string) (int, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if b, ok := f.h.bridges[name]; ok {
		return b.index, nil
	}
	return 0, fmt.Errorf("no bridge %s", name)
}

func (f fakeBridges) IsBridge(name string) (bool, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	_, ok := f.h.bridges[name]
	return ok, nil
}

func (f fakeBridges) MTU(name string) (int, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	if b, ok := f.h.bridges[name]; ok {
		return b.mtu, nil
	}
	return 0, fmt.Errorf("no bridge %s", name)
}

func (f fakeBridges) Attach(port, br string) error {
	h := f.h
	return h.change("bridge attach "+port+" "+br, func() error {
		t, isTap := h.taps[port]
		_, isBridge := h.bridges[br]
		if !isTap || !isBridge {
			return fmt.Errorf("attaching %s to %s: no such device", port, br)
		}
		t.bridge = br
		return nil
	})
}

func (f fakeBridges) Host() (HostView, error) {
	f.h.mu.Lock()
	defer f.h.mu.Unlock()
	names := map[string]bool{"lo": true}
	for name := range f.h.bridges {
		names[name] = true
	}
	for name := range f.h.taps {
		names[name] = true
	}
	return HostView{LinkNames: names}, nil
}

type fakeSysctls struct{ h *fakeHost }

func (fakeSysctls) IPv6Available() bool { return true }

func nothing() error { return nil }

func (f fakeSysctls) EnableForwarding() error { return f.h.change("sysctl ip_forward 1", nothing) }

func (f fakeSysctls) EnableIPv6Forwarding() ([]string, error) {
	return nil, f.h.change("sysctl ipv6 forwarding 1", nothing)
}

type fakeDnsmasqs struct{ h *fakeHost }

func (fakeDnsmasqs) Available() error { return nil }

func (fakeDnsmasqs) DelegatedIDs() (dnsmasq.IDRange, error) {
	return dnsmasq.IDRange{UID: 100000, GID: 100000, Count: 8}, nil
}

func (f fakeDnsmasqs) Start(cfg dnsmasq.Config, onLeases func([]dnsmasq.Lease)) (DnsmasqProcess, error) {
	h := f.h
	d := &fakeDnsmasq{host: h, dir: cfg.Dir, bridge: cfg.Bridge}
	err := h.change("dnsmasq start "+cfg.Bridge, func() error {
		// A dnsmasq still serving the bridge holds its ports.
		if _, running := h.dnsmasqs[d.dir]; running {
			return fmt.Errorf("dnsmasq for network %s: failed to create listening socket for port 53: Address already in use", cfg.Network)
		}
		for _, dir := range []string{dnsmasq.HostsDir(cfg.Dir), dnsmasq.NamesDir(cfg.Dir)} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		h.dnsmasqs[d.dir] = d
		return nil
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (f fakeDnsmasqs) StopOrphan(dir string) error {
	h := f.h
	return h.change("dnsmasq stop-orphan "+strings.TrimPrefix(filepath.Base(dir), "dnsmasq-"), func() error {
		delete(h.dnsmasqs, dir)
		return nil
	})
}

func (f fakeDnsmasqs) StopUnit(br string) error {
	return fmt.Errorf("no systemd here to stop the dnsmasq of %s", br)
}

func (d *fakeDnsmasq) Stop() error {
	h := d.host
	return h.change("dnsmasq stop "+d.bridge, func() error {
		if h.dnsmasqs[d.dir] == d {
			delete(h.dnsmasqs, d.dir)
		}
		return nil
	})
}

func (d *fakeDnsmasq) Reload() error {
	return d.host.change("dnsmasq reload "+d.bridge, nothing)
}

// fakeFirewall is the host's firewall: what the last write left.
type fakeFirewall struct{ h *fakeHost }

func describeRules(verb string, nets []firewall.Network) string {
	parts := []string{}
	for _, n := range nets {
		var guests []string
		for _, g := range n.Guests {
			guests = append(guests, g.Tap)
		}
		parts = append(parts, n.Bridge+"["+strings.Join(guests, " ")+"]")
	}
	return "firewall " + verb + " " + strings.Join(parts, " ")
}

func (f fakeFirewall) write(verb string, nets []firewall.Network) error {
	h := f.h
	return h.change(describeRules(verb, nets), func() error {
		h.rules = slices.Clone(nets)
		return nil
	})
}

func (f fakeFirewall) Apply(nets []firewall.Network) error   { return f.write("apply", nets) }
func (f fakeFirewall) Restore(nets []firewall.Network) error { return f.write("restore", nets) }
func (f fakeFirewall) UpdateGuests(nets []firewall.Network) error {
	return f.write("guests", nets)
}
func (fakeFirewall) Backend() string { return "fake" }

// fakeHooks are the administrator's hooks.
type fakeHooks struct{ h *fakeHost }

func (f fakeHooks) Up(_ context.Context, ev hooks.Event, env hooks.Env) error {
	h := f.h
	call := "hook " + string(ev) + " " + env.IfName
	return h.change(call, func() error {
		h.hooksUp[strings.TrimSuffix(string(ev), "-up")+" "+env.IfName] = true
		return nil
	})
}

func (f fakeHooks) Down(_ context.Context, ev hooks.Event, env hooks.Env) {
	h := f.h
	h.change("hook "+string(ev)+" "+env.IfName, func() error {
		delete(h.hooksUp, strings.TrimSuffix(string(ev), "-down")+" "+env.IfName)
		return nil
	})
}

// nobody observes the objects: the unit tests look at the Manager and
// the fake host.
type nobody struct{}

func (nobody) TapAdded(TapInfo)           {}
func (nobody) TapChanged(TapInfo)         {}
func (nobody) TapRemoved(string)          {}
func (nobody) NetworkAdded(NetworkInfo)   {}
func (nobody) NetworkChanged(NetworkInfo) {}
func (nobody) NetworkRemoved(string)      {}

// allow is polkit saying yes, after running meanwhile, if set: what
// other callers do while a call waits for polkit.
type allow struct{ meanwhile func() }

func (a allow) Authorize(context.Context, AuthCheck) error {
	if a.meanwhile != nil {
		a.meanwhile()
	}
	return nil
}

// newFakeManager is a Manager on h, its state in dir.
func newFakeManager(t *testing.T, h *fakeHost, dir string) *Manager {
	t.Helper()
	cfg := config.Default()
	return New(Options{
		Config: cfg, StateDir: dir, Kernel: h.kernel(), Hooks: fakeHooks{h}, Firewall: fakeFirewall{h},
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Observer: nobody{},
		ObjectID: func(kind, name string) string { return kind + "/" + name },
	})
}

// testWriter sends the daemon's log to the test's.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// alice is an ordinary user whose connection :1.7 holds what she makes.
func alice(meanwhile func()) Caller {
	return Caller{UID: 4001, GID: 4001, Holder: "bus/:1.7", Auth: allow{meanwhile}}
}

// stateFiles lists the records in dir.
func stateFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".json") {
			files = append(files, e.Name())
		}
	}
	return files
}
