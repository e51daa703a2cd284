package dnsmasq

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// settle is how long the lease file must stay quiet before it is read:
// dnsmasq rewrites it in place (truncate, then write), and a read between
// the two would report every guest gone for a moment.
const settle = 50 * time.Millisecond

// leaseWatcher follows a dnsmasq lease file through inotify on its
// directory and reports the live leases whenever the set of guests changes,
// including when a lease runs out while dnsmasq has not rewritten the file.
type leaseWatcher struct {
	path     string
	subnet   netip.Prefix
	inotify  *os.File
	onChange func([]Lease)
	stop     chan struct{}
	done     chan struct{}

	mu     sync.Mutex
	leases []Lease
}

func watchLeases(path string, subnet netip.Prefix, onChange func([]Lease)) (*leaseWatcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// Non-blocking, so os.File uses the runtime poller and Close interrupts
	// a pending Read.
	inotify := os.NewFile(uintptr(fd), "inotify")
	mask := uint32(unix.IN_CREATE | unix.IN_MODIFY | unix.IN_CLOSE_WRITE | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_MOVED_FROM)
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), mask); err != nil {
		inotify.Close()
		return nil, fmt.Errorf("watching %s: %w", filepath.Dir(path), err)
	}
	w := &leaseWatcher{
		path:     path,
		subnet:   subnet,
		inotify:  inotify,
		onChange: onChange,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	touched := make(chan struct{}, 1)
	go w.readEvents(touched)
	go w.run(touched)
	return w, nil
}

// readEvents signals touched (without queueing more than one signal) each
// time the lease file is written, created, replaced or removed.
func (w *leaseWatcher) readEvents(touched chan<- struct{}) {
	name := filepath.Base(w.path)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := w.inotify.Read(buf)
		if err != nil {
			return
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			evName := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			if string(bytes.TrimRight(evName, "\x00")) != name {
				continue
			}
			select {
			case touched <- struct{}{}:
			default:
			}
		}
	}
}

func (w *leaseWatcher) run(touched <-chan struct{}) {
	defer close(w.done)
	settled := time.NewTimer(0) // read what is there already
	expiry := time.NewTimer(0)
	expiry.Stop()
	defer settled.Stop()
	defer expiry.Stop()
	for {
		var fromFile []Lease
		select {
		case <-w.stop:
			return
		case <-touched:
			settled.Reset(settle)
			continue
		case <-settled.C:
			fromFile = w.read()
		case <-expiry.C:
			w.mu.Lock()
			fromFile = w.leases
			w.mu.Unlock()
		}
		live := current(fromFile, time.Now())
		w.mu.Lock()
		changed := !sameGuests(w.leases, live)
		w.leases = live
		w.mu.Unlock()
		if next := nextExpiry(live); !next.IsZero() {
			expiry.Reset(time.Until(next))
		} else {
			expiry.Stop()
		}
		if changed {
			w.onChange(copyLeases(live))
		}
	}
}

// read returns the leases in the file; a missing file holds none.
func (w *leaseWatcher) read() []Lease {
	data, err := readLeaseFile(w.path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.leases // keep what we knew; the next write triggers a retry
	}
	return parseLeases(data, w.subnet)
}

// readLeaseFile reads at most maxLeaseFileSize of the lease file. dnsmasq's
// user can write its directory, so the file may have been replaced by a
// link to a file only root may read, or by a FIFO that never ends: only a
// regular file, reached without following a link, is read.
func readLeaseFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	return io.ReadAll(io.LimitReader(f, maxLeaseFileSize))
}

// Leases returns the live leases last seen.
func (w *leaseWatcher) Leases() []Lease {
	w.mu.Lock()
	defer w.mu.Unlock()
	return copyLeases(w.leases)
}

func (w *leaseWatcher) Close() {
	close(w.stop)
	<-w.done
	w.inotify.Close()
}

// copyLeases copies leases so callers cannot alias the watcher's state.
func copyLeases(leases []Lease) []Lease {
	return append([]Lease(nil), leases...)
}
