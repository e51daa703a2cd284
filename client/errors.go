package client

import (
	"errors"
	"regexp"
	"strings"

	"github.com/netgrant/netgrant/internal/busconn"
	"github.com/netgrant/netgrant/internal/names"
)

// Error is a D-Bus error reply.
type Error = busconn.Error

// Error names a caller may need to tell apart.
const (
	ErrAccessDenied        = "org.freedesktop.DBus.Error.AccessDenied"
	ErrInteractiveRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	ErrServiceUnknown      = "org.freedesktop.DBus.Error.ServiceUnknown"
	ErrNoReply             = "org.freedesktop.DBus.Error.NoReply"
	ErrNameHasNoOwner      = "org.freedesktop.DBus.Error.NameHasNoOwner"
)

// netgrantd names the polkit actions it asked for in its denials:
// "... (polkit org.netgrant.create-tap, org.netgrant.persist)".
var polkitActions = regexp.MustCompile(`\(polkit ([a-z0-9.-]+(?:, [a-z0-9.-]+)*)\)`)

// Explain says what went wrong in plain words, with what to do about it.
func Explain(err error) string {
	var busErr *BusError
	if errors.As(err, &busErr) {
		return "cannot connect to the system bus (" + busErr.Address + "): " + busErr.Err.Error() +
			"; is dbus running? (DBUS_SYSTEM_BUS_ADDRESS picks another bus)"
	}
	var e *Error
	if !errors.As(err, &e) {
		return err.Error()
	}
	actions := "the request"
	if m := polkitActions.FindStringSubmatch(e.Message); m != nil {
		actions = m[1]
	}
	switch {
	case e.Name == ErrAccessDenied && strings.Contains(e.Message, "(polkit"):
		return "not allowed: polkit refused " + actions +
			"; ask your administrator to allow it (see POLKIT in netgrantd(8))"
	case e.Name == ErrAccessDenied:
		return "not allowed by the system bus: " + e.Message +
			"; is netgrant's D-Bus policy (org.netgrant.NetGrant1.conf) installed?"
	case e.Name == ErrInteractiveRequired:
		return "authentication needed for " + actions + " but no polkit agent is running: " +
			"run the command on a terminal (it then asks for the password there) or in your desktop session, " +
			"or ask your administrator to allow it without a password (see POLKIT in netgrantd(8))"
	case e.Name == ErrServiceUnknown || e.Name == ErrNoReply || e.Name == ErrNameHasNoOwner:
		return "netgrantd is not running or not installed (" + e.Message + "): " +
			"install netgrant (D-Bus starts netgrantd on the first call), or see `journalctl -u netgrantd` for why it stopped"
	case strings.HasPrefix(e.Name, names.ErrorPrefix):
		// netgrantd's messages already say what is wrong and what to do.
		return e.Message
	}
	return e.Error()
}
