// Package client is the Go client for the netgrant D-Bus API, used by the
// CLI and the bridge helper.
//
// It speaks D-Bus itself instead of through godbus's Conn: godbus (v5.2.4)
// panics in its reader goroutine when it receives an array of fds (ah),
// which is exactly what CreateTap returns. Messages are still encoded and
// decoded with godbus; a received fd is decoded as a dbus.UnixFDIndex into
// the fds that came with the message.
package client

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// DefaultSystemBus is the system bus address when DBUS_SYSTEM_BUS_ADDRESS
// is unset.
const DefaultSystemBus = "unix:path=/run/dbus/system_bus_socket"

// maxFDsPerRead bounds the fds one read may carry (D-Bus allows 16 per
// message, CreateTap returns at most 16).
const maxFDsPerRead = 64

// Conn is a connection to a message bus that can receive fds. Its calls
// are made one at a time; it is safe for use by several goroutines.
type Conn struct {
	mu     sync.Mutex
	sock   *net.UnixConn
	serial uint32
	// fds received but not yet claimed by a message.
	fds    []int
	unique string
}

// Connect connects to the system bus, at DBUS_SYSTEM_BUS_ADDRESS if set.
func Connect() (*Conn, error) {
	address := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if address == "" {
		address = DefaultSystemBus
	}
	return Dial(address)
}

// Dial connects to the bus at address (the first unix:path= or
// unix:abstract= entry is used), authenticates and says Hello.
func Dial(address string) (*Conn, error) {
	sockAddr, err := parseAddress(address)
	if err != nil {
		return nil, err
	}
	sock, err := net.DialUnix("unix", nil, sockAddr)
	if err != nil {
		return nil, &BusError{Address: address, Err: err}
	}
	c := &Conn{sock: sock}
	if err := c.auth(); err != nil {
		sock.Close()
		return nil, &BusError{Address: address, Err: err}
	}
	var unique string
	body, _, err := c.Call("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", 0)
	if err == nil {
		err = dbus.Store(body, &unique)
	}
	if err != nil {
		sock.Close()
		return nil, &BusError{Address: address, Err: fmt.Errorf("saying Hello: %w", err)}
	}
	c.unique = unique
	return c, nil
}

// BusError is a failure to reach or join the bus itself.
type BusError struct {
	Address string
	Err     error
}

func (e *BusError) Error() string {
	return "connecting to the bus at " + e.Address + ": " + e.Err.Error()
}
func (e *BusError) Unwrap() error { return e.Err }

func parseAddress(address string) (*net.UnixAddr, error) {
	for _, entry := range strings.Split(address, ";") {
		transport, params, ok := strings.Cut(entry, ":")
		if !ok || transport != "unix" {
			continue
		}
		for _, kv := range strings.Split(params, ",") {
			key, value, _ := strings.Cut(kv, "=")
			value, err := url.PathUnescape(value)
			if err != nil {
				return nil, fmt.Errorf("bad bus address %q: %w", address, err)
			}
			switch key {
			case "path":
				return &net.UnixAddr{Name: value, Net: "unix"}, nil
			case "abstract":
				return &net.UnixAddr{Name: "@" + value, Net: "unix"}, nil
			}
		}
	}
	return nil, fmt.Errorf("bus address %q has no unix:path= or unix:abstract= entry", address)
}

// auth does EXTERNAL authentication and asks for fd passing.
func (c *Conn) auth() error {
	uid := hex.EncodeToString([]byte(strconv.Itoa(os.Getuid())))
	for _, step := range []struct{ send, want string }{
		{"\x00AUTH EXTERNAL " + uid + "\r\n", "OK "},
		{"NEGOTIATE_UNIX_FD\r\n", "AGREE_UNIX_FD"},
	} {
		if _, err := c.sock.Write([]byte(step.send)); err != nil {
			return err
		}
		line, err := c.authLine()
		if err != nil {
			return err
		}
		if !strings.HasPrefix(line, step.want) {
			return fmt.Errorf("bus answered %q to %q", line, strings.TrimSpace(step.send))
		}
	}
	_, err := c.sock.Write([]byte("BEGIN\r\n"))
	return err
}

