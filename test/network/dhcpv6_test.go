package network_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// DHCPv6 (RFC 8415): what a stateless client sends and reads.
const (
	dhcp6InformationRequest = 11
	dhcp6Reply              = 7
	dhcp6OptionRequest      = 6
	dhcp6ElapsedTime        = 8
	dhcp6DNSServers         = 23
)

// dhcp6DNS asks the network's DHCPv6 server, as a stateless client in
// network namespace ns does, for the DNS servers, from eth0's link-local
// address to All_DHCP_Relay_Agents_and_Servers, and returns them.
func dhcp6DNS(t *testing.T, ns string) []netip.Addr {
	t.Helper()
	var servers []netip.Addr
	var err error
	inNetns(t, ns, func() { servers, err = informationRequest() })
	if err != nil {
		t.Fatalf("stateless DHCPv6 from %s: %v", ns, err)
	}
	return servers
}

func informationRequest() ([]netip.Addr, error) {
	conn, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6unspecified, Port: 546})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	msg := []byte{dhcp6InformationRequest, 0x4e, 0x47, 0x01}
	msg = binary.BigEndian.AppendUint16(msg, dhcp6OptionRequest)
	msg = binary.BigEndian.AppendUint16(msg, 2)
	msg = binary.BigEndian.AppendUint16(msg, dhcp6DNSServers)
	msg = binary.BigEndian.AppendUint16(msg, dhcp6ElapsedTime)
	msg = binary.BigEndian.AppendUint16(msg, 2)
	msg = binary.BigEndian.AppendUint16(msg, 0)
	to := &net.UDPAddr{IP: net.ParseIP("ff02::1:2"), Port: 547, Zone: "eth0"}
	buf := make([]byte, 1500)
	// UDP may lose a datagram; a client asks again, as RFC 8415 has it.
	for attempt := 0; attempt < 5; attempt++ {
		if _, err := conn.WriteToUDP(msg, to); err != nil {
			return nil, err
		}
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			continue
		}
		if n >= 4 && buf[0] == dhcp6Reply && string(buf[1:4]) == string(msg[1:4]) {
			return dnsServers(buf[4:n]), nil
		}
	}
	return nil, errNoReply
}

var errNoReply = &net.OpError{Op: "read", Net: "udp6", Err: net.UnknownNetworkError("no DHCPv6 reply")}

func dnsServers(options []byte) []netip.Addr {
	var servers []netip.Addr
	for len(options) >= 4 {
		code, length := binary.BigEndian.Uint16(options), int(binary.BigEndian.Uint16(options[2:]))
		if len(options) < 4+length {
			break
		}
		if code == dhcp6DNSServers {
			for v := options[4 : 4+length]; len(v) >= 16; v = v[16:] {
				servers = append(servers, netip.AddrFrom16([16]byte(v[:16])))
			}
		}
		options = options[4+length:]
	}
	return servers
}
