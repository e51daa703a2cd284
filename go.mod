module github.com/netgrant/netgrant

go 1.23

require (
	github.com/coreos/go-iptables v0.8.0
	github.com/coreos/go-systemd/v22 v22.7.0
	github.com/godbus/dbus/v5 v5.2.4
	github.com/vishvananda/netlink v1.3.1
	golang.org/x/sys v0.27.0
)

require github.com/vishvananda/netns v0.0.5 // indirect
