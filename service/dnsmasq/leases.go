package dnsmasq

import (
	"bufio"
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Lease is one DHCP lease dnsmasq granted.
type Lease struct {
	MAC      string    // lower-case, colon-separated
	IP       string    // IPv4, dotted quad
	Hostname string    // "" when the client sent none
	Expiry   time.Time // zero for an infinite lease
}

// maxLeaseFileSize bounds what is read of a lease file: dnsmasq runs as a
// user of its own, and a compromised one must not make netgrantd read
// without end. A /22's leases take well under this.
const maxLeaseFileSize = 1 << 20

// maxHostnameLen is the longest hostname published (one DNS label).
const maxHostnameLen = 63

// parseLeases reads dnsmasq's lease file: one lease a line,
// "<expiry epoch> <mac> <ip> <hostname|*> <client-id|*>". Lines it cannot
// use are skipped: DHCPv6 entries and the "duid" line, hardware types other
// than Ethernet, addresses outside subnet, and a last line dnsmasq has not
// finished writing. The file is the guests' word (through dnsmasq), so at
// most one lease per address is kept, which bounds the leases by the
// subnet's size, and a hostname that is not a plain host name is dropped.
func parseLeases(data []byte, subnet netip.Prefix) []Lease {
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i+1]
	} else {
		data = nil
	}
	var leases []Lease
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l, ok := parseLease(sc.Text())
		if !ok || seen[l.IP] || !subnet.Contains(netip.MustParseAddr(l.IP)) {
			continue
		}
		seen[l.IP] = true
		leases = append(leases, l)
	}
	return leases
}

// validHostname accepts what DNS accepts as a host's own name, one label
// of letters, digits, '-' and '_' (Windows guests use it), neither first
// nor last a '-': text that is safe to show and to put in a D-Bus string.
func validHostname(name string) bool {
	if name == "" || len(name) > maxHostnameLen || name[0] == '-' || name[len(name)-1] == '-' {
		return false
	}
	for _, c := range []byte(name) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func parseLease(line string) (Lease, bool) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return Lease{}, false
	}
	epoch, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil || epoch < 0 {
		return Lease{}, false
	}
	mac, err := net.ParseMAC(f[1])
	if err != nil || len(mac) != 6 {
		return Lease{}, false
	}
	ip, err := netip.ParseAddr(f[2])
	if err != nil || !ip.Is4() {
		return Lease{}, false
	}
	l := Lease{MAC: mac.String(), IP: ip.String()}
	if validHostname(f[3]) {
		l.Hostname = f[3]
	}
	if epoch != 0 {
		l.Expiry = time.Unix(epoch, 0)
	}
	return l, true
}

// current drops the leases expired at now and orders the rest by address,
// so that two snapshots of the same leases compare equal.
func current(leases []Lease, now time.Time) []Lease {
	var live []Lease
	for _, l := range leases {
		if l.Expiry.IsZero() || l.Expiry.After(now) {
			live = append(live, l)
		}
	}
	slices.SortFunc(live, func(a, b Lease) int {
		return cmp.Or(
			netip.MustParseAddr(a.IP).Compare(netip.MustParseAddr(b.IP)),
			strings.Compare(a.MAC, b.MAC),
			strings.Compare(a.Hostname, b.Hostname),
		)
	})
	return live
}

// sameGuests reports whether a and b hold the same (MAC, IP, hostname)
// triples. A renewal that only moves the expiry is no news to anyone.
func sameGuests(a, b []Lease) bool {
	return slices.EqualFunc(a, b, func(x, y Lease) bool {
		return x.MAC == y.MAC && x.IP == y.IP && x.Hostname == y.Hostname
	})
}

// nextExpiry is the earliest finite expiry among leases, or zero.
func nextExpiry(leases []Lease) time.Time {
	var next time.Time
	for _, l := range leases {
		if !l.Expiry.IsZero() && (next.IsZero() || l.Expiry.Before(next)) {
			next = l.Expiry
		}
	}
	return next
}
