package harness

// A client is the test binary re-executed in client mode as a test user. It
// holds one D-Bus connection to the private bus, and every fd it received,
// for its whole life, and talks to the test over stdin/stdout, one JSON
// object per line:
//
//	started:  → {"unique_name": ":1.5"}            (or {"err": ...})
//	{"op":"call","msg":HEX}                         → {"reply":HEX,"fds":[ids]}
//	{"op":"fds"}                                    → {"fds":[ids]}
//	{"op":"close","fd":ID}                          → {}
//	{"op":"write","fd":ID,"data":HEX}               → {}
//	{"op":"read","fd":ID,"timeout_ms":N}            → {"data":HEX} or {"timeout":true}
//	{"op":"tungetiff","fd":ID}                      → {"ifname":S,"flags":N}
//	{"op":"tunioctl","fd":ID,"ioctl":"persist|owner|group","value":N} → {}
//	{"op":"signal","msg":HEX,"count":N}             → {} after sending it N times
//	{"op":"fuzz","seed":N,"count":N}                → {"fuzz":{...}} (see Fuzz)
//	{"op":"flood","msg":HEX,"count":N}              → {} once N copies are sent (see Flood)
//	{"op":"tally"}                                  → {"tally":{...}} the floods' replies so far
//	{"op":"pass","fd":ID}                           → {} and a copy of the fd sent over fd 3
//	{"op":"exit"}                                   → {} and the client exits
//
// Any failure of the command itself answers {"err": "..."}.
//
// HEX messages are whole D-Bus messages (little-endian): the test encodes
// the method call, with any Go values as arguments (so it can send wrong
// types on purpose), and the client sends it byte for byte, flags included,
// under its own serial. The reply (method return or error) comes back byte
// for byte too; the fds that came with it stay in the client, and "fds"
// lists their ids in the message's order, so a dbus.UnixFDIndex i in the
// body stands for the client's fd fds[i].

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/internal/busconn"
	"golang.org/x/sys/unix"
)

type request struct {
	Op        string `json:"op"`
	Msg       string `json:"msg,omitempty"`
	FD        int    `json:"fd,omitempty"`
	Data      string `json:"data,omitempty"`
	TimeoutMS int    `json:"timeout_ms,omitempty"`
	AttachFDs int    `json:"attach_fds,omitempty"`
	Seed      int64  `json:"seed,omitempty"`
	Count     int    `json:"count,omitempty"`
	Ioctl     string `json:"ioctl,omitempty"`
	Value     int    `json:"value,omitempty"`
}

type response struct {
	Err        string         `json:"err,omitempty"`
	UniqueName string         `json:"unique_name,omitempty"`
	Reply      string         `json:"reply,omitempty"`
	FDs        []int          `json:"fds,omitempty"`
	Data       string         `json:"data,omitempty"`
	Timeout    bool           `json:"timeout,omitempty"`
	IfName     string         `json:"ifname,omitempty"`
	Flags      uint16         `json:"flags,omitempty"`
	Fuzz       *FuzzReport    `json:"fuzz,omitempty"`
	Tally      map[string]int `json:"tally,omitempty"`
	TookNS     int64          `json:"took_ns,omitempty"`
}

// Client is a D-Bus client process running as a test user.
type Client struct {
	User       string
	UID        uint32
	UniqueName string

	t    testing.TB
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	log  *lineLog
	done chan struct{}
	// passFD receives copies of the client's fds (see Pass).
	passFD int
}

