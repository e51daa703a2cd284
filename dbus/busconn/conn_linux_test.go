package busconn

import (
	"bytes"
	"encoding/binary"
	"net"
	"os"
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

// More fds announced than arrived is a broken stream, not a message.
func TestMissingFDsEndTheStream(t *testing.T) {
	a, b := socketPair(t)
	msg := call(":1.9", "s", "x")
	msg.Headers[dbus.FieldUnixFDs] = dbus.MakeVariant(uint32(3))
	if _, err := a.Write(encode(t, msg)); err != nil {
		t.Fatal(err)
	}
	if _, err := (&reader{sock: b}).next(); err == nil {
		t.Fatal("a message announcing fds that never came was accepted")
	}
}
