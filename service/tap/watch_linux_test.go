package tap

import (
	"context"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/nstest"
)

// watch starts Watch for the test and returns the names reported gone.
func watch(t *testing.T) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	gone := make(chan string, 100)
	if err := Watch(ctx, goneOnly(func(name string, _ int) { gone <- name })); err != nil {
		t.Fatalf("Watch: %v", err)
	}
	return gone
}

// nextGone returns the next reported name; the timeout only keeps a missing
// report from hanging the test.
func nextGone(t *testing.T, gone <-chan string) string {
	t.Helper()
	select {
	case name := <-gone:
		return name
	case <-time.After(10 * time.Second):
		t.Fatal("no removal reported")
		return ""
	}
}

func goneOnly(gone func(string, int)) Events {
	return Events{Gone: gone, Changed: func(string, int) {}}
}

func TestWatchReportsRemovals(t *testing.T) {
	nstest.Require(t)
	existing := create(t, Config{Queues: 1})
	gone := watch(t)

	closeAll(existing)
	if name := nextGone(t, gone); name != existing.Name {
		t.Fatalf("reported %s, want %s (fds closed)", name, existing.Name)
	}

	deleted := create(t, Config{Queues: 2})
	if err := Delete(deleted.Name, deleted.Index); err != nil {
		t.Fatal(err)
	}
	if name := nextGone(t, gone); name != deleted.Name {
		t.Fatalf("reported %s, want %s (deleted)", name, deleted.Name)
	}
}

func TestWatchIgnoresBridgeDetachAndOtherLinks(t *testing.T) {
	nstest.Require(t)
	gone := watch(t)
	dev := create(t, Config{Queues: 1})
	run(t, "ip", "link", "add", "ngbr0", "type", "bridge")
	run(t, "ip", "link", "set", dev.Name, "master", "ngbr0")
	run(t, "ip", "link", "set", dev.Name, "nomaster")
	run(t, "ip", "link", "del", "ngbr0")

	// Reports come in order of removal, so a wrong report for any of the
	// above would come before this one.
	marker := create(t, Config{Queues: 1})
	closeAll(marker)
	if name := nextGone(t, gone); name != marker.Name {
		t.Fatalf("reported %s, want only %s", name, marker.Name)
	}
	if !linkExists(t, dev.Name) {
		t.Fatalf("%s vanished on leaving its bridge", dev.Name)
	}
}

func TestWatchResubscribeReportsMissedRemovals(t *testing.T) {
	nstest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dev := create(t, Config{Queues: 1})
	w := &watcher{taps: map[int32]seenTap{}, queue: newEventQueue()}
	_, stop, err := w.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	// The tap goes while no subscription is open: only the next
	// subscription's listing can tell.
	closeAll(dev)
	gone := make(chan string, 10)
	go w.queue.deliver(ctx, goneOnly(func(name string, _ int) { gone <- name }))
	_, stop, err = w.subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if name := nextGone(t, gone); name != dev.Name {
		t.Fatalf("reported %s, want %s", name, dev.Name)
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	nstest.Require(t)
	ctx, cancel := context.WithCancel(context.Background())
	reported := make(chan string, 10)
	if err := Watch(ctx, goneOnly(func(name string, _ int) { reported <- name })); err != nil {
		t.Fatal(err)
	}
	cancel()
	dev := create(t, Config{Queues: 1})
	closeAll(dev)
	// A watcher still running would report dev to this second one's
	// channel as well; check the order in which the live one sees it.
	gone := watch(t)
	marker := create(t, Config{Queues: 1})
	closeAll(marker)
	nextGone(t, gone)
	select {
	case name := <-reported:
		t.Fatalf("cancelled watcher reported %s", name)
	default:
	}
}
