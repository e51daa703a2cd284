// Package nldump lists kernel objects over netlink despite churn: the
// kernel interrupts a dump when the list changes under it (taps come and go
// all the time on a netgrant host), and the answer is to ask again.
package nldump

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// attempts bounds the retries: a list that changes this often in a row is
// an error worth reporting. Twenty users creating and deleting taps at
// full speed (test/soak) interrupted five dumps in a row once.
const attempts = 50

// Retry calls dump until the kernel answers without interrupting it.
func Retry[T any](dump func() ([]T, error)) ([]T, error) {
	var err error
	for range attempts {
		var list []T
		if list, err = dump(); !errors.Is(err, netlink.ErrDumpInterrupted) {
			return list, err
		}
	}
	return nil, err
}

// Links lists every link.
func Links() ([]netlink.Link, error) { return Retry(netlink.LinkList) }

// HasAddress reports whether ip is an address of one of the host's links.
func HasAddress(ip netip.Addr) (bool, error) {
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	addrs, err := Retry(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, family) })
	if err != nil {
		return false, err
	}
	for _, a := range addrs {
		if own, ok := netip.AddrFromSlice(a.IP); ok && own.Unmap() == ip {
			return true, nil
		}
	}
	return false, nil
}

// resubscribeDelay spaces out attempts to re-establish a lost subscription.
const resubscribeDelay = time.Second

// Follow hands every update of a netlink subscription to handle until ctx
// ends. A subscription the kernel closes (its socket overflowed, losing
// events) is replaced by a new one from subscribe, which must list what
// it follows after subscribing, so that nothing falls between the two;
// one that cannot be made is logged and tried again every second.
func Follow[U any](ctx context.Context, what string, subscribe func(context.Context) (<-chan U, func(), error), updates <-chan U, stop func(), handle func(U)) {
	for {
		for u := range updates {
			handle(u)
		}
		stop()
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if updates, stop, err = subscribe(ctx); err == nil {
				break
			}
			slog.Error(what+": resubscribing", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(resubscribeDelay):
			}
		}
	}
}