// Client starts a client as user (one of the test users) connected to the
// private bus. It exits when t ends.
func (e *Env) Client(t testing.TB, userName string) *Client {
	t.Helper()
	u, err := user.Lookup(userName)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	groupIDs, err := u.GroupIds()
	if err != nil {
		t.Fatalf("harness: groups of %s: %v", userName, err)
	}
	var groups []uint32
	for _, g := range groupIDs {
		id, _ := strconv.Atoi(g)
		groups = append(groups, uint32(id))
	}
	cmd := exec.Command(testBinary)
	cmd.Env = []string{clientEnv + "=1", "DBUS_SYSTEM_BUS_ADDRESS=" + BusAddress, "PATH=" + os.Getenv("PATH"), "HOME=/nonexistent", "USER=" + userName}
	cmd.Dir = "/"
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	passing := os.NewFile(uintptr(pair[1]), "client passing socket")
	cmd.ExtraFiles = []*os.File{passing}
	c := &Client{User: userName, UID: uint32(uid), t: t, cmd: cmd, log: &lineLog{t: t, prefix: "client " + userName + ": "}, done: make(chan struct{}), passFD: pair[0]}
	cmd.Stderr = c.log
	c.in, err = cmd.StdinPipe()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	// A pipe of our own rather than StdoutPipe: Wait closes that as soon as
	// the client exits, maybe before its last answer was read.
	stdout, stdoutW, err := os.Pipe()
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	cmd.Stdout = stdoutW
	c.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		t.Fatalf("harness: starting client: %v", err)
	}
	stdoutW.Close()
	t.Cleanup(func() { stdout.Close() })
	passing.Close()
	t.Cleanup(func() { unix.Close(c.passFD) })
	go func() {
		cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(c.stop)
	hello := c.receive()
	if hello.Err != "" {
		t.Fatalf("harness: client %s: %s", userName, hello.Err)
	}
	c.UniqueName = hello.UniqueName
	return c
}

// PID is the client's process id.
func (c *Client) PID() int { return c.cmd.Process.Pid }

// Kill kills the client with SIGKILL, dropping its connection and fds.
func (c *Client) Kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// Exit makes the client close its connection and fds and exit.
func (c *Client) Exit() {
	c.t.Helper()
	c.roundTrip(request{Op: "exit"})
	<-c.done
}

func (c *Client) stop() {
	c.in.Close() // a client exits at the end of its input
	select {
	case <-c.done:
	case <-time.After(stopTimeout):
		c.Kill()
	}
	c.log.close()
}

func (c *Client) roundTrip(req request) response {
	c.t.Helper()
	c.send(req)
	return c.receiveOK(req.Op)
}

func (c *Client) send(req request) {
	c.t.Helper()
	line, err := json.Marshal(req)
	if err != nil {
		c.t.Fatalf("harness: %v", err)
	}
	if _, err := c.in.Write(append(line, '\n')); err != nil {
		c.t.Fatalf("harness: client %s: sending %s: %v", c.User, req.Op, err)
	}
}

func (c *Client) receiveOK(op string) response {
	c.t.Helper()
	resp := c.receive()
	if resp.Err != "" {
		c.t.Fatalf("harness: client %s: %s: %s", c.User, op, resp.Err)
	}
	return resp
}

func (c *Client) receive() response {
	c.t.Helper()
	line, err := c.out.ReadBytes('\n')
	if err != nil {
		c.t.Fatalf("harness: client %s died: %v", c.User, err)
	}
	var resp response
	if err := json.Unmarshal(line, &resp); err != nil {
		c.t.Fatalf("harness: client %s: bad response %q: %v", c.User, line, err)
	}
	return resp
}

// Call is a method call a client makes. Empty Dest, Path and Interface
// mean netgrant's manager.
type Call struct {
	Dest      string
	Path      dbus.ObjectPath
	Interface string
	Method    string
	Args      []any
	// Interactive sets ALLOW_INTERACTIVE_AUTHORIZATION on the call.
	Interactive bool
	// Signature, if set, is sent instead of the arguments' own, so a test
	// can send what a well-behaved client never would (an fd where none
	// is expected).
	Signature string
	// AttachFDs sends that many fds (copies of /dev/null) with the call.
	AttachFDs int
	// AnnouncedFDs, if set, is the number of fds the call's header
	// announces instead of AttachFDs.
	AnnouncedFDs int
}

// Reply is the answer to a Call.
type Reply struct {
	// ErrorName and ErrorMessage are set for an error reply.
	ErrorName    string
	ErrorMessage string
	// Body holds the values as godbus decodes them; a received fd is a
	// dbus.UnixFDIndex i, and FDs[i] is its id in the client.
	Body []any
	// FDs are the ids of the fds received with the reply, in order.
	FDs []int
}

// CallError is a D-Bus error reply.
type CallError struct{ Name, Message string }

func (e *CallError) Error() string { return e.Name + ": " + e.Message }

// Err is the error reply as a *CallError, or nil.
func (r *Reply) Err() error {
	if r.ErrorName == "" {
		return nil
	}
	return &CallError{r.ErrorName, r.ErrorMessage}
}

