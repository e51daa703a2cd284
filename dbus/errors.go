package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/service"
)

const (
	errAccessDenied        = "org.freedesktop.DBus.Error.AccessDenied"
	errInteractiveRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	errInvalidArgs         = "org.freedesktop.DBus.Error.InvalidArgs"
	errUnknownProperty     = "org.freedesktop.DBus.Error.UnknownProperty"
	errPropertyReadOnly    = "org.freedesktop.DBus.Error.PropertyReadOnly"
	errUnknownInterface    = "org.freedesktop.DBus.Error.UnknownInterface"
)

var errorNames = map[service.Kind]string{
	service.Failed:                           ErrorPrefix + "Failed",
	service.InvalidArgument:                  ErrorPrefix + "InvalidArgument",
	service.NotFound:                         ErrorPrefix + "NotFound",
	service.Exists:                           ErrorPrefix + "Exists",
	service.NotOwner:                         ErrorPrefix + "NotOwner",
	service.QuotaExceeded:                    ErrorPrefix + "QuotaExceeded",
	service.SubnetConflict:                   ErrorPrefix + "SubnetConflict",
	service.BridgeNotAllowed:                 ErrorPrefix + "BridgeNotAllowed",
	service.Unsupported:                      ErrorPrefix + "Unsupported",
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
