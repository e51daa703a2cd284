// Package busconn is netgrant's own D-Bus connection, used by the daemon,
// the CLI, the bridge helper and the tests.
//
// godbus's Conn cannot be trusted with what arrives: its reader goroutine
// decodes each message together with the fds that came with it, and a body
// such as `ah` with one fd makes it panic (an fd decodes as UnixFD, the rest
// of the array as UnixFDIndex, and reflect.Append panics), which kills the
// whole process. Any local user can send that to a system service. So
// busconn reads the socket itself: it takes the fds out of the control
// messages, decodes the message with godbus *without* fds (every `h` is
// then a plain UnixFDIndex, which godbus handles soundly), recovers from
// any decoder panic as a decoding error, and hands the fds over as files.
// godbus is used only to encode messages and to decode them fd-free.
package busconn

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// DefaultSystemBus is the system bus address when DBUS_SYSTEM_BUS_ADDRESS
// is unset.
const DefaultSystemBus = "unix:path=/run/dbus/system_bus_socket"

const (
	// maxFDsPerMessage is D-Bus's own limit on fds in one message
	// (dbus-daemon allows 16 per message by default).
	maxFDsPerMessage = 16
	// maxMessageSize is the D-Bus specification's limit.
	maxMessageSize = 1 << 27
	// maxRefusedHeader bounds the header fields read of a message refused
	// for its size, to answer it: what a bus puts there is far less.
	maxRefusedHeader = 1 << 16
)

// ErrTooLarge is the DecodeErr of a message larger than the connection
// takes (see MaxMessageSize): its header is read, to answer it, and its
// body skipped unread.
var ErrTooLarge = errors.New("message too large")

// ErrFDCount is the DecodeErr of a message that came with another number
// of fds than it announced: the fds are closed, and it is not decoded.
var ErrFDCount = errors.New("message came with another number of fds than it announced")

// Message is a message as received, with the fds that came with it. When
// godbus could not decode it, Body is empty and DecodeErr says why; the
// header fields needed to answer it (type, flags, serial, sender) are
// still set.
type Message struct {
	*dbus.Message
	serial    uint32
	Raw       []byte
	Files     []*os.File
	DecodeErr error
}

// Serial is the message's serial, read from its fixed header, so it is
// known even for a message godbus could not decode.
func (m *Message) Serial() uint32 { return m.serial }

// Sender is the unique name the bus put in the message.
func (m *Message) Sender() string {
	s, _ := m.Headers[dbus.FieldSender].Value().(string)
	return s
}

// CloseFiles closes the fds that came with m.
func (m *Message) CloseFiles() {
	for _, f := range m.Files {
		f.Close()
	}
	m.Files = nil
}

// Error is an error reply.
type Error struct {
	Name    string
	Message string
}

func (e *Error) Error() string { return e.Name + ": " + e.Message }

// IsNotRunning reports whether err says that the called name has no owner:
// the service is not running (and was not activated).
func IsNotRunning(err error) bool {
	var e *Error
	return errors.As(err, &e) && (e.Name == "org.freedesktop.DBus.Error.ServiceUnknown" || e.Name == "org.freedesktop.DBus.Error.NameHasNoOwner")
}

// Handler receives every message that is not a reply to one of the
// connection's own calls: method calls and signals. It runs on the
// connection's reader, so it must not block; it owns the message's files.
type Handler func(*Message)

// Conn is a connection to a message bus. Calls may be made from any number
// of goroutines at once.
type Conn struct {
	sock    *net.UnixConn
	handler Handler
	unique  string
	serial  atomic.Uint32
	// maxMessage is the largest message read; larger ones are refused.
	maxMessage uint64

	writeMu sync.Mutex

	mu      sync.Mutex
	pending map[uint32]chan *Message
	err     error // why the connection ended, once it has
	done    chan struct{}
}

// Option changes how a connection reads.
type Option func(*Conn)

// MaxMessageSize refuses incoming messages of more than n bytes unread: a
// message any local user may send must not cost the reader more than a
// service will ever use. The handler gets each refused message with its
// header only and DecodeErr ErrTooLarge.
func MaxMessageSize(n int) Option {
	return func(c *Conn) { c.maxMessage = uint64(n) }
}

// Connect connects to the system bus, at DBUS_SYSTEM_BUS_ADDRESS if set.
func Connect(handler Handler, opts ...Option) (*Conn, error) {
	address := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS")
	if address == "" {
		address = DefaultSystemBus
	}
	return Dial(address, handler, opts...)
}

