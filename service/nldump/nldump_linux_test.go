package nldump

import (
	"errors"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestRetryAsksAgainAfterAnInterruptedDump(t *testing.T) {
	calls := 0
	list, err := Retry(func() ([]int, error) {
		calls++
		if calls < 3 {
			return []int{1}, netlink.ErrDumpInterrupted
		}
		return []int{1, 2}, nil
	})
	if err != nil || len(list) != 2 || calls != 3 {
		t.Fatalf("got %v, %v after %d calls; want the third, complete answer", list, err, calls)
	}
}

func TestRetryGivesUp(t *testing.T) {
	calls := 0
	_, err := Retry(func() ([]int, error) { calls++; return nil, netlink.ErrDumpInterrupted })
	if !errors.Is(err, netlink.ErrDumpInterrupted) || calls != attempts {
		t.Fatalf("got %v after %d calls; want the interruption after %d", err, calls, attempts)
	}
	other := errors.New("permission denied")
	calls = 0
	if _, err := Retry(func() ([]int, error) { calls++; return nil, other }); err != other || calls != 1 {
		t.Fatalf("another error: got %v after %d calls, want it at once", err, calls)
	}
}
