package harness

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/internal/busconn"
)

// The client's connection is netgrant's own: it receives fds, which godbus
// cannot do safely, and sends the test's messages byte for byte.

// clientState is the client side of the protocol described in client.go.
type clientState struct {
	bus    *busconn.Conn
	fds    map[int]*os.File
	nextFD int

	mu    sync.Mutex
	tally map[string]int // replies to floods by error name

	// fresh are the connections of "fresh" calls, each held (and what it
	// holds with it) until the client exits or is killed.
	fresh []*busconn.Conn
}

func runClient() int {
	out := json.NewEncoder(os.Stdout)
	s := &clientState{fds: map[int]*os.File{}, nextFD: 1, tally: map[string]int{}}
	unique, err := s.connect()
	if err != nil {
		out.Encode(response{Err: err.Error()})
		return 1
	}
	out.Encode(response{UniqueName: unique})
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(nil, 1<<28)
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			out.Encode(response{Err: err.Error()})
			continue
		}
		resp, err := s.handle(req)
		if err != nil {
			resp = response{Err: err.Error()}
		}
		out.Encode(resp)
		if req.Op == "exit" {
			break
		}
	}
	return 0
}

func (s *clientState) connect() (string, error) {
	bus, err := busconn.Connect(nil)
	if err != nil {
		return "", err
	}
	s.bus = bus
	return bus.UniqueName(), nil
}

func (s *clientState) handle(req request) (response, error) {
	switch req.Op {
	case "call":
		return s.call(req.Msg, req.AttachFDs)
	case "fresh":
		return s.freshCall(req.Msg)
	case "signal":
		raw, err := hex.DecodeString(req.Msg)
		if err != nil {
			return response{}, err
		}
		for range req.Count {
			if _, err := s.bus.SendRaw(raw, nil); err != nil {
				return response{}, err
			}
		}
		return response{}, nil
	case "fuzz":
		report, err := s.fuzz(req.Seed, req.Count)
		return response{Fuzz: report}, err
	case "flood":
		return response{}, s.flood(req.Msg, req.Count)
	case "tally":
		s.mu.Lock()
		defer s.mu.Unlock()
		return response{Tally: maps.Clone(s.tally)}, nil
	case "fds":
		return response{FDs: s.fdIDs()}, nil
	case "exit":
		return response{}, nil
	}
	f, ok := s.fds[req.FD]
	if !ok {
		return response{}, fmt.Errorf("no fd %d", req.FD)
	}
	switch req.Op {
	case "close":
		delete(s.fds, req.FD)
		return response{}, f.Close()
	case "write":
		frame, err := hex.DecodeString(req.Data)
		if err != nil {
			return response{}, err
		}
		_, err = unix.Write(int(f.Fd()), frame)
		return response{}, err
	case "read":
		pfd := []unix.PollFd{{Fd: int32(f.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, req.TimeoutMS)
		if err != nil {
			return response{}, err
		}
		if n == 0 {
			return response{Timeout: true}, nil
		}
		buf := make([]byte, 65536+64)
		n, err = unix.Read(int(f.Fd()), buf)
		if err != nil {
			return response{}, err
		}
		return response{Data: hex.EncodeToString(buf[:n])}, nil
	case "pass":
		// fd 3 is the client's end of a socket pair the test holds the
		// other end of.
		return response{}, unix.Sendmsg(3, []byte{0}, unix.UnixRights(int(f.Fd())), nil, 0)
	case "tunioctl":
		ioctl, ok := map[string]uint{"persist": unix.TUNSETPERSIST, "owner": unix.TUNSETOWNER, "group": unix.TUNSETGROUP}[req.Ioctl]
		if !ok {
			return response{}, fmt.Errorf("unknown tun ioctl %q", req.Ioctl)
		}
		return response{}, unix.IoctlSetInt(int(f.Fd()), ioctl, req.Value)
	case "tungetiff":
		ifr, err := unix.NewIfreq("")
		if err != nil {
			return response{}, err
		}
		if err := unix.IoctlIfreq(int(f.Fd()), unix.TUNGETIFF, ifr); err != nil {
			return response{}, fmt.Errorf("TUNGETIFF: %w", err)
		}
		return response{IfName: ifr.Name(), Flags: ifr.Uint16()}, nil
	}
	return response{}, fmt.Errorf("unknown op %q", req.Op)
}

func (s *clientState) fdIDs() []int {
	ids := []int{}
	for id := range s.fds {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	return ids
}

// flood sends count copies of a call, one after another without waiting
// for replies, and tallies their replies by error name as they come; fds
// that come with a reply are closed.
func (s *clientState) flood(encoded string, count int) error {
	raw, err := hex.DecodeString(encoded)
	if err != nil {
		return err
	}
	for range count {
		wait, err := s.bus.StartCall(append([]byte(nil), raw...), nil)
		if err != nil {
			return err
		}
		go func() {
			reply, err := wait(context.Background())
			var name string
			switch {
			case reply == nil:
				name = "not sent: " + err.Error()
			case err != nil:
				name, _ = reply.Headers[dbus.FieldErrorName].Value().(string)
			default:
				reply.CloseFiles()
			}
			s.mu.Lock()
			s.tally[name]++
			s.mu.Unlock()
		}()
	}
	return nil
}

// freshCall makes a call on a connection of its own, opened for it, as a
// client that connects per call does, and says how long the call took
// from sending to the reply, the connection's opening aside.
func (s *clientState) freshCall(encoded string) (response, error) {
	raw, err := hex.DecodeString(encoded)
	if err != nil {
		return response{}, err
	}
	bus, err := busconn.Connect(nil)
	if err != nil {
		return response{}, err
	}
	s.fresh = append(s.fresh, bus)
	start := time.Now()
	reply, err := bus.CallRaw(context.Background(), raw, nil)
	took := time.Since(start)
	if reply == nil {
		return response{}, err
	}
	for _, f := range reply.Files {
		f.Close()
	}
	return response{Reply: hex.EncodeToString(reply.Raw), TookNS: took.Nanoseconds()}, nil
}

// call sends a message with attach copies of /dev/null as its fds.
func (s *clientState) call(encoded string, attach int) (response, error) {
	raw, err := hex.DecodeString(encoded)
	if err != nil {
		return response{}, err
	}
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		return response{}, err
	}
	defer devNull.Close()
	fds := make([]int, attach)
	for i := range fds {
		fds[i] = int(devNull.Fd())
	}
	reply, err := s.bus.CallRaw(context.Background(), raw, fds)
	if reply == nil {
		return response{}, err
	}
	ids := []int{}
	for _, f := range reply.Files {
		s.fds[s.nextFD] = f
		ids = append(ids, s.nextFD)
		s.nextFD++
	}
	return response{Reply: hex.EncodeToString(reply.Raw), FDs: ids}, nil
}
