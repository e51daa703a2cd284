// Package polkit asks the system's polkit authority whether a D-Bus caller
// may perform an action.
package polkit

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
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
	conn *busconn.Conn
}

// New uses conn, the system bus connection the service already has: polkit
// matches cancellations to the connection that asked.
func New(conn *busconn.Conn) *Authority {
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

	reply, err := a.conn.Call(ctx, authorityName, authorityPath, authorityInterface, "CheckAuthorization", 0,
		subj, c.Action, details, flags, cancellationID)
	if err != nil {
		if ctx.Err() != nil {
			a.cancel(cancellationID)
		}
		return Denied, fmt.Errorf("checking %s: %w", c.Action, err)
	}
	var result authorizationResult
	if err := dbus.Store(reply.Body, &result); err != nil {
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
	a.conn.Send(busconn.NewCall(authorityName, authorityPath, authorityInterface, "CancelCheckAuthorization",
		dbus.FlagNoReplyExpected, cancellationID))
}
