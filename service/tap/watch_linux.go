package tap

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/vishvananda/netlink"

	"github.com/netgrant/netgrant/service/nldump"
	"golang.org/x/sys/unix"
)

// A forced large receive buffer keeps bursts of link events (every tap
// creation brings several) from overflowing the subscription socket.
const subscriptionBuffer = 4 << 20

// Events are what Watch reports, in the order the kernel told them.
type Events struct {
	// Gone: the kernel removed tap name (device index), normally because
	// its last fd closed.
	Gone func(name string, index int)
	// Changed: tap name (device index) became persistent or changed hands
	// (TUNSETPERSIST, TUNSETOWNER, TUNSETGROUP), or was seen for the first
	// time. Read the device's state when handling it: the event may be an
	// old one.
	Changed func(name string, index int)
}

// Watch reports the ngtap<N> links' removals and changes of ownership and
// persistence until ctx is done; no call starts after that. It returns once
// the netlink subscription is in place: every tap that exists then or is
// created later is reported when it goes. The callbacks run on a goroutine
// of their own and may take their time. Should the subscription be lost,
// it is re-established and the taps known before that have vanished
// meanwhile are reported then; a tap created and removed entirely within
// such a gap cannot be.
func Watch(ctx context.Context, events Events) error {
	w := &watcher{taps: map[int32]seenTap{}, queue: newEventQueue()}
	updates, stop, err := w.subscribe(ctx)
	if err != nil {
		return err
	}
	go w.queue.deliver(ctx, events)
	go w.run(ctx, updates, stop)
	return nil
}

type watcher struct {
	// taps are the ngtap links alive as far as the events tell, by ifindex:
	// a name can come back as a new device before its removal is read.
	taps  map[int32]seenTap
	queue *eventQueue
}

// seenTap is what the events last said of a tap.
type seenTap struct {
	name         string
	persistent   bool
	owner, group uint32
}

func seen(link netlink.Link) seenTap {
	s := seenTap{name: link.Attrs().Name}
	if tt, ok := link.(*netlink.Tuntap); ok {
		s.persistent, s.owner, s.group = !tt.NonPersist, tt.Owner, tt.Group
	}
	return s
}

// subscribe opens a link subscription and then lists the links, so no tap
// falls between the two. Known taps missing from the list were removed
// while no subscription was open. The subscription ends with ctx or when
// stop is called.
func (w *watcher) subscribe(ctx context.Context) (updates <-chan netlink.LinkUpdate, stop func(), err error) {
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
				slog.Warn("tap watch: link subscription", "err", err)
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
	present := map[int32]seenTap{}
	for _, link := range links {
		if name := link.Attrs().Name; IsTapName(name) {
			index := int32(link.Attrs().Index)
			present[index] = seen(link)
			if present[index] != w.taps[index] {
				w.queue.push(event{changed: true, name: name, index: int(index)})
			}
		}
	}
	for index, known := range w.taps {
		if present[index].name != known.name {
			w.queue.push(event{name: known.name, index: int(index)})
		}
	}
	w.taps = present
	return ch, stop, nil
}

func (w *watcher) run(ctx context.Context, updates <-chan netlink.LinkUpdate, stop func()) {
	nldump.Follow(ctx, "tap watch", w.subscribe, updates, stop, w.handle)
}

func (w *watcher) handle(u netlink.LinkUpdate) {
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
			w.queue.push(event{name: known.name, index: int(u.Index)})
		}
	case IsTapName(name):
		now := seen(u.Link)
		if w.taps[u.Index] != now {
			w.taps[u.Index] = now
			w.queue.push(event{changed: true, name: name, index: int(u.Index)})
		}
	default:
		// renamed away from ngtap<N>: no longer ours to report
		delete(w.taps, u.Index)
	}
}

// event is a tap gone from the kernel, or changed. The index tells it from
// a newer device that took the same name meanwhile.
type event struct {
	changed bool
	name    string
	index   int
}

// eventQueue hands events to the callbacks in order without ever blocking
// the event reader: a slow callback must not make the socket overflow.
type eventQueue struct {
	mu     sync.Mutex
	events []event
	ready  chan struct{}
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

func (q *eventQueue) push(e event) {
	q.mu.Lock()
	q.events = append(q.events, e)
	q.mu.Unlock()
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

func (q *eventQueue) deliver(ctx context.Context, events Events) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.ready:
		}
		q.mu.Lock()
		batch := q.events
		q.events = nil
		q.mu.Unlock()
		for _, e := range batch {
			if ctx.Err() != nil {
				return
			}
			if e.changed {
				events.Changed(e.name, e.index)
			} else {
				events.Gone(e.name, e.index)
			}
		}
	}
}
