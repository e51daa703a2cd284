package polkit

import (
	"bufio"
	"context"
	"errors"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
)

// checkRequest is what the fake authority received in one CheckAuthorization.
type checkRequest struct {
	sender         dbus.Sender
	subject        subject
	action         string
	details        map[string]string
	flags          uint32
	cancellationID string
}

// fakeAuthority stands in for polkitd on a private bus. answer decides each
// check; it runs concurrently for concurrent calls, as polkitd would.
type fakeAuthority struct {
	answer func(*fakeAuthority, checkRequest) (authorizationResult, *dbus.Error)

	requests chan checkRequest
	cancels  chan string

	mu        sync.Mutex
	cancelled map[string]chan struct{}
}

func (f *fakeAuthority) CheckAuthorization(sender dbus.Sender, subj subject, action string, details map[string]string, flags uint32, cancellationID string) (authorizationResult, *dbus.Error) {
	r := checkRequest{sender, subj, action, details, flags, cancellationID}
	f.requests <- r
	return f.answer(f, r)
}

func (f *fakeAuthority) CancelCheckAuthorization(sender dbus.Sender, cancellationID string) *dbus.Error {
	close(f.cancelledChan(cancellationID))
	f.cancels <- cancellationID
	return nil
}

func (f *fakeAuthority) cancelledChan(id string) chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cancelled[id]
	if !ok {
		c = make(chan struct{})
		f.cancelled[id] = c
	}
	return c
}

// blockUntilCancelled answers only after the client withdrew the request,
// like polkitd waiting for a password nobody types.
func (f *fakeAuthority) blockUntilCancelled(r checkRequest) (authorizationResult, *dbus.Error) {
	<-f.cancelledChan(r.cancellationID)
	return authorizationResult{}, dbus.NewError("org.freedesktop.PolicyKit1.Error.Cancelled", []any{"cancelled"})
}

