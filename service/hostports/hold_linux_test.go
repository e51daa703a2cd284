package hostports

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/netgrant/netgrant/test/nstest"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { nstest.Main(m) }

// reuseAddr listens as a server that sets SO_REUSEADDR does.
var reuseAddr = net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
	var err error
	c.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
	return err
}}

// A held port cannot be bound by a program, even one that sets
// SO_REUSEADDR, on any address the hold covers; Close gives it back; a
// port in use cannot be held.
func TestHold(t *testing.T) {
	nstest.Require(t)
	for _, proto := range []string{"tcp", "udp"} {
		held, err := Hold(proto, netip.Addr{}, 4321)
		if err != nil {
			t.Fatal(err)
		}
		bind := func(addr string) error {
			if proto == "tcp" {
				l, err := reuseAddr.Listen(context.Background(), "tcp4", addr)
				if err == nil {
					l.Close()
				}
				return err
			}
			c, err := reuseAddr.ListenPacket(context.Background(), "udp4", addr)
			if err == nil {
				c.Close()
			}
			return err
		}
		for _, addr := range []string{"0.0.0.0:4321", "127.0.0.1:4321"} {
			if err := bind(addr); !errors.Is(err, syscall.EADDRINUSE) {
				t.Errorf("%s %s while held: %v, want EADDRINUSE", proto, addr, err)
			}
		}
		if proto == "tcp" {
			if c, err := net.Dial("tcp4", "127.0.0.1:4321"); err == nil {
				c.Close()
				t.Error("a connection to the held TCP port was taken")
			}
		}
		held.Close()
		if err := bind("0.0.0.0:4321"); err != nil {
			t.Errorf("%s after Close: %v", proto, err)
		}

		taken, err := reuseAddr.ListenPacket(context.Background(), "udp4", "127.0.0.1:4322")
		if err != nil {
			t.Fatal(err)
		}
		if proto == "tcp" {
			taken.Close()
			l, err := net.Listen("tcp4", "127.0.0.1:4322")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
		} else {
			defer taken.Close()
		}
		if _, err := Hold(proto, netip.Addr{}, 4322); !errors.Is(err, ErrInUse) {
			t.Errorf("holding %s port 4322 in use on loopback: %v, want ErrInUse", proto, err)
		}
		if other, err := Hold(proto, netip.MustParseAddr("127.0.0.2"), 4322); err != nil {
			t.Errorf("holding %s 127.0.0.2:4322 beside 127.0.0.1:4322: %v", proto, err)
		} else {
			other.Close()
		}
	}
}
