package hostports

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
)

// Sockets returns the local addresses of the sockets of this network
// namespace that hold port: listening ones for "tcp", bound ones for
// "udp", over IPv4 and IPv6.
func Sockets(proto string, port uint16) ([]netip.AddrPort, error) {
	var all []netip.AddrPort
	for _, table := range []string{proto, proto + "6"} {
		f, err := os.Open("/proc/net/" + table)
		if errors.Is(err, fs.ErrNotExist) {
			continue // IPv6 disabled
		}
		if err != nil {
			return nil, err
		}
		found, err := parse(f, proto, port)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading /proc/net/%s: %w", table, err)
		}
		all = append(all, found...)
	}
	return all, nil
}
