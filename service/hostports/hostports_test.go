package hostports

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 100 0 0 10 0
   2: 0164A8C0:1F90 0264A8C0:D431 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
   3: 0164A8C0:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 100 0 0 10 0
`

const tcp6Table = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 100 0 0 10 0
   1: 0000000000000000FFFF00000164A8C0:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 6 1 0000000000000000 100 0 0 10 0
`

func TestParse(t *testing.T) {
	for _, c := range []struct {
		table, proto string
		port         uint16
		want         []string
	}{
		// An established connection on the port is not a listener.
		// The process's own sockets (inode 2 here) are left out.
		{tcpTable, "tcp", 8080, []string{"0.0.0.0:8080"}},
		{tcpTable, "tcp", 80, []string{"192.168.100.1:80"}},
		{tcpTable, "tcp", 443, nil},
		// UDP has no listening state: every bound socket counts.
		{tcpTable, "udp", 8080, []string{"0.0.0.0:8080", "192.168.100.1:8080"}},
		{tcp6Table, "tcp", 8080, []string{"[::]:8080"}},
		{tcp6Table, "tcp", 80, []string{"[::ffff:192.168.100.1]:80"}},
	} {
		got, err := parse(strings.NewReader(c.table), c.proto, c.port, map[string]bool{"2": true})
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, a := range got {
			s = append(s, a.String())
		}
		if !slices.Equal(s, c.want) {
			t.Errorf("%s port %d: got %v, want %v", c.proto, c.port, s, c.want)
		}
	}
}

func TestParseRefusesGarbage(t *testing.T) {
	if _, err := parse(strings.NewReader("h\n 0: 0100:ZZ 0:0 0A\n"), "tcp", 1, nil); err == nil {
		t.Error("an unreadable line was accepted")
	}
}

func TestClashes(t *testing.T) {
	any4, one, other := netip.Addr{}, netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.9")
	for _, c := range []struct {
		local string
		addr  netip.Addr
		want  bool
	}{
		{"0.0.0.0:80", any4, true},
		{"0.0.0.0:80", one, true},
		{"[::]:80", one, true},
		{"127.0.0.1:80", any4, true},
		{"127.0.0.1:80", one, false},
		{"[::1]:80", any4, false},
		{"198.51.100.1:80", any4, true},
		{"198.51.100.1:80", one, true},
		{"198.51.100.1:80", other, false},
		{"[::ffff:198.51.100.1]:80", one, true},
		{"[2001:db8::1]:80", any4, false},
	} {
		if got := Clashes(netip.MustParseAddrPort(c.local), c.addr); got != c.want {
			t.Errorf("Clashes(%s, %v) = %v, want %v", c.local, c.addr, got, c.want)
		}
	}
}
