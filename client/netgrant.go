package client

import (
	"errors"
	"fmt"
	"os"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/names"
)

// Objects maps each object path to its interfaces and their properties,
// as ObjectManager.GetManagedObjects returns them.
type Objects map[dbus.ObjectPath]map[string]map[string]dbus.Variant

func flags(interactive bool) dbus.Flags {
	if interactive {
		return dbus.FlagAllowInteractiveAuthorization
	}
	return 0
}

// CreateTap creates a tap with opts (API.md lists the keys) and returns its
// object, its queue fds and its info. interactive lets polkit ask for a
// password.
func (c *Conn) CreateTap(opts map[string]dbus.Variant, interactive bool) (dbus.ObjectPath, []*os.File, map[string]dbus.Variant, error) {
	if opts == nil {
		opts = map[string]dbus.Variant{}
	}
	body, fds, err := c.Call(names.BusName, names.ManagerPath, names.ManagerInterface, "CreateTap", flags(interactive), opts)
	if err != nil {
		return "", nil, nil, err
	}
	var path dbus.ObjectPath
	var indexes []dbus.UnixFDIndex
	var info map[string]dbus.Variant
	if err := dbus.Store(body, &path, &indexes, &info); err != nil {
		closeFiles(fds)
		return "", nil, nil, fmt.Errorf("CreateTap reply: %w", err)
	}
	queues := make([]*os.File, len(indexes))
	for i, index := range indexes {
		if int(index) >= len(fds) {
			closeFiles(fds)
			return "", nil, nil, fmt.Errorf("CreateTap reply: fd index %d, but %d fds arrived", index, len(fds))
		}
		queues[i] = fds[index]
	}
	return path, queues, info, nil
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// CreateNATNetwork creates the network name, or joins it if it is the
// caller's and opts match; either way this connection holds it until it
// closes or calls Release.
func (c *Conn) CreateNATNetwork(name string, opts map[string]dbus.Variant, interactive bool) (dbus.ObjectPath, map[string]dbus.Variant, error) {
	if opts == nil {
		opts = map[string]dbus.Variant{}
	}
	body, _, err := c.Call(names.BusName, names.ManagerPath, names.ManagerInterface, "CreateNATNetwork", flags(interactive), name, opts)
	if err != nil {
		return "", nil, err
	}
	var path dbus.ObjectPath
	var info map[string]dbus.Variant
	if err := dbus.Store(body, &path, &info); err != nil {
		return "", nil, fmt.Errorf("CreateNATNetwork reply: %w", err)
	}
	return path, info, nil
}

// GetNetwork is the object of the network called name.
func (c *Conn) GetNetwork(name string) (dbus.ObjectPath, error) {
	body, _, err := c.Call(names.BusName, names.ManagerPath, names.ManagerInterface, "GetNetwork", 0, name)
	if err != nil {
		return "", err
	}
	var path dbus.ObjectPath
	return path, dbus.Store(body, &path)
}

// Release drops this connection's hold on a network.
func (c *Conn) Release(network dbus.ObjectPath) error {
	_, _, err := c.Call(names.BusName, network, names.NetworkInterface, "Release", 0)
	return err
}

// DeleteNetwork tears a network down now.
func (c *Conn) DeleteNetwork(network dbus.ObjectPath, interactive bool) error {
	_, _, err := c.Call(names.BusName, network, names.NetworkInterface, "Delete", flags(interactive))
	return err
}

// DeleteTap deletes a tap device now.
func (c *Conn) DeleteTap(tap dbus.ObjectPath, interactive bool) error {
	_, _, err := c.Call(names.BusName, tap, names.TapInterface, "Delete", flags(interactive))
	return err
}

// GetManagedObjects is every network and tap with its properties.
func (c *Conn) GetManagedObjects() (Objects, error) { return c.getManagedObjects(0) }

func (c *Conn) getManagedObjects(flags dbus.Flags) (Objects, error) {
	body, _, err := c.Call(names.BusName, names.ManagerPath, "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", flags)
	if err != nil {
		return nil, err
	}
	var objects Objects
	return objects, dbus.Store(body, &objects)
}

// RunningObjects is GetManagedObjects of a netgrantd that runs, and
// nothing (no error) when none does: it never starts one, as shell
// completion, which runs on every TAB, must not.
func (c *Conn) RunningObjects() (Objects, error) {
	body, _, err := c.Call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "NameHasOwner", 0, names.BusName)
	if err != nil {
		return nil, err
	}
	var running bool
	if err := dbus.Store(body, &running); err != nil || !running {
		return nil, err
	}
	objects, err := c.getManagedObjects(dbus.FlagNoAutoStart)
	var e *Error
	if errors.As(err, &e) && (e.Name == ErrServiceUnknown || e.Name == ErrNameHasNoOwner) {
		// It exited between the two calls.
		return nil, nil
	}
	return objects, err
}

// AddPortForward forwards proto hostPort of the host to guest:guestPort on
// a network; address, if not empty, limits it to that host address.
func (c *Conn) AddPortForward(network dbus.ObjectPath, proto string, hostPort uint16, guest string, guestPort uint16, address string, interactive bool) error {
	opts := map[string]dbus.Variant{}
	if address != "" {
		opts["address"] = dbus.MakeVariant(address)
	}
	_, _, err := c.Call(names.BusName, network, names.NetworkInterface, "AddPortForward", flags(interactive), proto, hostPort, guest, guestPort, opts)
	return err
}

// RemovePortForward removes a network's forward of proto hostPort.
func (c *Conn) RemovePortForward(network dbus.ObjectPath, proto string, hostPort uint16, interactive bool) error {
	_, _, err := c.Call(names.BusName, network, names.NetworkInterface, "RemovePortForward", flags(interactive), proto, hostPort)
	return err
}