// privateBus starts a dbus-daemon of its own, so no test talks to the
// host's buses or can activate the host's polkitd.
func privateBus(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("dbus-daemon"); err != nil {
		t.Skip("dbus-daemon not installed")
	}
	// Not t.TempDir: the socket path must stay short and free of characters
	// that D-Bus addresses would need escaped, whatever the test's name.
	dir, err := os.MkdirTemp("", "polkit-bus")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	config := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=` + dir + `</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>`
	configPath := filepath.Join(dir, "bus.conf")
	if err = os.WriteFile(configPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("dbus-daemon", "--config-file="+configPath, "--print-address", "--nofork")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	// The daemon must not outlive a crashed test and keep its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	address, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading bus address: %v", err)
	}
	return strings.TrimSpace(address)
}

func connect(t *testing.T, address string) *busconn.Conn {
	t.Helper()
	conn, err := busconn.Dial(address, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func connectGodbus(t *testing.T, address string) *dbus.Conn {
	t.Helper()
	conn, err := dbus.Connect(address)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// withFakeAuthority returns a client connection on a private bus on which
// fake owns polkit's name.
func withFakeAuthority(t *testing.T, answer func(*fakeAuthority, checkRequest) (authorizationResult, *dbus.Error)) (*busconn.Conn, *fakeAuthority) {
	t.Helper()
	address := privateBus(t)
	fake := &fakeAuthority{
		answer:    answer,
		requests:  make(chan checkRequest, 16),
		cancels:   make(chan string, 16),
		cancelled: map[string]chan struct{}{},
	}
	server := connectGodbus(t, address)
	if err := server.Export(fake, authorityPath, authorityInterface); err != nil {
		t.Fatal(err)
	}
	reply, err := server.RequestName(authorityName, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("owning %s: %v %v", authorityName, reply, err)
	}
	return connect(t, address), fake
}

func answerWith(r authorizationResult) func(*fakeAuthority, checkRequest) (authorizationResult, *dbus.Error) {
	return func(*fakeAuthority, checkRequest) (authorizationResult, *dbus.Error) { return r, nil }
}

func TestCheckAsksAboutTheBusNameWithDetailsAndInteractionFlag(t *testing.T) {
	for _, interactive := range []bool{false, true} {
		client, fake := withFakeAuthority(t, answerWith(authorizationResult{IsAuthorized: true}))
		details := map[string]string{"network": "lab", "owner": "1000"}

		result, err := New(client).Check(context.Background(), ":1.42",
			Check{Action: "org.netgrant.use-network", Details: details}, interactive)
		if result != Authorized || err != nil {
			t.Fatalf("interactive=%v: got %v, %v; want authorized", interactive, result, err)
		}

		r := <-fake.requests
		if string(r.sender) != client.UniqueName() {
			t.Errorf("request came from %s, want the connection given to New (%s)", r.sender, client.UniqueName())
		}
		if r.subject.Kind != "system-bus-name" {
			t.Errorf("subject kind %q, want system-bus-name", r.subject.Kind)
		}
		if len(r.subject.Details) != 1 || r.subject.Details["name"].Value() != ":1.42" {
			t.Errorf("subject details %v, want only name=:1.42 (never a pid)", r.subject.Details)
		}
		if r.action != "org.netgrant.use-network" {
			t.Errorf("action %q", r.action)
		}
		if !maps.Equal(r.details, details) {
			t.Errorf("details %v, want %v", r.details, details)
		}
		wantFlags := uint32(0)
		if interactive {
			wantFlags = 1
		}
		if r.flags != wantFlags {
			t.Errorf("interactive=%v: flags %d, want %d", interactive, r.flags, wantFlags)
		}
		if r.cancellationID == "" {
			t.Error("empty cancellation id")
		}
	}
}

func TestCheckMapsPolkitAnswers(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  authorizationResult
		dbusErr *dbus.Error
		want    Result
		wantErr bool
	}{
		{name: "authorized", answer: authorizationResult{IsAuthorized: true}, want: Authorized},
		{name: "challenge", answer: authorizationResult{IsChallenge: true}, want: Challenge},
		{name: "not authorized", answer: authorizationResult{}, want: Denied},
		{name: "dismissed dialog", answer: authorizationResult{Details: map[string]string{"polkit.dismissed": "true"}}, want: Denied},
		{name: "polkit error", dbusErr: dbus.NewError("org.freedesktop.PolicyKit1.Error.Failed", []any{"no such action"}), want: Denied, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, _ := withFakeAuthority(t, func(*fakeAuthority, checkRequest) (authorizationResult, *dbus.Error) {
				return tc.answer, tc.dbusErr
			})
			result, err := New(client).Check(context.Background(), ":1.7", Check{Action: "org.netgrant.create-tap"}, false)
			if result != tc.want || (err != nil) != tc.wantErr {
				t.Fatalf("got %v, %v; want %v, error %v", result, err, tc.want, tc.wantErr)
			}
			if tc.wantErr && !strings.Contains(err.Error(), "org.netgrant.create-tap") {
				t.Errorf("error %q does not name the action", err)
			}
		})
	}
}

func TestCheckWithoutPolkitIsDenied(t *testing.T) {
	client := connect(t, privateBus(t))
	result, err := New(client).Check(context.Background(), ":1.7", Check{Action: "org.netgrant.create-tap"}, true)
	if result != Denied || err == nil {
		t.Fatalf("got %v, %v; want denied with an error", result, err)
	}
}

func TestCancelledCheckIsWithdrawnFromPolkit(t *testing.T) {
	client, fake := withFakeAuthority(t, (*fakeAuthority).blockUntilCancelled)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		result, err := New(client).Check(ctx, ":1.7", Check{Action: "org.netgrant.create-tap"}, true)
		if result != Denied {
			t.Errorf("cancelled check: %v", result)
		}
		done <- err
	}()

	r := <-fake.requests
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled check returned %v, want context.Canceled", err)
	}
	if id := <-fake.cancels; id != r.cancellationID {
		t.Errorf("cancelled %q, want the id of the pending check %q", id, r.cancellationID)
	}
}

func TestCancellationIDsAreUnique(t *testing.T) {
	client, fake := withFakeAuthority(t, answerWith(authorizationResult{IsAuthorized: true}))
	a := New(client)
	seen := map[string]bool{}
	for range 3 {
		if _, err := a.Check(context.Background(), ":1.7", Check{Action: "org.netgrant.create-tap"}, false); err != nil {
			t.Fatal(err)
		}
		id := (<-fake.requests).cancellationID
		if seen[id] {
			t.Fatalf("cancellation id %q used twice", id)
		}
		seen[id] = true
	}
}
