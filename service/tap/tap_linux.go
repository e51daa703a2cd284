package tap

import (
	"errors"
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/service/linkconf"
)

// maxNameTries bounds the search for a free ngtap<N>; reaching it means
// something else is squatting on the names.
const maxNameTries = 4096

// Create makes a non-persistent tap named ngtap<N>, N the lowest free
// number, configures it and brings it up. On failure it closes every fd it
// opened, which makes the kernel remove the device again.
func Create(cfg Config) (dev *Device, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if cfg.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	if cfg.Queues > 1 {
		flags |= unix.IFF_MULTI_QUEUE
	}

	var files []*os.File
	defer func() {
		if err != nil {
			for _, f := range files {
				f.Close()
			}
		}
	}()

	first, err := openTun()
	if err != nil {
		return nil, err
	}
	files = append(files, first)
	name, err := attachNew(first, flags)
	if err != nil {
		return nil, err
	}
	for len(files) < cfg.Queues {
		f, err := openTun()
		if err != nil {
			return nil, err
		}
		files = append(files, f)
		if err := setIff(f, name, flags); err != nil {
			return nil, fmt.Errorf("attaching queue %d to %s: %w", len(files)-1, name, err)
		}
	}
	if err := ioctlInt(first, unix.TUNSETOWNER, int(cfg.UID)); err != nil {
		return nil, fmt.Errorf("setting owner of %s: %w", name, err)
	}
	if err := ioctlInt(first, unix.TUNSETGROUP, int(cfg.GID)); err != nil {
		return nil, fmt.Errorf("setting group of %s: %w", name, err)
	}

	link, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("looking up %s: %w", name, err)
	}
	if cfg.LinkMAC != nil {
		if err := netlink.LinkSetHardwareAddr(link, cfg.LinkMAC); err != nil {
			return nil, fmt.Errorf("setting address of %s to %s: %w", name, cfg.LinkMAC, err)
		}
	}
	if cfg.MTU != 0 {
		if err := netlink.LinkSetMTU(link, cfg.MTU); err != nil {
			return nil, fmt.Errorf("setting MTU of %s to %d: %w", name, cfg.MTU, err)
		}
	}
	if err := linkconf.DisableIPv6(link); err != nil {
		return nil, err
	}
	if err := linkconf.StrictReversePath(link); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("bringing up %s: %w", name, err)
	}
	return &Device{Name: name, Index: link.Attrs().Index, Files: files}, nil
}

func (cfg Config) validate() error {
	if cfg.Queues < 1 || cfg.Queues > maxQueues {
		return fmt.Errorf("tap queues %d out of range 1..%d", cfg.Queues, maxQueues)
	}
	if cfg.MTU != 0 && (cfg.MTU < minMTU || cfg.MTU > maxMTU) {
		return fmt.Errorf("tap MTU %d out of range %d..%d", cfg.MTU, minMTU, maxMTU)
	}
	if cfg.LinkMAC != nil && len(cfg.LinkMAC) != 6 {
		return fmt.Errorf("tap link address %s is not an Ethernet address", cfg.LinkMAC)
	}
	return nil
}

// openTun opens a tun fd in blocking mode: the fd is handed to a client,
// which shares its file status flags, so it must look like one fresh from
// open(2).
func openTun() (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	return os.NewFile(uintptr(fd), "/dev/net/tun"), nil
}

// attachNew creates the lowest-numbered free ngtap<N> on f. IFF_TUN_EXCL
// makes the kernel refuse a name already in use instead of attaching to
// that device, which could be someone else's persistent tap.
func attachNew(f *os.File, flags uint16) (string, error) {
	for n := range maxNameTries {
		name := tapName(n)
		err := setIff(f, name, flags|unix.IFF_TUN_EXCL)
		if errors.Is(err, unix.EBUSY) || errors.Is(err, unix.EEXIST) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("creating tap %s: %w", name, err)
		}
		return name, nil
	}
	return "", fmt.Errorf("creating tap: names %s..%s all taken", tapName(0), tapName(maxNameTries-1))
}

func setIff(f *os.File, name string, flags uint16) error {
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	ifr.SetUint16(flags)
	return control(f, func(fd int) error { return unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr) })
}

func ioctlInt(f *os.File, req uint, value int) error {
	return control(f, func(fd int) error { return unix.IoctlSetInt(fd, req, value) })
}

// control runs fn on f's descriptor without f.Fd, which would switch a
// non-blocking file to blocking mode behind its owner's back.
func control(f *os.File, fn func(fd int) error) error {
	conn, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var opErr error
	if err := conn.Control(func(fd uintptr) { opErr = fn(int(fd)) }); err != nil {
		return err
	}
	return opErr
}

// Delete removes the tap name now, even while fds on it are open; their
// holders then get errors (EBADFD) from every read and write. A device that
// is already gone is not an error, nor is a newer device that took the name:
// index says which device is meant. Only ngtap<N> tun/tap links are deleted.
func Delete(name string, index int) error {
	if !IsTapName(name) {
		return fmt.Errorf("deleting %q: not a netgrant tap name", name)
	}
	link, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if link.Attrs().Index != index {
		return nil
	}
	if link.Type() != "tuntap" {
		return fmt.Errorf("deleting %s: a %s link, not a tap", name, link.Type())
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("deleting %s: %w", name, err)
	}
	return nil
}

// SetMTU changes the MTU of tap name (device index), as when a caller's mtu
// must win over the bridge's that attaching imposed.
func SetMTU(name string, index, mtu int) error {
	link, err := netlink.LinkByIndex(index)
	if err != nil {
		return fmt.Errorf("looking up %s: %w", name, err)
	}
	if link.Attrs().Name != name {
		return fmt.Errorf("setting MTU of %s: the device is gone", name)
	}
	if err := netlink.LinkSetMTU(link, mtu); err != nil {
		return fmt.Errorf("setting MTU of %s to %d: %w", name, mtu, err)
	}
	return nil
}

// State is what the holder of a tap's fds can change about it.
type State struct {
	Persistent bool   // TUNSETPERSIST: the device outlives its fds
	Owner      uint32 // TUNSETOWNER
}

// Inspect reads the state of tap name (device index); ok is false when
// that device is gone.
func Inspect(name string, index int) (state State, ok bool) {
	link, err := netlink.LinkByIndex(index)
	if err != nil || link.Attrs().Name != name {
		return State{}, false
	}
	tt, isTap := link.(*netlink.Tuntap)
	if !isTap {
		return State{}, false
	}
	return State{Persistent: !tt.NonPersist, Owner: tt.Owner}, true
}
