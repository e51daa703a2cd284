// Package hostports keeps port forwards and the host's own programs apart:
// it tells which local addresses programs on the host hold a TCP or UDP
// port on, from the kernel's socket tables in /proc/net, so that a forward
// never takes a port a program already serves, and it holds a forward's
// port for as long as the forward exists, so that a program that binds it
// later fails loudly instead of being silently shadowed.
package hostports

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// tcpListen is the st column of a listening TCP socket.
const tcpListen = "0A"

// parse reads one /proc/net/{tcp,udp}{,6} table and returns the local
// addresses of its sockets on port: for TCP only listening ones, for UDP
// every bound one; sockets whose inode skip holds are left out.
func parse(r io.Reader, proto string, port uint16, skip map[string]bool) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	scanner := bufio.NewScanner(r)
	scanner.Scan() // the header
	for scanner.Scan() {
		fields := strings.Fields(scanner.Text())
		if len(fields) < 4 {
			continue
		}
		if proto == "tcp" && fields[3] != tcpListen || len(fields) > 9 && skip[fields[9]] {
			continue
		}
		local, err := parseAddrPort(fields[1])
		if err != nil {
			return nil, err
		}
		if local.Port() == port {
			out = append(out, local)
		}
	}
	return out, scanner.Err()
}

// parseAddrPort reads the kernel's "0100007F:1F90": the address as 32-bit
// words in host (little-endian) order, the port in hex.
func parseAddrPort(s string) (netip.AddrPort, error) {
	hexAddr, hexPort, ok := strings.Cut(s, ":")
	raw, err := hex.DecodeString(hexAddr)
	if !ok || err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("unreadable socket address %q", s)
	}
	port, err := strconv.ParseUint(hexPort, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("unreadable socket port %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

// Clashes reports whether a socket on local holds the port a forward of
// the same port on addr (invalid: every address) would hold: the forward's
// own socket on addr could not be bound beside it (see Hold). A socket on
// a wildcard address, IPv4's or a dual-stack IPv6 one, clashes with all; a
// socket on one IPv4 address, loopback's included, clashes with a forward
// on every address or on that one. Other IPv6 addresses are apart: a
// forward is IPv4 only.
func Clashes(local netip.AddrPort, addr netip.Addr) bool {
	ip := local.Addr().Unmap()
	switch {
	case ip.IsUnspecified():
		return true
	case !ip.Is4():
		return false
	}
	return !addr.IsValid() || addr == ip
}
