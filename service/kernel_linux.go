package service

import (
	"net"

	"github.com/netgrant/netgrant/service/bridge"
	"github.com/netgrant/netgrant/service/dnsmasq"
	"github.com/netgrant/netgrant/service/nldump"
	"github.com/netgrant/netgrant/service/subnet"
	"github.com/netgrant/netgrant/service/tap"
)

// Linux is the running kernel, and dnsmasq as netgrantd's child or as
// systemd units.
func Linux() Kernel {
	return Kernel{Taps: linuxTaps{}, Bridges: linuxBridges{}, Sysctls: linuxSysctls{}, Dnsmasqs: linuxDnsmasqs{}}
}

type linuxTaps struct{}

func (linuxTaps) Create(cfg tap.Config) (*tap.Device, error)       { return tap.Create(cfg) }
func (linuxTaps) Delete(name string, index int) error              { return tap.Delete(name, index) }
func (linuxTaps) SetMTU(name string, index, mtu int) error         { return tap.SetMTU(name, index, mtu) }
func (linuxTaps) Inspect(name string, index int) (tap.State, bool) { return tap.Inspect(name, index) }

type linuxBridges struct{}

func (linuxBridges) Create(cfg bridge.Config) error { return bridge.Create(cfg) }
func (linuxBridges) DeleteOwn(name string, mac net.HardwareAddr) error {
	return bridge.DeleteOwn(name, mac)
}
func (linuxBridges) Index(name string) (int, error)     { return bridge.Index(name) }
func (linuxBridges) IsBridge(name string) (bool, error) { return bridge.IsBridge(name) }
func (linuxBridges) MTU(name string) (int, error)       { return bridge.MTU(name) }
func (linuxBridges) Attach(port, br string) error       { return bridge.Attach(port, br) }

func (linuxBridges) Host() (HostView, error) {
	links, err := nldump.Links()
	if err != nil {
		return HostView{}, err
	}
	uses, err := subnet.HostUses(links)
	if err != nil {
		return HostView{}, err
	}
	return HostView{LinkNames: bridge.LinkNames(links), Uses: uses}, nil
}

type linuxSysctls struct{}

func (linuxSysctls) IPv6Available() bool                     { return bridge.IPv6Available() }
func (linuxSysctls) EnableForwarding() error                 { return bridge.EnableForwarding() }
func (linuxSysctls) EnableIPv6Forwarding() ([]string, error) { return bridge.EnableIPv6Forwarding() }

type linuxDnsmasqs struct{}

func (linuxDnsmasqs) Available() error                       { return dnsmasq.Available() }
func (linuxDnsmasqs) DelegatedIDs() (dnsmasq.IDRange, error) { return dnsmasq.DelegatedIDs() }
func (linuxDnsmasqs) StopOrphan(dir string) error            { return dnsmasq.StopOrphan(dir, dnsmasq.OurUIDs()) }
func (linuxDnsmasqs) StopUnit(bridge string) error           { return dnsmasq.StopUnit(bridge) }

func (linuxDnsmasqs) Start(cfg dnsmasq.Config, onLeases func([]dnsmasq.Lease)) (DnsmasqProcess, error) {
	inst, err := dnsmasq.Start(cfg, onLeases)
	if err != nil {
		// Not a nil *Instance in a non-nil interface.
		return nil, err
	}
	return inst, nil
}