// Store stores the body into dest like dbus.Store, or returns the error
// reply.
func (r *Reply) Store(dest ...any) error {
	if err := r.Err(); err != nil {
		return err
	}
	return dbus.Store(r.Body, dest...)
}

// fdIDs maps fd indexes in the body to the client's fd ids.
func (r *Reply) fdIDs(indexes []dbus.UnixFDIndex) []int {
	var ids []int
	for _, i := range indexes {
		if int(i) < len(r.FDs) {
			ids = append(ids, r.FDs[i])
		}
	}
	return ids
}

// Do makes call and returns its reply; a call that could not be made at
// all ends the test.
func (c *Client) Do(call Call) *Reply {
	c.t.Helper()
	return c.Begin(call)()
}

// Begin sends call and returns at once; the returned function waits for
// the reply. The client takes no other request until then (or until it is
// killed, after which the reply must not be waited for).
func (c *Client) Begin(call Call) (wait func() *Reply) {
	c.t.Helper()
	call = call.onManagerByDefault()
	var flags dbus.Flags
	if call.Interactive {
		flags = dbus.FlagAllowInteractiveAuthorization
	}
	msg := busconn.NewCall(call.Dest, call.Path, call.Interface, call.Method, flags, call.Args...)
	if call.Signature != "" {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.ParseSignatureMust(call.Signature))
	}
	if call.AttachFDs > 0 {
		msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(call.AttachFDs))
	}
	if call.AnnouncedFDs > 0 {
		msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(call.AnnouncedFDs))
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		c.t.Fatalf("harness: encoding call %s: %v", call.Method, err)
	}
	c.send(request{Op: "call", Msg: hex.EncodeToString(buf.Bytes()), AttachFDs: call.AttachFDs})
	return func() *Reply {
		c.t.Helper()
		return c.decodeReply(call, c.receiveOK("call"))
	}
}

func (c *Client) decodeReply(call Call, resp response) *Reply {
	c.t.Helper()
	raw, err := hex.DecodeString(resp.Reply)
	if err != nil {
		c.t.Fatalf("harness: %v", err)
	}
	reply, err := dbus.DecodeMessage(bytes.NewReader(raw))
	if err != nil {
		c.t.Fatalf("harness: decoding reply to %s: %v", call.Method, err)
	}
	r := &Reply{Body: reply.Body, FDs: resp.FDs}
	if reply.Type == dbus.TypeError {
		r.ErrorName, _ = reply.Headers[dbus.FieldErrorName].Value().(string)
		if len(reply.Body) > 0 {
			r.ErrorMessage, _ = reply.Body[0].(string)
		}
	}
	return r
}

// onManagerByDefault is call with netgrant's manager where it names no
// destination, path or interface.
func (call Call) onManagerByDefault() Call {
	if call.Dest == "" {
		call.Dest = BusName
	}
	if call.Path == "" {
		call.Path = ManagerPath
	}
	if call.Interface == "" {
		call.Interface = ManagerIface
	}
	return call
}

// FreshCall makes call on a connection the client opens for it alone, as
// a program that connects per call does (busctl, a script), and returns
// the reply and how long the call took from sending to its reply. The
// connection, and what it holds, stays until the client exits or is
// killed. Calls that pass fds back have them closed.
func (c *Client) FreshCall(call Call) (*Reply, time.Duration) {
	c.t.Helper()
	call = call.onManagerByDefault()
	msg := busconn.NewCall(call.Dest, call.Path, call.Interface, call.Method, 0, call.Args...)
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		c.t.Fatalf("harness: encoding call %s: %v", call.Method, err)
	}
	c.send(request{Op: "fresh", Msg: hex.EncodeToString(buf.Bytes())})
	resp := c.receiveOK("fresh")
	return c.decodeReply(call, resp), time.Duration(resp.TookNS)
}

// Emit makes the client send count copies of the signal name
// ("interface.member") from path to dest (none: broadcast), as fast as it
// can.
func (c *Client) Emit(dest string, path dbus.ObjectPath, name string, count int, args ...any) {
	c.t.Helper()
	msg, err := busconn.NewSignal(path, name, args...)
	if err != nil {
		c.t.Fatalf("harness: %v", err)
	}
	if dest != "" {
		msg.Headers[dbus.FieldDestination] = dbus.MakeVariant(dest)
	}
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		c.t.Fatalf("harness: encoding signal %s: %v", name, err)
	}
	c.roundTrip(request{Op: "signal", Msg: hex.EncodeToString(buf.Bytes()), Count: count})
}

