package firewall

import (
	"bytes"
	"context"
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// WatchDocker calls started each time a DOCKER-USER chain appears in
// table ip filter, as when Docker starts on a host it had not run on
// since boot: netgrant's accepts belong in it at once, not at netgrant's
// next change. It returns once the watch is in place; it ends with ctx.
func WatchDocker(ctx context.Context, started func()) error {
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return fmt.Errorf("watching nftables: %w", err)
	}
	if err := conn.JoinGroup(unix.NFNLGRP_NFTABLES); err != nil {
		conn.Close()
		return fmt.Errorf("watching nftables: %w", err)
	}
	go func() {
		<-ctx.Done()
		conn.Close()
	}()
	go func() {
		for {
			msgs, err := conn.Receive()
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				// ENOBUFS: events were lost, one of them maybe Docker's.
				started()
				continue
			}
			for _, m := range msgs {
				if isDockerUserCreated(m) {
					started()
				}
			}
		}
	}()
	return nil
}

const newChainMsg = netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWCHAIN)

// isDockerUserCreated tells whether m announces chain DOCKER-USER in an
// IPv4 or IPv6 table named filter.
func isDockerUserCreated(m netlink.Message) bool {
	// The nfgenmsg header: family, version, resource id.
	if m.Header.Type != newChainMsg || len(m.Data) < 4 || (m.Data[0] != unix.NFPROTO_IPV4 && m.Data[0] != unix.NFPROTO_IPV6) {
		return false
	}
	attrs, err := netlink.UnmarshalAttributes(m.Data[4:])
	if err != nil {
		return false
	}
	var table, chain []byte
	for _, a := range attrs {
		switch a.Type {
		case unix.NFTA_CHAIN_TABLE:
			table = a.Data
		case unix.NFTA_CHAIN_NAME:
			chain = a.Data
		}
	}
	return bytes.Equal(table, []byte("filter\x00")) && bytes.Equal(chain, []byte(dockerUserChain+"\x00"))
}
