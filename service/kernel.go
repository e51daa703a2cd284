package service

import (
	"context"
	"net"

	"github.com/netgrant/netgrant/service/bridge"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/hooks"
	"github.com/netgrant/netgrant/service/subnet"
	"github.com/netgrant/netgrant/service/tap"
)

// The core changes the host only through these interfaces, each shaped by
// what a call needs rather than by the kernel's API, the way Tailscale's
// router takes a command runner: netgrantd passes Linux(), and the core's
// unit tests a fake that records what was asked and fails where told, so
// every unwinding path runs without root.

// Kernel is the host as the core uses it.
type Kernel struct {
	Taps     Taps
	Bridges  Bridges
	Sysctls  Sysctls
	Dnsmasqs Dnsmasqs
}

// Taps make and watch over tap devices. A device is named by name and
// ifindex together: a later device may take the name.
type Taps interface {
	Create(cfg tap.Config) (*tap.Device, error)
	Delete(name string, index int) error
	SetMTU(name string, index, mtu int) error
	// Inspect reads what the fds' holder can change; ok is false once
	// the device is gone.
	Inspect(name string, index int) (state tap.State, ok bool)
}

// Bridges make networks' bridges and plug taps into any bridge.
type Bridges interface {
	// Create fails with an error wrapping os.ErrExist when a link has
	// the name.
	Create(cfg bridge.Config) error
	// DeleteOwn deletes the bridge name only if it has mac: a link made
	// by someone else with that name stays.
	DeleteOwn(name string, mac net.HardwareAddr) error
	Index(name string) (int, error)
	IsBridge(name string) (bool, error)
	MTU(name string) (int, error)
	Attach(port, bridge string) error
	// Host lists the names of the host's links and what its addresses,
	// routes and resolvers take of the address space.
	Host() (HostView, error)
}

// HostView is the host's links and address space as a new network must
// avoid them.
type HostView struct {
	LinkNames map[string]bool
	Uses      []subnet.Use
}

// Sysctls probe and switch the host-wide settings networks need.
type Sysctls interface {
	IPv6Available() bool
	EnableForwarding() error
	// EnableIPv6Forwarding returns the links whose router advertisements
	// it kept (accept_ra 2).
	EnableIPv6Forwarding() (kept []string, err error)
}

// Dnsmasqs start and stop the networks' dnsmasq. A network's dnsmasq has a
// directory of its own; one a previous netgrantd started is found by it.
type Dnsmasqs interface {
	// Available says why dnsmasq cannot run here, if it cannot.
	Available() error
	// DelegatedIDs are the ids child dnsmasqs may run under.
	DelegatedIDs() (dnsmasq.IDRange, error)
	Start(cfg dnsmasq.Config, onLeases func([]dnsmasq.Lease)) (DnsmasqProcess, error)
	// StopOrphan stops the child dnsmasq of dir a previous netgrantd left.
	StopOrphan(dir string) error
	// StopUnit stops the systemd unit of bridge's dnsmasq.
	StopUnit(bridge string) error
}

// DnsmasqProcess is one running dnsmasq.
type DnsmasqProcess interface {
	Stop() error
	// Reload makes it read its hosts files again.
	Reload() error
}

// Hooks runs the administrator's up and down hooks (hooks.Runner).
type Hooks interface {
	Up(ctx context.Context, ev hooks.Event, env hooks.Env) error
	Down(ctx context.Context, ev hooks.Event, env hooks.Env)
}
