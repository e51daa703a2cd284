package dbus

import "github.com/netgrant/netgrant/internal/names"

const (
	networkDir = names.ManagerPath + "/network"
	tapDir     = names.ManagerPath + "/tap"

	propertiesInterface     = "org.freedesktop.DBus.Properties"
	introspectableInterface = "org.freedesktop.DBus.Introspectable"
	objectManagerInterface  = "org.freedesktop.DBus.ObjectManager"
)