// Dial connects to the bus at address (its first unix:path= or
// unix:abstract= entry), authenticates, asks for fd passing and says Hello.
// A nil handler drops incoming calls and signals.
func Dial(address string, handler Handler, opts ...Option) (*Conn, error) {
	sockAddr, err := parseAddress(address)
	if err != nil {
		return nil, err
	}
	sock, err := net.DialUnix("unix", nil, sockAddr)
	if err != nil {
		return nil, &BusError{Address: address, Err: err}
	}
	if err := authenticate(sock); err != nil {
		sock.Close()
		return nil, &BusError{Address: address, Err: err}
	}
	if handler == nil {
		handler = func(m *Message) { m.CloseFiles() }
	}
	c := &Conn{sock: sock, handler: handler, maxMessage: maxMessageSize, pending: map[uint32]chan *Message{}, done: make(chan struct{})}
	for _, opt := range opts {
		opt(c)
	}
	go c.read()
	reply, err := c.Call(context.Background(), "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus", "Hello", 0)
	if err == nil {
		err = dbus.Store(reply.Body, &c.unique)
	}
	if err != nil {
		c.Close()
		return nil, &BusError{Address: address, Err: fmt.Errorf("saying Hello: %w", err)}
	}
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

// UniqueName is the connection's unique name on the bus (":1.42").
func (c *Conn) UniqueName() string { return c.unique }

// Done is closed when the connection has ended.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Close closes the connection; the bus then drops everything it held for
// it (names, matches, and netgrant's holds).
func (c *Conn) Close() error {
	err := c.sock.Close()
	<-c.done
	return err
}

func (c *Conn) nextSerial() uint32 {
	for {
		if s := c.serial.Add(1); s != 0 {
			return s
		}
	}
}

// Send sends msg under the connection's next serial and returns that
// serial. dbus.UnixFD values in the body are sent as fds; the caller keeps
// its own copies.
func (c *Conn) Send(msg *dbus.Message) (uint32, error) {
	n, err := msg.CountFds()
	if err != nil {
		return 0, fmt.Errorf("encoding a message: %w", err)
	}
	if n > 0 {
		msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(n))
	}
	var buf bytes.Buffer
	fds, err := msg.EncodeToWithFDs(&buf, binary.LittleEndian)
	if err != nil {
		return 0, fmt.Errorf("encoding a message: %w", err)
	}
	return c.SendRaw(buf.Bytes(), fds)
}

// SendRaw sends raw, an encoded little-endian message, byte for byte but
// for its serial, which it sets and returns, with fds attached. It lets
// tests send what godbus refuses to encode.
func (c *Conn) SendRaw(raw []byte, fds []int) (uint32, error) {
	return c.send(raw, fds, nil)
}

// send writes raw under the next serial; beforeWrite learns the serial
// before the bus can answer it.
func (c *Conn) send(raw []byte, fds []int, beforeWrite func(serial uint32) error) (uint32, error) {
	if len(raw) < 16 || raw[0] != 'l' {
		return 0, errors.New("not an encoded little-endian message")
	}
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	serial := c.nextSerial()
	binary.LittleEndian.PutUint32(raw[8:12], serial)
	if beforeWrite != nil {
		if err := beforeWrite(serial); err != nil {
			return 0, err
		}
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	for len(raw) > 0 {
		n, _, err := c.sock.WriteMsgUnix(raw, oob, nil)
		if err != nil {
			return serial, err
		}
		raw, oob = raw[n:], nil
	}
	return serial, nil
}

// Call calls member on path at dest and waits for the reply or for ctx.
// An error reply is an *Error; the reply's fds are the caller's to close.
func (c *Conn) Call(ctx context.Context, dest string, path dbus.ObjectPath, iface, member string, flags dbus.Flags, args ...any) (*Message, error) {
	msg := NewCall(dest, path, iface, member, flags, args...)
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encoding a call to %s: %w", member, err)
	}
	return c.CallRaw(ctx, buf.Bytes(), nil)
}

// NewCall builds a method call message.
func NewCall(dest string, path dbus.ObjectPath, iface, member string, flags dbus.Flags, args ...any) *dbus.Message {
	msg := &dbus.Message{
		Type:  dbus.TypeMethodCall,
		Flags: flags,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:   dbus.MakeVariant(path),
			dbus.FieldMember: dbus.MakeVariant(member),
		},
		Body: args,
	}
	if dest != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
	}
	if iface != "" {
		msg.Headers[dbus.FieldInterface] = dbus.MakeVariant(iface)
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return msg
}

