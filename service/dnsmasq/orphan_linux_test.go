package dnsmasq

import (
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/nstest"
)

// orphan starts a dnsmasq as a netgrantd would have, for dir, under id,
// serving DNS on 127.0.0.1:port, and returns it once it serves.
func orphan(t *testing.T, dir string, id Identity, port int) *process {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Skip(err)
	}
	p, err := startProcess(bin, []string{"--keep-in-foreground", "--conf-file=/dev/null", "--pid-file=", "--log-facility=-",
		"--no-resolv", "--no-hosts", "--bind-interfaces", "--listen-address=127.0.0.1", "--port=" + strconv.Itoa(port),
		leaseFileArg(dir)}, id, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill(); <-p.exited })
	if err := p.waitReady(nil); err != nil {
		t.Fatal(err)
	}
	return p
}

func isTestUID(uid int) bool { return uid == testIdentity.UID }

// StopOrphan stops a directory's dnsmasq, found by its binary, its uid and
// the lease file on its command line; any other process is spared, even one
// that names the directory or is a dnsmasq of the directory under another
// network's uid.
func TestStopOrphan(t *testing.T) {
	nstest.Require(t)
	dir, other := t.TempDir(), t.TempDir()
	mine := orphan(t, dir, testIdentity, 5301)
	otherDir := orphan(t, other, testIdentity, 5302)
	otherUID := orphan(t, dir, Identity{UID: 65533, GID: 65533}, 5303)
	impostor := exec.Command("sh", "-c", "sleep 60", leaseFileArg(dir))
	if err := impostor.Start(); err != nil {
		t.Fatal(err)
	}
	defer impostor.Process.Kill()

	if err := StopOrphan(dir, isTestUID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-mine.exited:
	case <-time.After(10 * time.Second):
		t.Fatal("StopOrphan left the directory's dnsmasq running")
	}
	for what, p := range map[string]*process{"another directory's dnsmasq": otherDir, "a dnsmasq under another uid": otherUID} {
		select {
		case <-p.exited:
			t.Errorf("StopOrphan stopped %s", what)
		default:
		}
	}
	if err := syscall.Kill(impostor.Process.Pid, 0); err != nil {
		t.Fatal("StopOrphan killed a process that only named the directory")
	}
	if err := StopOrphan(t.TempDir(), isTestUID); err != nil {
		t.Fatalf("no dnsmasq at all: %v", err)
	}
}

// When StopOrphan returns, the orphan's sockets are closed: the next
// dnsmasq binds them at once. (A dying process leaves /proc's view before
// it closes its files; a restart that started the next dnsmasq then met
// "Address already in use" in about half of its runs.)
func TestStopOrphanFreesItsPorts(t *testing.T) {
	nstest.Require(t)
	dir := t.TempDir()
	for round := range 20 {
		orphan(t, dir, testIdentity, 5310)
		if err := StopOrphan(dir, isTestUID); err != nil {
			t.Fatal(err)
		}
		udp, err := net.ListenPacket("udp4", "127.0.0.1:5310")
		if err != nil {
			t.Fatalf("round %d: the orphan's UDP port right after StopOrphan: %v", round, err)
		}
		udp.Close()
		tcp, err := net.Listen("tcp4", "127.0.0.1:5310")
		if err != nil {
			t.Fatalf("round %d: the orphan's TCP port right after StopOrphan: %v", round, err)
		}
		tcp.Close()
	}
}
