package service

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service/firewall"
	"github.com/netgrant/netgrant/service/hostports"
	"github.com/netgrant/netgrant/service/nldump"
)

// PortForward sends a host port to a guest's, for connections from other
// machines and the host's own to its non-loopback addresses.
type PortForward struct {
	Protocol  string     `json:"protocol"`
	HostPort  uint16     `json:"host_port"`
	Guest     netip.Addr `json:"guest"`
	GuestPort uint16     `json:"guest_port"`
	// Address is the one host address forwarded; invalid: all of them.
	Address netip.Addr `json:"address"`
}

// ForwardRequest is an AddPortForward call, decoded.
type ForwardRequest struct {
	Network   string
	Protocol  string
	HostPort  uint16
	Guest     string
	GuestPort uint16
	Address   string // empty: every address of the host
}

// takes reports whether f takes what a forward of proto, port on addr
// (invalid: every address) would.
func (f PortForward) takes(proto string, port uint16, addr netip.Addr) bool {
	return f.Protocol == proto && f.HostPort == port && (!f.Address.IsValid() || !addr.IsValid() || f.Address == addr)
}

func (f PortForward) firewall() firewall.Forward {
	return firewall.Forward{Proto: f.Protocol, HostPort: f.HostPort, Address: f.Address, Guest: f.Guest, GuestPort: f.GuestPort}
}

func validProtocol(p string) error {
	if p != "tcp" && p != "udp" {
		return Errorf(InvalidArgument, "protocol: %q is neither \"tcp\" nor \"udp\"", p)
	}
	return nil
}

// parse checks what can be checked without the network: everything but
// the guest's place in its subnet.
func (r ForwardRequest) parse() (PortForward, error) {
	f := PortForward{Protocol: r.Protocol, HostPort: r.HostPort, GuestPort: r.GuestPort}
	if err := validProtocol(r.Protocol); err != nil {
		return f, err
	}
	if r.HostPort == 0 {
		return f, Errorf(InvalidArgument, "host_port: 0 is not a port")
	}
	if r.GuestPort == 0 {
		return f, Errorf(InvalidArgument, "guest_port: 0 is not a port")
	}
	guest, err := netip.ParseAddr(r.Guest)
	if err != nil || !guest.Is4() {
		return f, Errorf(InvalidArgument, "guest: %q is not an IPv4 address", r.Guest)
	}
	f.Guest = guest
	if r.Address != "" {
		addr, err := netip.ParseAddr(r.Address)
		if err != nil || !addr.Is4() {
			return f, Errorf(InvalidArgument, "option address: %q is not an IPv4 address", r.Address)
		}
		f.Address = addr
	}
	return f, nil
}

// checkHostAddress refuses an address option that is not one of the
// host's own, or is loopback, which is never forwarded.
func checkHostAddress(addr netip.Addr) error {
	if !addr.IsValid() {
		return nil
	}
	if addr.IsLoopback() {
		return Errorf(InvalidArgument, "option address: %s is loopback, which is never forwarded to a guest", addr)
	}
	local, err := nldump.HasAddress(addr)
	if err != nil {
		return Wrap(Failed, err, "reading the host's addresses")
	}
	if !local {
		return Errorf(InvalidArgument, "option address: %s is not an address of this host", addr)
	}
	return nil
}

// holdPort takes f's host port for as long as f exists: a program on the
// host that binds it later fails loudly, instead of being silently
// shadowed by the forward. A port that cannot be taken is in use.
func holdPort(f PortForward) (*os.File, error) {
	sock, err := hostports.Hold(f.Protocol, f.Address, f.HostPort)
	switch {
	case errors.Is(err, hostports.ErrInUse):
		return nil, Errorf(Exists, "%s port %d is in use on this host: choose another host port", f.Protocol, f.HostPort)
	case err != nil:
		return nil, Wrap(Failed, err, "holding the forward's host port")
	}
	return sock, nil
}

// checkListeners refuses a host port a program on the host serves.
func checkListeners(f PortForward) error {
	sockets, err := hostports.Sockets(f.Protocol, f.HostPort)
	if err != nil {
		return Wrap(Failed, err, "reading the host's sockets")
	}
	for _, s := range sockets {
		if hostports.Clashes(s, f.Address) {
			return Errorf(Exists, "%s port %d is in use on this host (a program holds %s): choose another host port", f.Protocol, f.HostPort, s)
		}
	}
	return nil
}

// checkForwardTarget refuses a forward n cannot take, naming why.
func (m *Manager) checkForwardTarget(n *netRes, f PortForward) error {
	switch {
	case !n.outbound:
		return Errorf(Unsupported, "network %s is host-only (outbound: false): port forwards need a network with outbound traffic", n.name)
	case f.Guest.Less(n.plan.DHCPStart) || n.plan.DHCPEnd.Less(f.Guest):
		return Errorf(InvalidArgument, "guest: %s is not a guest address of network %s (%s to %s)", f.Guest, n.name, n.plan.DHCPStart, n.plan.DHCPEnd)
	}
	for _, other := range m.networks {
		if f.Address == other.plan.Gateway {
			return Errorf(InvalidArgument, "option address: %s is the gateway of network %s, which is never forwarded: its guests' DHCP and DNS go there", f.Address, other.name)
		}
		for _, g := range other.forwards {
			if g.takes(f.Protocol, f.HostPort, f.Address) {
				return Errorf(Exists, "%s port %d is already forwarded, on network %s: remove that forward first, or choose another host port", f.Protocol, f.HostPort, other.name)
			}
		}
	}
	return nil
}