// Emit sends the signal name ("interface.member") from path.
func (c *Conn) Emit(path dbus.ObjectPath, name string, args ...any) error {
	msg, err := NewSignal(path, name, args...)
	if err != nil {
		return err
	}
	_, err = c.Send(msg)
	return err
}

// NewSignal builds the signal name ("interface.member") from path.
func NewSignal(path dbus.ObjectPath, name string, args ...any) (*dbus.Message, error) {
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return nil, fmt.Errorf("signal name %q has no interface", name)
	}
	msg := &dbus.Message{
		Type: dbus.TypeSignal,
		Headers: map[dbus.HeaderField]dbus.Variant{
			dbus.FieldPath:      dbus.MakeVariant(path),
			dbus.FieldInterface: dbus.MakeVariant(name[:dot]),
			dbus.FieldMember:    dbus.MakeVariant(name[dot+1:]),
		},
		Body: args,
	}
	if len(args) > 0 {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.SignatureOf(args...))
	}
	return msg, nil
}

// CallRaw sends raw, an encoded little-endian method call, with fds, and
// waits for its reply, which is returned whole (an error reply too, as an
// *Error alongside the message).
func (c *Conn) CallRaw(ctx context.Context, raw []byte, fds []int) (*Message, error) {
	wait, err := c.StartCall(raw, fds)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// StartCall sends raw as CallRaw does and returns at once; wait then waits
// for the reply. Calls started one after another reach the bus in that
// order.
func (c *Conn) StartCall(raw []byte, fds []int) (wait func(context.Context) (*Message, error), err error) {
	if len(raw) < 16 || raw[1] != byte(dbus.TypeMethodCall) {
		return nil, errors.New("not an encoded method call")
	}
	ch := make(chan *Message, 1)
	serial, err := c.send(raw, fds, func(serial uint32) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.err != nil {
			return c.err
		}
		c.pending[serial] = ch
		return nil
	})
	if err != nil {
		c.forget(serial)
		return nil, err
	}
	return func(ctx context.Context) (*Message, error) {
		select {
		case reply, ok := <-ch:
			if !ok {
				return nil, c.closedErr()
			}
			if reply.DecodeErr != nil {
				reply.CloseFiles()
				return nil, fmt.Errorf("reading the reply: %w", reply.DecodeErr)
			}
			if reply.Type == dbus.TypeError {
				reply.CloseFiles()
				return reply, replyError(reply)
			}
			return reply, nil
		case <-ctx.Done():
			c.forget(serial)
			return nil, ctx.Err()
		}
	}, nil
}

func (c *Conn) forget(serial uint32) {
	c.mu.Lock()
	delete(c.pending, serial)
	c.mu.Unlock()
}

