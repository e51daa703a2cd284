package tap

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/netgrant/netgrant/service/nldump"
	"golang.org/x/sys/unix"
)

// A forced large receive buffer keeps bursts of link events (every tap
// creation brings several) from overflowing the subscription socket.
const subscriptionBuffer = 4 << 20

// resubscribeDelay spaces out attempts to re-establish a lost subscription.
const resubscribeDelay = time.Second

// WatchRemovals calls gone(name, index) for each ngtap<N> link the kernel
// removes,
// in the order of removal, until ctx is done; no call starts after that.
// It returns once the netlink subscription is in place: every tap that
// exists then or is created later is reported when it goes. gone runs on a
// goroutine of its own and may take its time. Should the subscription be
// lost, it is re-established and the taps known before that have vanished
// meanwhile are reported then; a tap created and removed entirely within
// such a gap cannot be.
func WatchRemovals(ctx context.Context, gone func(name string, index int)) error {
	w := &removalWatcher{taps: map[int32]string{}, queue: newNameQueue()}
	updates, stop, err := w.subscribe(ctx)
	if err != nil {
		return err
	}
	go w.queue.deliver(ctx, gone)
	go w.run(ctx, updates, stop)
	return nil
}

type removalWatcher struct {
	// taps are the ngtap links alive as far as the events tell, by ifindex:
	// a name can come back as a new device before its removal is read.
	taps  map[int32]string
	queue *nameQueue
}

// subscribe opens a link subscription and then lists the links, so no tap
// falls between the two. Known taps missing from the list were removed
// while no subscription was open. The subscription ends with ctx or when
// stop is called.
func (w *removalWatcher) subscribe(ctx context.Context) (updates <-chan netlink.LinkUpdate, stop func(), err error) {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	var once sync.Once
	stop = func() { once.Do(func() { close(done) }) }
	context.AfterFunc(ctx, stop)
	defer func() {
		if err != nil {
			stop()
		}
	}()
	err = netlink.LinkSubscribeWithOptions(ch, done, netlink.LinkSubscribeOptions{
		ErrorCallback: func(err error) {
			select {
			case <-done: // the socket was closed on purpose
			default:
				slog.Warn("tap removal watch: link subscription", "err", err)
			}
		},
		ReceiveBufferSize:      subscriptionBuffer,
		ReceiveBufferForceSize: true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("subscribing to link events: %w", err)
	}
	links, err := nldump.Links()
	if err != nil {
		return nil, nil, fmt.Errorf("listing links: %w", err)
	}
	present := map[int32]string{}
	for _, link := range links {
		if name := link.Attrs().Name; IsTapName(name) {
			present[int32(link.Attrs().Index)] = name
		}
	}
	for index, name := range w.taps {
		if present[index] != name {
			w.queue.push(removal{name, int(index)})
		}
	}
	w.taps = present
	return ch, stop, nil
}

func (w *removalWatcher) run(ctx context.Context, updates <-chan netlink.LinkUpdate, stop func()) {
	for {
		for u := range updates {
			w.handle(u)
		}
		// The channel closes when ctx is done or the socket failed (an
		// overflow loses events); only the latter needs a new subscription.
		stop()
		for {
			if ctx.Err() != nil {
				return
			}
			var err error
			if updates, stop, err = w.subscribe(ctx); err == nil {
				break
			}
			slog.Error("tap removal watch: resubscribing", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(resubscribeDelay):
			}
		}
	}
}

func (w *removalWatcher) handle(u netlink.LinkUpdate) {
	// Bridge port changes, including a tap leaving its bridge, come as
	// AF_BRIDGE messages, RTM_DELLINK among them; only AF_UNSPEC ones are
	// about the link itself.
	if u.Family != unix.AF_UNSPEC {
		return
	}
	name := u.Link.Attrs().Name
	switch {
	case u.Header.Type == unix.RTM_DELLINK:
		if known, ok := w.taps[u.Index]; ok {
			delete(w.taps, u.Index)
			w.queue.push(removal{known, int(u.Index)})
		}
	case IsTapName(name):
		w.taps[u.Index] = name
	default:
		// renamed away from ngtap<N>: no longer ours to report
		delete(w.taps, u.Index)
	}
}

// removal is a tap gone from the kernel. The index tells it from a newer
// device that took the same name meanwhile.
type removal struct {
	name  string
	index int
}

// nameQueue hands removals to the callback in order without ever blocking
// the event reader: a slow callback must not make the socket overflow.
type nameQueue struct {
	mu    sync.Mutex
	names []removal
	ready chan struct{}
}

func newNameQueue() *nameQueue { return &nameQueue{ready: make(chan struct{}, 1)} }

func (q *nameQueue) push(r removal) {
	q.mu.Lock()
	q.names = append(q.names, r)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *nameQueue) deliver(ctx context.Context, gone func(name string, index int)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.ready:
		}
		q.mu.Lock()
		names := q.names
		q.names = nil
		q.mu.Unlock()
		for _, r := range names {
			if ctx.Err() != nil {
				return
			}
			gone(r.name, r.index)
		}
	}
}
