// Package polkit asks the system's polkit authority whether a D-Bus caller
// may perform an action.
package polkit

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
)

// Result of one check.
type Result int

const (
	Denied Result = iota
	Authorized
	// Challenge means polkit would authorize after authentication, but
	// interaction was not allowed.
	Challenge
)

func (r Result) String() string {
	switch r {
	case Denied:
		return "denied"
	case Authorized:
		return "authorized"
	case Challenge:
		return "challenge"
	}
	return "Result(" + strconv.Itoa(int(r)) + ")"
}

// Check is one polkit action to authorize, with the details polkit rules and
// the authentication dialog see.
type Check struct {
	Action  string
	Details map[string]string
}

const (
	authorityName      = "org.freedesktop.PolicyKit1"
	authorityPath      = dbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	authorityInterface = "org.freedesktop.PolicyKit1.Authority"

	allowUserInteraction uint32 = 1
)

// Authority talks to polkit over a bus connection the caller owns.
type Authority struct {
	conn *dbus.Conn
}

// New uses conn, the system bus connection the service already has: polkit
// matches cancellations to the connection that asked.
func New(conn *dbus.Conn) *Authority {
	return &Authority{conn: conn}
}

// subject is polkit's (sa{sv}).
type subject struct {
	Kind    string
	Details map[string]dbus.Variant
}

// authorizationResult is polkit's (bba{ss}).
type authorizationResult struct {
	IsAuthorized bool
	IsChallenge  bool
	Details      map[string]string
}

// cancellationSerial makes cancellation ids unique per process and thus
// per connection, which is what polkit requires of them.
var cancellationSerial atomic.Uint64

// Check asks polkit whether the caller with unique bus name busName may
// perform c. The subject is the bus name, never a pid, so a caller cannot be
// confused with a process that reused its pid. Every failure to get an
// answer is Denied, returned together with the error.
//
// An interactive check may wait as long as a human takes to type a
// password, so there is no timeout; cancelling ctx withdraws the request
// (and its dialog) from polkit.
func (a *Authority) Check(ctx context.Context, busName string, c Check, interactive bool) (Result, error) {
	var flags uint32
	if interactive {
		flags = allowUserInteraction
	}
	details := c.Details
	if details == nil {
		details = map[string]string{}
	}
	subj := subject{
		Kind:    "system-bus-name",
		Details: map[string]dbus.Variant{"name": dbus.MakeVariant(busName)},
	}
	cancellationID := "netgrant-" + strconv.FormatUint(cancellationSerial.Add(1), 10)

	var result authorizationResult
	call := a.conn.Object(authorityName, authorityPath).CallWithContext(ctx,
		authorityInterface+".CheckAuthorization", 0,
		subj, c.Action, details, flags, cancellationID)
	if call.Err != nil {
		if ctx.Err() != nil {
			a.cancel(cancellationID)
		}
		return Denied, fmt.Errorf("checking %s: %w", c.Action, call.Err)
	}
	if err := call.Store(&result); err != nil {
		return Denied, fmt.Errorf("checking %s: %w", c.Action, err)
	}
	switch {
	case result.IsAuthorized:
		return Authorized, nil
	case result.IsChallenge:
		return Challenge, nil
	}
	return Denied, nil
}

// cancel tells polkit to drop a check nobody waits for any more. Nothing
// useful can be done if that fails, so no reply is awaited.
func (a *Authority) cancel(cancellationID string) {
	a.conn.Object(authorityName, authorityPath).Go(
		authorityInterface+".CancelCheckAuthorization", dbus.FlagNoReplyExpected, nil,
		cancellationID)
}

// CheckAll runs the checks concurrently and returns the weakest result:
// Denied if any is denied, else Challenge if any is a challenge, else
// Authorized (also for no checks at all), with the check that decided it
// (the first denied, else the first challenged; zero when authorized) so a
// caller can say which action was refused. The error is the one that came
// with the first denial. Once one check is denied the others are cancelled,
// so the user is not asked for a password that could not help.
func (a *Authority) CheckAll(ctx context.Context, busName string, checks []Check, interactive bool) (Result, Check, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type outcome struct {
		check  Check
		result Result
		err    error
	}
	outcomes := make(chan outcome, len(checks))
	for _, c := range checks {
		go func() {
			r, err := a.Check(ctx, busName, c, interactive)
			outcomes <- outcome{c, r, err}
		}()
	}

	weakest := Authorized
	var decisive Check
	var firstErr error
	for range checks {
		o := <-outcomes
		switch {
		case weakest == Denied:
			// Later outcomes come from checks cancelled because of the
			// first denial; their errors say nothing new.
		case o.result == Denied:
			weakest, decisive, firstErr = Denied, o.check, o.err
			cancel()
		case o.result == Challenge && weakest == Authorized:
			weakest, decisive = Challenge, o.check
		}
	}
	return weakest, decisive, firstErr
}
