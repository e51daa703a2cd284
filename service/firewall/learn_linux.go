package firewall

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// A tap created with learn_mac learns its guest's MAC from the first frame
// the guest sends (a bridge helper run by libvirt cannot know it). Until
// then its chain lets nothing through: it hands each frame of the kinds a
// booting guest sends first (DHCP, an ARP probe, IPv6 duplicate address
// detection and router solicitation) to netgrantd over NFLOG and drops it;
// netgrantd takes the frame's source MAC, if no other guest of the network
// has it, as the guest's, and the chain becomes the guest's filter. A
// guest that never gets its MAC learnt never reaches anyone, and the
// frame that taught it is sent again by the guest (DHCP and router
// solicitations are retried; a duplicate address probe that meets silence
// succeeds).

// LearnGroup is the NFLOG group learning taps log to: netgrantd alone
// listens to it.
const LearnGroup = 0x6e67 // "ng"

// learnRate bounds the frames a learning tap logs per second, so that a
// guest cannot keep netgrantd busy while it is taught nothing.
const learnRate = 20

// nfnetlink_log's messages and attributes
// (include/uapi/linux/netfilter/nfnetlink_log.h).
const (
	nfulnlMsgPacket    = 0
	nfulnlMsgConfig    = 1
	nfulaIfindexPhysin = 6
	nfulaHWAddr        = 8
	nfulaCfgCmd        = 1
	nfulaCfgMode       = 2
	nfulnlCfgCmdBind   = 1
	nfulnlCfgCmdUnbind = 2
	nfulnlCopyMeta     = 1
)

// Learner hears the frames learning taps log.
type Learner struct {
	conn *netlink.Conn
}

// ListenLearning binds LearnGroup. Only one process of a network
// namespace may: a second netgrantd, or anyone else there first, is an
// error saying so.
func ListenLearning() (*Learner, error) {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return nil, fmt.Errorf("learning guests' MACs: %w", err)
	}
	l := &Learner{conn: conn}
	if err := l.config(nfulnlCfgCmdBind); err != nil {
		conn.Close()
		if errors.Is(err, unix.EBUSY) {
			return nil, fmt.Errorf("learning guests' MACs: NFLOG group %d is taken by another process", LearnGroup)
		}
		return nil, fmt.Errorf("learning guests' MACs: binding NFLOG group %d: %w", LearnGroup, err)
	}
	return l, nil
}

// config sends a configuration command for LearnGroup, asking for the
// packets' metadata only: the MAC comes with it.
func (l *Learner) config(cmd byte) error {
	ae := netlink.NewAttributeEncoder()
	ae.Bytes(nfulaCfgCmd, []byte{cmd})
	if cmd == nfulnlCfgCmdBind {
		mode := make([]byte, 6)
		mode[4] = nfulnlCopyMeta
		ae.Bytes(nfulaCfgMode, mode)
	}
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	_, err = l.conn.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8 | nfulnlMsgConfig), Flags: netlink.Request | netlink.Acknowledge},
		Data:   append(nfgenmsg(), attrs...),
	})
	return err
}

// nfgenmsg is nfnetlink's header for LearnGroup: family, version, and the
// group as its resource id, big-endian.
func nfgenmsg() []byte {
	return binary.BigEndian.AppendUint16([]byte{unix.AF_UNSPEC, unix.NFNETLINK_V0}, LearnGroup)
}

// Run calls learned with the interface a logged frame came in on and its
// source MAC, for each frame, until ctx ends or Close.
func (l *Learner) Run(ctx context.Context, learned func(ifindex int, mac net.HardwareAddr)) {
	stop := context.AfterFunc(ctx, func() { l.conn.Close() })
	defer stop()
	for {
		msgs, err := l.conn.Receive()
		if err != nil {
			var opErr *netlink.OpError
			if errors.As(err, &opErr) && errors.Is(opErr.Err, unix.ENOBUFS) {
				continue // frames dropped for want of room: the guest sends again
			}
			return
		}
		for _, m := range msgs {
			if ifindex, mac, ok := parseLogged(m); ok {
				learned(ifindex, mac)
			}
		}
	}
}

// Close unbinds the group and ends Run.
func (l *Learner) Close() error {
	l.config(nfulnlCfgCmdUnbind)
	return l.conn.Close()
}

// parseLogged reads a logged frame's source MAC and the bridge port it
// came in on (for the bridge family the input interface is the bridge,
// and the port the "physical" input interface).
func parseLogged(m netlink.Message) (int, net.HardwareAddr, bool) {
	if m.Header.Type != netlink.HeaderType(unix.NFNL_SUBSYS_ULOG<<8|nfulnlMsgPacket) || len(m.Data) < 4 {
		return 0, nil, false
	}
	ad, err := netlink.NewAttributeDecoder(m.Data[4:])
	if err != nil {
		return 0, nil, false
	}
	ad.ByteOrder = binary.BigEndian
	var ifindex int
	var mac net.HardwareAddr
	for ad.Next() {
		switch ad.Type() {
		case nfulaIfindexPhysin:
			ifindex = int(ad.Uint32())
		case nfulaHWAddr:
			// struct nfulnl_msg_packet_hw: length, padding, address.
			hw := ad.Bytes()
			if len(hw) >= 4 {
				if n := int(binary.BigEndian.Uint16(hw)); n == 6 && len(hw) >= 4+n {
					mac = net.HardwareAddr(append([]byte(nil), hw[4:4+n]...))
				}
			}
		}
	}
	if ad.Err() != nil || ifindex == 0 || mac == nil {
		return 0, nil, false
	}
	return ifindex, mac, true
}
