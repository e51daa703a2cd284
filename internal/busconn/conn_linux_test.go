package busconn

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"
)

// socketPair returns the two ends of a unix stream socket pair.
func socketPair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1])
}

func encode(t *testing.T, msg *dbus.Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := msg.EncodeTo(&buf, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func call(sender string, sig string, body ...any) *dbus.Message {
	msg := NewCall("org.netgrant.NetGrant1", "/org/netgrant/NetGrant1", "org.netgrant.NetGrant1.Manager", "CreateTap", 0, body...)
	msg.Headers[dbus.FieldSender] = dbus.MakeVariant(sender)
	if sig != "" {
		msg.Headers[dbus.FieldSignature] = dbus.MakeVariant(dbus.ParseSignatureMust(sig))
	}
	return msg
}

// An array of fds made godbus's reader panic, killing netgrantd: the
// reader decodes fd-free, so every h is an index, and hands the fds over
// as files.
func TestFDArrayIsReadSafely(t *testing.T) {
	a, b := socketPair(t)
	msg := call(":1.9", "ah", []dbus.UnixFDIndex{0, 1, 0})
	msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(2))
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	fd := int(devNull.Fd())
	if _, _, err := a.WriteMsgUnix(encode(t, msg), unix.UnixRights(fd, fd), nil); err != nil {
		t.Fatal(err)
	}
	got, err := (&reader{sock: b}).next()
	if err != nil {
		t.Fatal(err)
	}
	defer got.CloseFiles()
	if got.DecodeErr != nil {
		t.Fatalf("decode error: %v", got.DecodeErr)
	}
	if idx, ok := got.Body[0].([]dbus.UnixFDIndex); !ok || len(idx) != 3 {
		t.Errorf("body %#v, want three fd indexes", got.Body)
	}
	if len(got.Files) != 2 {
		t.Errorf("%d files, want the 2 that came with the message", len(got.Files))
	}
	if got.Sender() != ":1.9" || got.Serial() != 0 {
		t.Errorf("sender %q serial %d", got.Sender(), got.Serial())
	}
}

// A message godbus will not decode (here: a flag it does not know, which
// D-Bus tells receivers to ignore) still yields what answering it needs.
func TestUndecodableMessageKeepsWhatAnAnswerNeeds(t *testing.T) {
	a, b := socketPair(t)
	raw := encode(t, call(":1.42", "s", "lab"))
	raw[2] |= 0x80
	binary.LittleEndian.PutUint32(raw[8:12], 77)
	if _, err := a.Write(raw); err != nil {
		t.Fatal(err)
	}
	got, err := (&reader{sock: b}).next()
	if err != nil {
		t.Fatal(err)
	}
	if got.DecodeErr == nil {
		t.Fatal("godbus decoded a message with an unknown flag; pick another defect for this test")
	}
	if got.Type != dbus.TypeMethodCall || got.Sender() != ":1.42" || got.Serial() != 77 {
		t.Errorf("type %v sender %q serial %d; want a method call from :1.42, serial 77", got.Type, got.Sender(), got.Serial())
	}
}

// A message that came with another number of fds than it announced is
// refused, its fds closed, and the stream goes on: fewer (here none for
// 3) and more (2 for 1), each followed by a good message that gets none
// of them.
func TestWrongFDCountRefusesOnlyThatMessage(t *testing.T) {
	a, b := socketPair(t)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	fd := int(devNull.Fd())
	r := &reader{sock: b}
	openBefore := openFDs(t)
	for _, c := range []struct {
		announced uint32
		sent      []int
	}{{3, nil}, {1, []int{fd, fd}}} {
		bad := call(":1.9", "s", "x")
		bad.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(c.announced)
		raw := encode(t, bad)
		binary.LittleEndian.PutUint32(raw[8:12], 41)
		var oob []byte
		if len(c.sent) > 0 {
			oob = unix.UnixRights(c.sent...)
		}
		if _, _, err := a.WriteMsgUnix(raw, oob, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Write(encode(t, call(":1.10", "s", "good"))); err != nil {
			t.Fatal(err)
		}
		got, err := r.next()
		if err != nil {
			t.Fatalf("%d fds for %d announced ended the stream: %v", len(c.sent), c.announced, err)
		}
		if !errors.Is(got.DecodeErr, ErrFDCount) || len(got.Files) != 0 || got.Sender() != ":1.9" || got.Serial() != 41 {
			t.Errorf("%d fds for %d announced: decode error %v, %d files, sender %q serial %d", len(c.sent), c.announced, got.DecodeErr, len(got.Files), got.Sender(), got.Serial())
		}
		good, err := r.next()
		if err != nil || good.DecodeErr != nil || len(good.Files) != 0 || good.Body[0] != "good" {
			t.Fatalf("the message after: %v, %+v", err, good)
		}
	}
	if now := openFDs(t); now != openBefore {
		t.Errorf("%d fds open after, %d before: the refused messages' fds were kept", now, openBefore)
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries)
}

// A message larger than the connection takes is refused unread: its body
// is skipped in small pieces, its fds closed, what answering it needs is
// kept, and the stream goes on.
func TestTooLargeMessageIsRefusedUnread(t *testing.T) {
	a, b := socketPair(t)
	huge := call(":1.7", "s", strings.Repeat("x", 2<<20))
	huge.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(1))
	raw := encode(t, huge)
	binary.LittleEndian.PutUint32(raw[8:12], 99)
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	written := make(chan error, 1)
	go func() {
		// A stream socket takes a large write in parts.
		n, _, err := a.WriteMsgUnix(raw, unix.UnixRights(int(devNull.Fd())), nil)
		if err == nil {
			_, err = a.Write(raw[n:])
		}
		if err == nil {
			_, err = a.Write(encode(t, call(":1.10", "s", "good")))
		}
		written <- err
	}()
	r := &reader{sock: b, limit: 1 << 20}
	openBefore := openFDs(t)
	got, err := r.next()
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(got.DecodeErr, ErrTooLarge) || got.Type != dbus.TypeMethodCall || got.Sender() != ":1.7" || got.Serial() != 99 || len(got.Files) != 0 {
		t.Errorf("decode error %v, type %v, sender %q, serial %d, %d files", got.DecodeErr, got.Type, got.Sender(), got.Serial(), len(got.Files))
	}
	if len(got.Raw) > 1<<16 {
		t.Errorf("%d bytes of the refused message kept", len(got.Raw))
	}
	good, err := r.next()
	if err != nil || good.DecodeErr != nil || good.Body[0] != "good" {
		t.Fatalf("the message after: %v, %+v", err, good)
	}
	if err := <-written; err != nil {
		t.Fatal(err)
	}
	if now := openFDs(t); now > openBefore {
		t.Errorf("%d fds open after, %d before: the refused message's fd was kept", now, openBefore)
	}
}
