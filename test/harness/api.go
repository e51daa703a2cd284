package harness

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// Objects is what the manager's GetManagedObjects answers.
type Objects = map[dbus.ObjectPath]map[string]map[string]dbus.Variant

// CreateNATNetwork calls the manager's CreateNATNetwork as the client.
func (c *Client) CreateNATNetwork(name string, opts map[string]dbus.Variant) (dbus.ObjectPath, map[string]dbus.Variant, error) {
	c.t.Helper()
	if opts == nil {
		opts = map[string]dbus.Variant{}
	}
	var path dbus.ObjectPath
	var info map[string]dbus.Variant
	r := c.Call("CreateNATNetwork", name, opts)
	if err := r.Err(); err != nil {
		return "", nil, err
	}
	return path, info, r.Store(&path, &info)
}

// ErrorName is the D-Bus error name of a failed call's error.
func ErrorName(err error) string {
	if ce, ok := err.(*CallError); ok {
		return ce.Name
	}
	return fmt.Sprint(err)
}

// ManagedObjects are the objects netgrantd exports, as root sees them.
func (e *Env) ManagedObjects() Objects {
	e.t.Helper()
	var managed Objects
	err := e.bus.Object(BusName, ManagerPath).Call("org.freedesktop.DBus.ObjectManager.GetManagedObjects", 0).Store(&managed)
	if err != nil {
		e.t.Fatalf("harness: GetManagedObjects: %v", err)
	}
	return managed
}

// Property reads one property of a netgrant object.
func (e *Env) Property(path dbus.ObjectPath, iface, name string) any {
	e.t.Helper()
	got, err := e.bus.Object(BusName, path).GetProperty(iface + "." + name)
	if err != nil {
		e.t.Fatalf("harness: reading %s of %s: %v", name, path, err)
	}
	return got.Value()
}

// WaitFor polls cond until it holds: teardown after a disconnect or a
// closed fd is asynchronous. The bound only keeps a broken daemon from
// hanging the test; it is no timing goal.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

// Signals are netgrantd's signals as the test's root connection gets them.
type Signals struct{ ch chan *dbus.Signal }

// WatchSignals starts collecting netgrantd's signals for the rest of t.
func (e *Env) WatchSignals(t testing.TB) *Signals {
	t.Helper()
	if err := e.bus.AddMatchSignal(dbus.WithMatchSender(BusName)); err != nil {
		t.Fatal(err)
	}
	ch := make(chan *dbus.Signal, 200)
	e.bus.Signal(ch)
	t.Cleanup(func() { e.bus.RemoveSignal(ch) })
	return &Signals{ch: ch}
}

// Next waits for a signal called name about path: sent from path, or, as
// the ObjectManager's signals are, naming it first.
func (s *Signals) Next(t testing.TB, name string, path dbus.ObjectPath) *dbus.Signal {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case sig := <-s.ch:
			if sig.Name == name && (sig.Path == path || len(sig.Body) > 0 && sig.Body[0] == path) {
				return sig
			}
		case <-timeout:
			t.Fatalf("no %s signal for %s", name, path)
			return nil
		}
	}
}

// Rules is a polkit rules file answering every netgrant action for the
// users in results, with a polkit.Result name ("YES", "NO", "AUTH_SELF",
// …); everyone else gets polkit's defaults, which for these subjects (no
// active session) want an administrator's password.
func Rules(results map[string]string) string {
	users := make([]string, 0, len(results))
	for user := range results {
		users = append(users, user)
	}
	sort.Strings(users)
	var b strings.Builder
	b.WriteString("polkit.addRule(function(action, subject) {\n")
	b.WriteString("\tif (action.id.indexOf(\"org.netgrant.\") != 0) return polkit.Result.NOT_HANDLED;\n")
	for _, user := range users {
		fmt.Fprintf(&b, "\tif (subject.user == %q) return polkit.Result.%s;\n", user, results[user])
	}
	b.WriteString("\treturn polkit.Result.NOT_HANDLED;\n});\n")
	return b.String()
}
