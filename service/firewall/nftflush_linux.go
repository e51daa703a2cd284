package firewall

import (
	"bytes"
	"fmt"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// google/nftables v0.3.0 encodes "masquerade to :1024-65535" without the
// NF_NAT_RANGE_PROTO_SPECIFIED flag that nft(8) sends, and without it the
// kernel ignores the port range: a guest's connection from port 80 would
// leave the host from port 80. Newer versions of the module are not
// available here, so netgrant's connections pass their batch through
// masqPortsFix, which adds the flag on its way to the kernel; the batch is
// otherwise sent and acknowledged exactly as google/nftables would.

// newPatchedConn returns an nftables connection whose batches reach the
// kernel through masqPortsFix, and a function that closes it.
func newPatchedConn() (*nftables.Conn, func() error, error) {
	kernel, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	if err := sizeForBatches(kernel); err != nil {
		kernel.Close()
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	relay := func(req []netlink.Message) ([]netlink.Message, error) {
		if req == nil {
			// google/nftables reads one reply at a time, as from the socket.
			return kernel.Receive()
		}
		_, err := kernel.SendMessages(withoutEcho(masqPortsFix(req)))
		return nil, err
	}
	conn, err := nftables.New(nftables.WithTestDial(relay))
	if err != nil {
		kernel.Close()
		return nil, nil, fmt.Errorf("nftables: %w", err)
	}
	return conn, kernel.Close, nil
}

// batchBufferBytes bounds one transaction: the rules of some 2,000 guests.
const batchBufferBytes = 32 << 20

// sizeForBatches lets a whole table go to the kernel in one sendmsg, as
// nft(8) does, and has every ack come without a copy of the request it
// answers, so that a batch of thousands of rules neither exceeds the
// socket's send buffer (EMSGSIZE) nor overruns its receive buffer
// (ENOBUFS). The buffers grow only as far as they are used.
func sizeForBatches(conn *netlink.Conn) error {
	if err := conn.SetOption(netlink.CapAcknowledge, true); err != nil {
		return err
	}
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, batchBufferBytes)
		if sockErr == nil {
			sockErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, batchBufferBytes)
		}
	})
	if err != nil {
		return err
	}
	return sockErr
}

const newRuleMsg = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWRULE)

// withoutEcho stops the kernel from sending every new rule back: the
// echoes, which tell google/nftables the rules' handles, are of no use to
// netgrant, which never changes a rule by its handle, and a batch of a few
// hundred rules overruns the socket's buffer with them (ENOBUFS).
func withoutEcho(msgs []netlink.Message) []netlink.Message {
	for i, m := range msgs {
		if m.Header.Type == newRuleMsg {
			msgs[i].Header.Flags &^= unix.NLM_F_ECHO
		}
	}
	return msgs
}

// masqPortsFix adds NF_NAT_RANGE_PROTO_SPECIFIED to every masq expression
// of the batch's new rules that maps ports.
func masqPortsFix(msgs []netlink.Message) []netlink.Message {
	for i, m := range msgs {
		if m.Header.Type != newRuleMsg || len(m.Data) < 4 {
			continue
		}
		if fixed, ok := fixRule(m.Data[4:]); ok {
			msgs[i].Data = append(append([]byte{}, m.Data[:4]...), fixed...)
			// Counted again when sent, for the longer data.
			msgs[i].Header.Length = 0
		}
	}
	return msgs
}

func fixRule(data []byte) ([]byte, bool) {
	attrs, err := netlink.UnmarshalAttributes(data)
	if err != nil {
		return nil, false
	}
	changed := false
	for i, a := range attrs {
		if a.Type&^unix.NLA_F_NESTED != unix.NFTA_RULE_EXPRESSIONS {
			continue
		}
		elems, err := netlink.UnmarshalAttributes(a.Data)
		if err != nil {
			return nil, false
		}
		for j, e := range elems {
			if fixed, ok := fixMasq(e.Data); ok {
				elems[j].Data, elems[j].Length, changed = fixed, 0, true
			}
		}
		// A zero Length makes MarshalAttributes count it again.
		attrs[i].Length = 0
		if attrs[i].Data, err = netlink.MarshalAttributes(elems); err != nil {
			return nil, false
		}
	}
	if !changed {
		return nil, false
	}
	out, err := netlink.MarshalAttributes(attrs)
	return out, err == nil
}

// fixMasq takes one list element (an expression) and returns it with the
// flag added, if it is a masq with a port range and no flags yet.
func fixMasq(elem []byte) ([]byte, bool) {
	attrs, err := netlink.UnmarshalAttributes(elem)
	if err != nil {
		return nil, false
	}
	isMasq := false
	data := -1
	for i, a := range attrs {
		switch a.Type &^ unix.NLA_F_NESTED {
		case unix.NFTA_EXPR_NAME:
			isMasq = bytes.Equal(a.Data, []byte("masq\x00"))
		case unix.NFTA_EXPR_DATA:
			data = i
		}
	}
	if !isMasq || data < 0 {
		return nil, false
	}
	params, err := netlink.UnmarshalAttributes(attrs[data].Data)
	if err != nil {
		return nil, false
	}
	ports := false
	for _, p := range params {
		switch p.Type {
		case unix.NFTA_MASQ_FLAGS:
			return nil, false
		case unix.NFTA_MASQ_REG_PROTO_MIN:
			ports = true
		}
	}
	if !ports {
		return nil, false
	}
	params = append(params, netlink.Attribute{Type: unix.NFTA_MASQ_FLAGS,
		Data: binaryutil.BigEndian.PutUint32(unix.NF_NAT_RANGE_PROTO_SPECIFIED)})
	attrs[data].Length = 0
	if attrs[data].Data, err = netlink.MarshalAttributes(params); err != nil {
		return nil, false
	}
	out, err := netlink.MarshalAttributes(attrs)
	return out, err == nil
}
