package dbus

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netgrant/netgrant/service"
)

// admitted reports which of turns have returned from acquire by now; each
// turn reports once.
func admitted(turns map[int]chan error) []int {
	var got []int
	for i := range len(turns) {
		select {
		case err := <-turns[i]:
			if err == nil {
				got = append(got, i)
			}
		default:
		}
	}
	return got
}

func waitAdmitted(t *testing.T, turns map[int]chan error, want int) {
	t.Helper()
	select {
	case err := <-turns[want]:
		if err != nil {
			t.Fatalf("call %d: %v", want, err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("call %d was not admitted", want)
	}
}

// A uid has 4 checks with polkit; its later calls wait their turn in the
// order they came, a call that leaves gives up its place, and only with 32
// waiting is the next refused. Other uids are not affected.
func TestCheckQueue(t *testing.T) {
	q := checkQueue{perUID: map[uint32]*uidChecks{}}
	const uid, other = 1000, 1001
	for range maxChecksInFlight {
		if err := q.acquire(context.Background(), uid); err != nil {
			t.Fatal(err)
		}
	}
	turns := map[int]chan error{}
	cancels := map[int]context.CancelFunc{}
	for i := range maxChecksWaiting {
		ctx, cancel := context.WithCancel(context.Background())
		cancels[i] = cancel
		turn := make(chan error, 1)
		turns[i] = turn
		go func() { turn <- q.acquire(ctx, uid) }()
		// acquire queues under the lock before it waits: see it there
		// before the next call comes, so the order is known.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			q.mu.Lock()
			n := len(q.perUID[uid].waiting)
			q.mu.Unlock()
			if n == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("call %d did not queue", i)
			}
		}
	}
	if err := q.acquire(context.Background(), uid); service.KindOf(err) != service.QuotaExceeded {
		t.Fatalf("a call with %d waiting: %v, want QuotaExceeded", maxChecksWaiting, err)
	}
	if err := q.acquire(context.Background(), other); err != nil {
		t.Fatalf("another uid: %v", err)
	}
	if got := admitted(turns); len(got) != 0 {
		t.Fatalf("admitted %v before any check ended", got)
	}

	// The second waiting call leaves: it is told why and never admitted.
	cancels[1]()
	if err := <-turns[1]; !errors.Is(err, context.Canceled) {
		t.Fatalf("a call that left: %v", err)
	}
	q.release(uid)
	waitAdmitted(t, turns, 0)
	q.release(uid)
	waitAdmitted(t, turns, 2)
	if got := admitted(turns); len(got) != 0 {
		t.Fatalf("also admitted %v", got)
	}
	for i := 3; i < maxChecksWaiting; i++ {
		q.release(uid)
		waitAdmitted(t, turns, i)
	}
	for range maxChecksInFlight {
		q.release(uid)
	}
	q.release(other)
	if len(q.perUID) != 0 {
		t.Errorf("nothing is pending, yet the queue holds %v", q.perUID)
	}
}
