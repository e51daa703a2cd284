package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service"
)

const (
	errAccessDenied        = "org.freedesktop.DBus.Error.AccessDenied"
	errInteractiveRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	errInvalidArgs         = "org.freedesktop.DBus.Error.InvalidArgs"
	errUnknownProperty     = "org.freedesktop.DBus.Error.UnknownProperty"
	errPropertyReadOnly    = "org.freedesktop.DBus.Error.PropertyReadOnly"
	errUnknownInterface    = "org.freedesktop.DBus.Error.UnknownInterface"
	errLimitsExceeded      = "org.freedesktop.DBus.Error.LimitsExceeded"
)

var errorNames = map[service.Kind]string{
	service.Failed:                           names.ErrorPrefix + "Failed",
	service.InvalidArgument:                  names.ErrorPrefix + "InvalidArgument",
	service.NotFound:                         names.ErrorPrefix + "NotFound",
	service.Exists:                           names.ErrorPrefix + "Exists",
	service.NotOwner:                         names.ErrorPrefix + "NotOwner",
	service.QuotaExceeded:                    names.ErrorPrefix + "QuotaExceeded",
	service.SubnetConflict:                   names.ErrorPrefix + "SubnetConflict",
	service.BridgeNotAllowed:                 names.ErrorPrefix + "BridgeNotAllowed",
	service.Unsupported:                      names.ErrorPrefix + "Unsupported",
	service.AccessDenied:                     errAccessDenied,
	service.InteractiveAuthorizationRequired: errInteractiveRequired,
}

// toDBusError gives err the API's error name and its message.
func toDBusError(err error) *godbus.Error {
	if e, ok := err.(*godbus.Error); ok {
		return e
	}
	return godbus.NewError(errorNames[service.KindOf(err)], []any{err.Error()})
}

func dbusError(name, msg string) *godbus.Error {
	return godbus.NewError(name, []any{msg})
}