func (m *Manager) forwardCheck(n *netRes, f PortForward) *AuthCheck {
	action := names.ActionForwardPort
	if f.HostPort < 1024 {
		action = names.ActionForwardPrivilegedPort
	}
	return &AuthCheck{Action: action, Details: map[string]string{
		"network": n.name, "protocol": f.Protocol, "host_port": fmt.Sprint(f.HostPort),
		"guest": f.Guest.String(), "guest_port": fmt.Sprint(f.GuestPort),
	}}
}

// AddPortForward forwards a host port to a guest of network r.Network.
func (m *Manager) AddPortForward(ctx context.Context, c Caller, r ForwardRequest) error {
	f, err := r.parse()
	if err != nil {
		return err
	}
	if err := checkHostAddress(f.Address); err != nil {
		return err
	}
	if err := checkListeners(f); err != nil {
		return err
	}
	look := func() (*netRes, *AuthCheck, error) {
		n, ok := m.readyNetwork(r.Network)
		if !ok {
			return nil, nil, Errorf(NotFound, "there is no network %q", r.Network)
		}
		if err := m.checkForwardTarget(n, f); err != nil {
			return n, nil, err
		}
		if n.owner != c.UID {
			return n, m.manageCheck("network", n.name), nil
		}
		return n, m.forwardCheck(n, f), nil
	}
	// The port is taken once polkit has answered, under the lock: a
	// program that bound it meanwhile, or a forward another call took,
	// makes the bind fail.
	n, done, err := decide(ctx, m, c, look, Errorf(NotFound, "network %q was replaced while polkit was asked", r.Network),
		func(n *netRes) error {
			sock, err := holdPort(f)
			if err != nil {
				return err
			}
			n.forwards = append(n.forwards, f)
			if err := m.forwardsChanged(n); err != nil {
				n.forwards = n.forwards[:len(n.forwards)-1]
				sock.Close()
				return err
			}
			n.heldPorts[f] = sock
			return nil
		})
	if err != nil {
		return err
	}
	defer done()
	if err := m.fw.apply(); err != nil {
		m.mu.Lock()
		released := m.dropForwardLocked(n, f.Protocol, f.HostPort)
		m.mu.Unlock()
		if retryErr := m.fw.apply(); retryErr != nil {
			m.log.Warn("taking back a port forward that failed", "network", n.name, "err", retryErr)
		}
		closeAll(released)
		return Wrap(Failed, err, "adding the port forward's firewall rules")
	}
	return nil
}

// RemovePortForward removes the forward of proto, port from a network.
func (m *Manager) RemovePortForward(ctx context.Context, c Caller, network, proto string, port uint16) error {
	if err := validProtocol(proto); err != nil {
		return err
	}
	look := func() (*netRes, *AuthCheck, error) {
		n, ok := m.readyNetwork(network)
		if !ok {
			return nil, nil, Errorf(NotFound, "there is no network %q", network)
		}
		if !slices.ContainsFunc(n.forwards, func(f PortForward) bool { return f.takes(proto, port, netip.Addr{}) }) {
			return n, nil, Errorf(NotFound, "network %s forwards no %s port %d", network, proto, port)
		}
		if n.owner != c.UID {
			return n, m.manageCheck("network", n.name), nil
		}
		return n, nil, nil
	}
	var released []*os.File
	_, done, err := decide(ctx, m, c, look, Errorf(NotFound, "network %q was replaced while polkit was asked", network),
		func(n *netRes) error {
			released = m.dropForwardLocked(n, proto, port)
			return nil
		})
	if err != nil {
		return err
	}
	defer done()
	// The port is given back once no rule forwards it.
	err = m.fw.apply()
	closeAll(released)
	if err != nil {
		return Wrap(Failed, err, "removing the port forward's firewall rules (netgrantd puts them right at the next change)")
	}
	return nil
}

// dropForwardLocked removes n's forwards of proto, port, under the lock,
// and returns the sockets that held their ports: the caller closes them
// once the firewall no longer forwards the ports.
func (m *Manager) dropForwardLocked(n *netRes, proto string, port uint16) []*os.File {
	var released []*os.File
	n.forwards = slices.DeleteFunc(n.forwards, func(f PortForward) bool {
		if f.Protocol != proto || f.HostPort != port {
			return false
		}
		if sock, ok := n.heldPorts[f]; ok {
			released = append(released, sock)
			delete(n.heldPorts, f)
		}
		return true
	})
	if err := m.forwardsChanged(n); err != nil {
		m.log.Warn("recording a removed port forward", "network", n.name, "err", err)
	}
	return released
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// forwardsChanged records and publishes n's forwards and hands them to
// the firewall's state, under the lock; applyFirewall then applies them.
func (m *Manager) forwardsChanged(n *netRes) error {
	if err := m.saveNetwork(n); err != nil {
		return err
	}
	m.fw.update(n.fwGen, n.firewall())
	m.opts.Observer.NetworkChanged(m.networkInfo(n))
	return nil
}