// Flood sends count copies of call one after another, without waiting
// for any reply; Tally then counts their replies.
func (c *Client) Flood(call Call, count int) {
	c.t.Helper()
	call = call.onManagerByDefault()
	var flags dbus.Flags
	if call.Interactive {
		flags = dbus.FlagAllowInteractiveAuthorization
	}
	msg := busconn.NewCall(call.Dest, call.Path, call.Interface, call.Method, flags, call.Args...)
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		c.t.Fatalf("harness: encoding call %s: %v", call.Method, err)
	}
	c.roundTrip(request{Op: "flood", Msg: hex.EncodeToString(buf.Bytes()), Count: count})
}

// Tally counts the replies to the client's floods so far by error name
// ("" for a success).
func (c *Client) Tally() map[string]int {
	c.t.Helper()
	return c.roundTrip(request{Op: "tally"}).Tally
}

// Call calls a method of netgrant's manager.
func (c *Client) Call(method string, args ...any) *Reply {
	c.t.Helper()
	return c.Do(Call{Method: method, Args: args})
}

// CreateTap calls the manager's CreateTap; fds are the ids of the queue
// fds in the client.
func (c *Client) CreateTap(opts map[string]dbus.Variant) (path dbus.ObjectPath, fds []int, info map[string]dbus.Variant, err error) {
	c.t.Helper()
	if opts == nil {
		opts = map[string]dbus.Variant{}
	}
	var indexes []dbus.UnixFDIndex
	r := c.Call("CreateTap", opts)
	if err := r.Store(&path, &indexes, &info); err != nil {
		return "", nil, nil, err
	}
	return path, r.fdIDs(indexes), info, nil
}

// FDs are the ids of the fds the client holds.
func (c *Client) FDs() []int {
	c.t.Helper()
	return c.roundTrip(request{Op: "fds"}).FDs
}

// CloseFD closes a held fd.
func (c *Client) CloseFD(id int) {
	c.t.Helper()
	c.roundTrip(request{Op: "close", FD: id})
}

// Write writes one frame to a held fd.
func (c *Client) Write(id int, frame []byte) {
	c.t.Helper()
	c.roundTrip(request{Op: "write", FD: id, Data: hex.EncodeToString(frame)})
}

// ErrTimeout is Read's error when no frame arrived in time.
var ErrTimeout = errors.New("no frame before the timeout")

// Read reads one frame from a held fd, waiting at most timeout.
func (c *Client) Read(id int, timeout time.Duration) ([]byte, error) {
	c.t.Helper()
	resp := c.roundTrip(request{Op: "read", FD: id, TimeoutMS: int(timeout.Milliseconds())})
	if resp.Timeout {
		return nil, ErrTimeout
	}
	return hex.DecodeString(resp.Data)
}

// TunGetIff reports the device name and IFF_* flags of a held tun/tap fd.
func (c *Client) TunGetIff(id int) (ifname string, flags uint16) {
	c.t.Helper()
	resp := c.roundTrip(request{Op: "tungetiff", FD: id})
	return resp.IfName, resp.Flags
}

// TunIoctl makes the client, as the holder of tap fd id, set the tap's
// persistence ("persist"), owner ("owner") or group ("group") to value.
func (c *Client) TunIoctl(id int, ioctl string, value int) {
	c.t.Helper()
	c.roundTrip(request{Op: "tunioctl", FD: id, Ioctl: ioctl, Value: value})
}

// Pass gets a copy of a held fd from the client, as a user hands a tap fd
// to the QEMU it starts. The caller closes it.
func (c *Client) Pass(id int) *os.File {
	c.t.Helper()
	c.roundTrip(request{Op: "pass", FD: id})
	oob := make([]byte, unix.CmsgSpace(4))
	_, oobn, _, _, err := unix.Recvmsg(c.passFD, make([]byte, 1), oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		c.t.Fatalf("harness: receiving fd %d from the client: %v", id, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		c.t.Fatalf("harness: receiving fd %d from the client: %v", id, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		c.t.Fatalf("harness: receiving fd %d from the client: %v", id, err)
	}
	return os.NewFile(uintptr(fds[0]), "tap fd")
}
