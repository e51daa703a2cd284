package hostports

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Sockets returns the local addresses of the sockets of this network
// namespace that hold port: listening ones for "tcp", bound ones for
// "udp", over IPv4 and IPv6; the calling process's own (forwards' ports
// it holds) are left out.
func Sockets(proto string, port uint16) ([]netip.AddrPort, error) {
	own, err := ownSockets()
	if err != nil {
		return nil, err
	}
	var all []netip.AddrPort
	for _, table := range []string{proto, proto + "6"} {
		f, err := os.Open("/proc/net/" + table)
		if errors.Is(err, fs.ErrNotExist) {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, err
		}
		found, err := parse(f, proto, port, own)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading /proc/net/%s: %w", table, err)
		}
		all = append(all, found...)
	}
	return all, nil
}

// ownSockets are the inodes of this process's sockets, as /proc/net
// lists them.
func ownSockets() (map[string]bool, error) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil, fmt.Errorf("listing own fds: %w", err)
	}
	own := map[string]bool{}
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if inode, ok := strings.CutPrefix(target, "socket:["); err == nil && ok {
			own[strings.TrimSuffix(inode, "]")] = true
		}
	}
	return own, nil
}

// ErrInUse says a port is held by a socket on the host.
var ErrInUse = errors.New("the port is in use")

// Hold takes port for proto ("tcp" or "udp") on addr (invalid: every IPv4
// address) with a socket bound there that nothing ever reads, and returns
// it; closing it gives the port back. It is bound without SO_REUSEADDR,
// so a program that binds the port later fails with EADDRINUSE, even one
// that sets SO_REUSEADDR. The TCP socket never listens, so connections
// that reach it rather than the forward (to loopback) are refused as
// before; the UDP one takes nothing, by a filter that keeps no datagram.
func Hold(proto string, addr netip.Addr, port uint16) (*os.File, error) {
	kind := unix.SOCK_STREAM
	if proto == "udp" {
		kind = unix.SOCK_DGRAM
	}
	fd, err := unix.Socket(unix.AF_INET, kind|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("holding %s port %d: %w", proto, port, err)
	}
	sock := os.NewFile(uintptr(fd), proto+" port "+strconv.Itoa(int(port)))
	if proto == "udp" {
		takeNothing := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
		if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &takeNothing[0]}); err != nil {
			sock.Close()
			return nil, fmt.Errorf("holding udp port %d: %w", port, err)
		}
	}
	sa := &unix.SockaddrInet4{Port: int(port)}
	if addr.IsValid() {
		sa.Addr = addr.As4()
	}
	if err := unix.Bind(fd, sa); err != nil {
		sock.Close()
		if errors.Is(err, unix.EADDRINUSE) {
			return nil, fmt.Errorf("%w: %s port %d", ErrInUse, proto, port)
		}
		return nil, fmt.Errorf("holding %s port %d: %w", proto, port, err)
	}
	return sock, nil
}
