package dnsmasq

import (
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/nstest"
)

// orphan starts a dnsmasq as a netgrantd would have, for dir, and returns a
// channel closed when it exits.
func orphan(t *testing.T, dir string, args ...string) (*exec.Cmd, <-chan struct{}) {
	t.Helper()
	bin, err := binary()
	if err != nil {
		t.Skip(err)
	}
	cmd := exec.Command(bin, append([]string{"--keep-in-foreground", "--conf-file=/dev/null", "--port=0", "--pid-file=",
		"--user=" + testAccount.User, "--group=" + testAccount.Group}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	return cmd, exited
}

// StopOrphan stops a directory's dnsmasq, found by its binary, its uid and
// the lease file on its command line; any other process is spared, even one
// that names the directory.
func TestStopOrphan(t *testing.T) {
	nstest.Require(t)
	dir, other := t.TempDir(), t.TempDir()
	_, orphanExited := orphan(t, dir, leaseFileArg(dir))
	_, otherExited := orphan(t, other, leaseFileArg(other))
	impostor := exec.Command("sh", "-c", "sleep 60", leaseFileArg(dir))
	if err := impostor.Start(); err != nil {
		t.Fatal(err)
	}
	defer impostor.Process.Kill()

	// dnsmasq drops to testAccount soon after it starts; either uid counts.
	if err := StopOrphan(dir, testAccount); err != nil {
		t.Fatal(err)
	}
	select {
	case <-orphanExited:
	case <-time.After(10 * time.Second):
		t.Fatal("StopOrphan left the directory's dnsmasq running")
	}
	select {
	case <-otherExited:
		t.Fatal("StopOrphan stopped another directory's dnsmasq")
	default:
	}
	if err := syscall.Kill(impostor.Process.Pid, 0); err != nil {
		t.Fatal("StopOrphan killed a process that only named the directory")
	}
	if err := StopOrphan(t.TempDir(), testAccount); err != nil {
		t.Fatalf("no dnsmasq at all: %v", err)
	}
}