func (c *Conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func replyError(m *Message) *Error {
	e := &Error{}
	e.Name, _ = m.Headers[dbus.FieldErrorName].Value().(string)
	if len(m.Body) > 0 {
		e.Message, _ = m.Body[0].(string)
	}
	return e
}

// read delivers messages until the connection ends.
func (c *Conn) read() {
	r := &reader{sock: c.sock, limit: c.maxMessage}
	var err error
	for {
		var m *Message
		m, err = r.next()
		if err != nil {
			break
		}
		c.deliver(m)
	}
	closeAll(r.fds)
	c.mu.Lock()
	c.err = fmt.Errorf("connection to the bus closed: %w", err)
	for serial, ch := range c.pending {
		close(ch)
		delete(c.pending, serial)
	}
	c.mu.Unlock()
	close(c.done)
}

func (c *Conn) deliver(m *Message) {
	if m.Type == dbus.TypeMethodReply || m.Type == dbus.TypeError {
		replyTo, _ := m.Headers[dbus.FieldReplySerial].Value().(uint32)
		c.mu.Lock()
		ch, ok := c.pending[replyTo]
		delete(c.pending, replyTo)
		c.mu.Unlock()
		if ok {
			ch <- m
		} else {
			m.CloseFiles()
		}
		return
	}
	c.handler(m)
}

// reader splits the byte stream into messages and the fds into theirs.
// A message's fds arrive with its first bytes (a sender passes them with
// the write that starts it, and the kernel never merges them into a read
// of the bytes before): the fds received while a message is read are its
// own, however many it announced.
type reader struct {
	sock *net.UnixConn
	// limit is the largest message read; 0 means the specification's.
	limit uint64
	// fds received while the current message is read.
	fds []int
}

// next reads one message with its fds. Only a broken stream is an error:
// a message godbus cannot decode, one too large, or one that came with
// another number of fds than it announced is returned with DecodeErr set
// (and no fds).
func (r *reader) next() (*Message, error) {
	closeAll(r.fds)
	r.fds = nil
	head := make([]byte, 16)
	if err := r.readFull(head); err != nil {
		return nil, err
	}
	var order binary.ByteOrder = binary.LittleEndian
	if head[0] == 'B' {
		order = binary.BigEndian
	}
	bodyLen := uint64(order.Uint32(head[4:8]))
	fieldsLen := uint64(order.Uint32(head[12:16]))
	total := 16 + (fieldsLen+7)&^7 + bodyLen
	if total > maxMessageSize {
		return nil, errors.New("message from the bus is too long")
	}
	if limit := r.limit; limit > 0 && total > limit {
		return r.refuse(head, fieldsLen, total)
	}
	raw := make([]byte, total)
	copy(raw, head)
	if err := r.readFull(raw[16:]); err != nil {
		return nil, err
	}
	m := decode(raw)
	if n, _ := m.Headers[dbus.FieldUnixFDs].Value().(uint32); int(n) != len(r.fds) {
		return refused(raw, fmt.Errorf("%w: %d announced, %d arrived", ErrFDCount, n, len(r.fds))), nil
	}
	for _, fd := range r.fds {
		m.Files = append(m.Files, os.NewFile(uintptr(fd), "fd"+strconv.Itoa(fd)))
	}
	r.fds = nil
	return m, nil
}

// refuse reads what answering a message too large needs, its header
// fields, and skips the rest of it in small pieces.
func (r *reader) refuse(head []byte, fieldsLen, total uint64) (*Message, error) {
	raw := head
	read := uint64(len(head))
	if fieldsLen <= maxRefusedHeader {
		raw = make([]byte, 16+fieldsLen)
		copy(raw, head)
		if err := r.readFull(raw[16:]); err != nil {
			return nil, err
		}
		read = uint64(len(raw))
	}
	buf := make([]byte, 64<<10)
	for read < total {
		n := min(uint64(len(buf)), total-read)
		if err := r.readFull(buf[:n]); err != nil {
			return nil, err
		}
		read += n
		closeAll(r.fds)
		r.fds = nil
	}
	return refused(raw, ErrTooLarge), nil
}

// refused is a message that is not delivered as sent: what answering it
// needs, and why.
func refused(raw []byte, why error) *Message {
	var order binary.ByteOrder = binary.LittleEndian
	if raw[0] == 'B' {
		order = binary.BigEndian
	}
	return &Message{Message: headerOnly(raw), Raw: raw, serial: order.Uint32(raw[8:12]), DecodeErr: why}
}

// decode decodes raw without its fds, so that godbus never meets one.
func decode(raw []byte) (m *Message) {
	var order binary.ByteOrder = binary.LittleEndian
	if raw[0] == 'B' {
		order = binary.BigEndian
	}
	m = &Message{Raw: raw, serial: order.Uint32(raw[8:12])}
	defer func() {
		if p := recover(); p != nil {
			m.Message, m.DecodeErr = headerOnly(raw), fmt.Errorf("decoder panic: %v", p)
		}
	}()
	msg, err := dbus.DecodeMessage(bytes.NewReader(raw))
	if err != nil {
		m.Message, m.DecodeErr = headerOnly(raw), err
		return m
	}
	m.Message = msg
	return m
}

// readFull fills b, queueing the fds that arrive on the way; the bus sends
// a message's fds with its first bytes, so they are queued in order.
func (r *reader) readFull(b []byte) error {
	oob := make([]byte, unix.CmsgSpace(4*maxFDsPerMessage))
	for len(b) > 0 {
		n, oobn, flags, _, err := r.sock.ReadMsgUnix(b, oob)
		if oobn > 0 {
			if perr := r.takeFDs(oob[:oobn]); perr != nil {
				return perr
			}
		}
		if flags&unix.MSG_CTRUNC != 0 {
			return errors.New("the bus sent more fds than one message may carry")
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

func (r *reader) takeFDs(oob []byte) error {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			return err
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
		}
		r.fds = append(r.fds, fds...)
	}
	return nil
}

func closeAll(fds []int) {
	for _, fd := range fds {
		unix.Close(fd)
	}
}
