package harness

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// The client speaks D-Bus itself rather than through godbus: it must send
// the test's messages byte for byte, and godbus (v5.2.4) panics when it
// receives an array of fds (ah), which is what CreateTap returns.

// busConn is a minimal D-Bus connection: it sends encoded method calls and
// reads whole messages together with the fds that came with them.
type busConn struct {
	sock   *net.UnixConn
	serial uint32
	fds    []int // received, not yet claimed by a message
}

func dialBus(address string) (*busConn, error) {
	path, ok := strings.CutPrefix(address, "unix:path=")
	if !ok {
		return nil, fmt.Errorf("unsupported bus address %q", address)
	}
	sock, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	c := &busConn{sock: sock}
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	for _, step := range []struct{ send, want string }{
		{"\x00AUTH EXTERNAL " + uid + "\r\n", "OK "},
		{"NEGOTIATE_UNIX_FD\r\n", "AGREE_UNIX_FD"},
	} {
		if _, err := sock.Write([]byte(step.send)); err != nil {
			return nil, err
		}
		line, err := c.authLine()
		if err != nil {
			return nil, err
		}
		if !strings.HasPrefix(line, step.want) {
			return nil, fmt.Errorf("bus answered %q to %q", line, strings.TrimSpace(step.send))
		}
	}
	if _, err := sock.Write([]byte("BEGIN\r\n")); err != nil {
		return nil, err
	}
	return c, nil
}

// authLine reads one line byte by byte, so nothing after it is consumed.
func (c *busConn) authLine() (string, error) {
	var line []byte
	b := make([]byte, 1)
	for !bytes.HasSuffix(line, []byte("\r\n")) {
		if _, err := io.ReadFull(c.sock, b); err != nil {
			return "", err
		}
		line = append(line, b[0])
	}
	return string(line[:len(line)-2]), nil
}

// call sends an encoded method call under a fresh serial and returns the
// reply as received, with its fds in order.
func (c *busConn) call(raw []byte) ([]byte, []int, error) {
	if len(raw) < 16 || raw[0] != 'l' {
		return nil, nil, errors.New("a call must be an encoded little-endian message")
	}
	c.serial++
	binary.LittleEndian.PutUint32(raw[8:12], c.serial)
	if _, err := c.sock.Write(raw); err != nil {
		return nil, nil, err
	}
	for {
		msg, fds, err := c.readMessage()
		if err != nil {
			return nil, nil, err
		}
		decoded, err := dbus.DecodeMessage(bytes.NewReader(msg))
		if err != nil {
			closeAll(fds)
			return nil, nil, fmt.Errorf("decoding a message from the bus: %w", err)
		}
		replyTo, _ := decoded.Headers[dbus.FieldReplySerial].Value().(uint32)
		isReply := decoded.Type == dbus.TypeMethodReply || decoded.Type == dbus.TypeError
		if isReply && replyTo == c.serial {
			return msg, fds, nil
		}
		// A signal (NameAcquired) or a stray message: not ours.
		closeAll(fds)
	}
}

func (c *busConn) readMessage() ([]byte, []int, error) {
	head := make([]byte, 16)
	if err := c.readFull(head); err != nil {
		return nil, nil, err
	}
	var order binary.ByteOrder = binary.LittleEndian
	if head[0] == 'B' {
		order = binary.BigEndian
	}
	bodyLen := order.Uint32(head[4:8])
	fieldsLen := order.Uint32(head[12:16])
	total := 16 + (fieldsLen+7)&^7 + bodyLen
	if total > 1<<27 {
		return nil, nil, errors.New("message too long")
	}
	msg := make([]byte, total)
	copy(msg, head)
	if err := c.readFull(msg[16:]); err != nil {
		return nil, nil, err
	}
	decoded, err := dbus.DecodeMessage(bytes.NewReader(msg))
	if err != nil {
		return nil, nil, fmt.Errorf("decoding a message from the bus: %w", err)
	}
	n, _ := decoded.Headers[dbus.FieldUnixFDs].Value().(uint32)
	if int(n) > len(c.fds) {
		return nil, nil, fmt.Errorf("message announces %d fds, %d arrived", n, len(c.fds))
	}
	fds := c.fds[:n:n]
	c.fds = c.fds[n:]
	return msg, fds, nil
}

// readFull fills b, queueing the fds that arrive on the way; the bus sends
// a message's fds with its first bytes, so they are queued in order.
func (c *busConn) readFull(b []byte) error {
	oob := make([]byte, unix.CmsgSpace(4*64))
	for len(b) > 0 {
		n, oobn, _, _, err := c.sock.ReadMsgUnix(b, oob)
		if oobn > 0 {
			msgs, perr := unix.ParseSocketControlMessage(oob[:oobn])
			if perr != nil {
				return perr
			}
			for _, m := range msgs {
				fds, perr := unix.ParseUnixRights(&m)
				if perr != nil {
					return perr
				}
				c.fds = append(c.fds, fds...)
			}
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.EOF
		}
		b = b[n:]
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}

// clientState is the client side of the protocol described in client.go.
type clientState struct {
	bus    *busConn
	fds    map[int]*os.File
	nextFD int
}

func runClient() int {
	out := json.NewEncoder(os.Stdout)
	s := &clientState{fds: map[int]*os.File{}, nextFD: 1}
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
	bus, err := dialBus(os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"))
	if err != nil {
		return "", fmt.Errorf("connecting to the bus: %w", err)
	}
	s.bus = bus
	hello := &dbus.Message{Type: dbus.TypeMethodCall, Headers: map[dbus.HeaderField]dbus.Variant{
		dbus.FieldDestination: dbus.MakeVariant("org.freedesktop.DBus"),
		dbus.FieldPath:        dbus.MakeVariant(dbus.ObjectPath("/org/freedesktop/DBus")),
		dbus.FieldInterface:   dbus.MakeVariant("org.freedesktop.DBus"),
		dbus.FieldMember:      dbus.MakeVariant("Hello"),
	}}
	var buf bytes.Buffer
	if err := hello.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return "", err
	}
	raw, _, err := bus.call(buf.Bytes())
	if err != nil {
		return "", fmt.Errorf("saying Hello: %w", err)
	}
	reply, err := dbus.DecodeMessage(bytes.NewReader(raw))
	if err != nil {
		return "", err
	}
	var unique string
	if err := dbus.Store(reply.Body, &unique); err != nil {
		return "", fmt.Errorf("saying Hello: %w", err)
	}
	return unique, nil
}

func (s *clientState) handle(req request) (response, error) {
	switch req.Op {
	case "call":
		return s.call(req.Msg)
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

func (s *clientState) call(encoded string) (response, error) {
	raw, err := hex.DecodeString(encoded)
	if err != nil {
		return response{}, err
	}
	reply, fds, err := s.bus.call(raw)
	if err != nil {
		return response{}, err
	}
	ids := []int{}
	for _, fd := range fds {
		s.fds[s.nextFD] = os.NewFile(uintptr(fd), "fd"+strconv.Itoa(s.nextFD))
		ids = append(ids, s.nextFD)
		s.nextFD++
	}
	return response{Reply: hex.EncodeToString(reply), FDs: ids}, nil
}