// authLine reads one line byte by byte, so nothing after it is consumed.
func (c *Conn) authLine() (string, error) {
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

// UniqueName is the connection's unique name on the bus (":1.42").
func (c *Conn) UniqueName() string { return c.unique }

// Close closes the connection; the bus then drops everything it held for
// it, netgrant networks included.
func (c *Conn) Close() error {
	closeAll(c.fds)
	c.fds = nil
	return c.sock.Close()
}

// SendRaw sends raw, an encoded little-endian method call, byte for byte
// under the connection's next serial, and waits for its reply (a method
// return or an error message), which it returns as received, with the fds
// that came with it, in order. Messages that are not the reply (signals
// such as NameAcquired) are dropped. It lets tests send what godbus would
// refuse to encode.
func (c *Conn) SendRaw(raw []byte) ([]byte, []*os.File, error) {
	reply, _, fds, err := c.exchange(raw)
	return reply, fds, err
}

func (c *Conn) exchange(raw []byte) ([]byte, *dbus.Message, []*os.File, error) {
	if len(raw) < 16 || raw[0] != 'l' || raw[1] != byte(dbus.TypeMethodCall) {
		return nil, nil, nil, errors.New("not an encoded little-endian method call")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.serial++
	binary.LittleEndian.PutUint32(raw[8:12], c.serial)
	if _, err := c.sock.Write(raw); err != nil {
		return nil, nil, nil, err
	}
	for {
		reply, msg, fds, err := c.readMessage()
		if err != nil {
			return nil, nil, nil, err
		}
		replyTo, _ := msg.Headers[dbus.FieldReplySerial].Value().(uint32)
		isReply := msg.Type == dbus.TypeMethodReply || msg.Type == dbus.TypeError
		if isReply && replyTo == c.serial {
			files := make([]*os.File, len(fds))
			for i, fd := range fds {
				files[i] = os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd))
			}
			return reply, msg, files, nil
		}
		closeAll(fds)
	}
}

// Call calls method on path at dest and returns the reply's body and fds;
// an error reply is an *Error. A fd in the body is a dbus.UnixFDIndex into
// the fds.
func (c *Conn) Call(dest string, path dbus.ObjectPath, iface, method string, flags dbus.Flags, args ...any) ([]any, []*os.File, error) {
	msg := &dbus.Message{
		Type:  dbus.TypeMethodCall,
		Flags: flags,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldDestination: dbus.MakeVariant(dest),
			dbus.FieldPath:        dbus.MakeVariant(path),
			dbus.FieldInterface:   dbus.MakeVariant(iface),
			dbus.FieldMember:      dbus.MakeVariant(method),
		},
		Body: args,
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil, nil, fmt.Errorf("encoding a call to %s: %w", method, err)
	}
	_, reply, fds, err := c.exchange(buf.Bytes())
	if err != nil {
		return nil, nil, err
	}
	if reply.Type == dbus.TypeError {
		for _, f := range fds {
			f.Close()
		}
		e := &Error{}
		e.Name, _ = reply.Headers[dbus.FieldErrorName].Value().(string)
		if len(reply.Body) > 0 {
			e.Message, _ = reply.Body[0].(string)
		}
		return nil, nil, e
	}
	return reply.Body, fds, nil
}

// readMessage reads one message, raw and decoded, with its fds.
func (c *Conn) readMessage() ([]byte, *dbus.Message, []int, error) {
	head := make([]byte, 16)
	if err := c.readFull(head); err != nil {
		return nil, nil, nil, err
	}
	var order binary.ByteOrder = binary.LittleEndian
	if head[0] == 'B' {
		order = binary.BigEndian
	}
	bodyLen := order.Uint32(head[4:8])
	fieldsLen := order.Uint32(head[12:16])
	total := 16 + uint64(fieldsLen+7)&^7 + uint64(bodyLen)
	if total > 1<<27 {
		return nil, nil, nil, errors.New("message from the bus is too long")
	}
	raw := make([]byte, total)
	copy(raw, head)
	if err := c.readFull(raw[16:]); err != nil {
		return nil, nil, nil, err
	}
	msg, err := dbus.DecodeMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("decoding a message from the bus: %w", err)
	}
	n, _ := msg.Headers[dbus.FieldUnixFDs].Value().(uint32)
	if int(n) > len(c.fds) {
		return nil, nil, nil, fmt.Errorf("message announces %d fds, %d arrived", n, len(c.fds))
	}
	fds := c.fds[:n:n]
	c.fds = c.fds[n:]
	return raw, msg, fds, nil
}

// readFull fills b, queueing the fds that arrive on the way; the bus sends
// a message's fds with its first bytes, so they are queued in order.
func (c *Conn) readFull(b []byte) error {
	oob := make([]byte, unix.CmsgSpace(4*maxFDsPerRead))
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
				for _, fd := range fds {
					unix.CloseOnExec(fd)
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
