package neigh

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/service/nldump"
)

// subscriptionBuffer keeps a guest's burst of neighbour solicitations from
// overflowing the socket; an overflow costs a fresh dump, nothing else.
const subscriptionBuffer = 1 << 20

// usable are the states in which an entry names the MAC really using the
// address; INCOMPLETE and FAILED entries name none.
const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// Watcher knows every link's IPv6 neighbours other than link-local ones.
type Watcher struct {
	table *table

	mu      sync.Mutex
	pending map[int]bool // links changed since changed last ran for them
	ready   chan struct{}
}

// Watch follows the neighbour table until ctx ends, and returns once the
// subscription is in place and the table read. changed tells that link's
// entries changed, with what Addrs says of them then; it runs on a
// goroutine of its own, may take its time, and is told of a link once
// however many changes came meanwhile.
func Watch(ctx context.Context, changed func(link int, byMAC map[string][]netip.Addr)) (*Watcher, error) {
	w := &Watcher{table: newTable(), pending: map[int]bool{}, ready: make(chan struct{}, 1)}
	updates, stop, err := w.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	go w.deliver(ctx, changed)
	go w.run(ctx, updates, stop)
	return w, nil
}

// Addrs lists link's IPv6 neighbours by MAC, at most MaxPerMAC each, the
// earliest seen first.
func (w *Watcher) Addrs(link int) map[string][]netip.Addr { return w.table.byMAC(link) }

// subscribe opens a subscription and then dumps the table, so that no
// change falls between the two.
func (w *Watcher) subscribe(ctx context.Context) (<-chan netlink.NeighUpdate, func(), error) {
	ch := make(chan netlink.NeighUpdate, 256)
	done := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(done) }) }
	context.AfterFunc(ctx, stop)
	err := netlink.NeighSubscribeWithOptions(ch, done, netlink.NeighSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-done:
			default:
				slog.Warn("neighbour watch: subscription", "err", err)
			}
		},
		ReceiveBufferSize:      subscriptionBuffer,
		ReceiveBufferForceSize: true,
	})
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("subscribing to neighbour events: %w", err)
	}
	list, err := nldump.Retry(func() ([]netlink.Neigh, error) { return netlink.NeighList(0, netlink.FAMILY_V6) })
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("listing IPv6 neighbours: %w", err)
	}
	present := map[int]map[netip.Addr]string{}
	for _, n := range list {
		if addr, mac, ok := guestEntry(n); ok && mac != "" {
			if present[n.LinkIndex] == nil {
				present[n.LinkIndex] = map[netip.Addr]string{}
			}
			present[n.LinkIndex][addr] = mac
		}
	}
	w.notify(w.table.replace(present)...)
	return ch, stop, nil
}

// guestEntry reads n as an address and the MAC using it ("" when the
// entry names none); ok is false for entries of no interest.
func guestEntry(n netlink.Neigh) (addr netip.Addr, mac string, ok bool) {
	if n.Family != unix.AF_INET6 {
		return netip.Addr{}, "", false
	}
	addr, ok = netip.AddrFromSlice(n.IP)
	if !ok || addr.Is4In6() || !addr.IsGlobalUnicast() {
		// link-local, multicast, loopback, unspecified
		return netip.Addr{}, "", false
	}
	if n.State&usable != 0 && len(n.HardwareAddr) == 6 {
		mac = n.HardwareAddr.String()
	}
	return addr, mac, true
}

func (w *Watcher) run(ctx context.Context, updates <-chan netlink.NeighUpdate, stop func()) {
	nldump.Follow(ctx, "neighbour watch", w.subscribe, updates, stop, w.handle)
}

func (w *Watcher) handle(u netlink.NeighUpdate) {
	addr, mac, ok := guestEntry(u.Neigh)
	if !ok {
		return
	}
	if u.Type == unix.RTM_DELNEIGH {
		mac = ""
	}
	if w.table.set(u.LinkIndex, addr, mac) {
		w.notify(u.LinkIndex)
	}
}

func (w *Watcher) notify(links ...int) {
	if len(links) == 0 {
		return
	}
	w.mu.Lock()
	for _, link := range links {
		w.pending[link] = true
	}
	w.mu.Unlock()
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

func (w *Watcher) deliver(ctx context.Context, changed func(int, map[string][]netip.Addr)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.ready:
		}
		w.mu.Lock()
		links := w.pending
		w.pending = map[int]bool{}
		w.mu.Unlock()
		for link := range links {
			if ctx.Err() != nil {
				return
			}
			changed(link, w.Addrs(link))
		}
	}
}
