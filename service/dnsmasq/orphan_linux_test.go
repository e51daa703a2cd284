package dnsmasq

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// StopOrphan stops the process the pid file names only if its
// command line names the directory: pids are reused, and anything else
// must be spared.
func TestStopOrphan(t *testing.T) {
	dir := t.TempDir()
	writePID := func(pid int) {
		if err := os.WriteFile(filepath.Join(dir, "dnsmasq.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	stranger := exec.Command("sleep", "60")
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	defer stranger.Process.Kill()
	writePID(stranger.Process.Pid)
	if err := StopOrphan(dir); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(stranger.Process.Pid, 0); err != nil {
		t.Fatal("StopOrphan killed a process that was not that directory's dnsmasq")
	}

	// "$0" puts the directory on the command line, as dnsmasq's
	// --pid-file=DIR/dnsmasq.pid does.
	orphan := exec.Command("sh", "-c", "sleep 60", dir+"/dnsmasq.pid")
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { orphan.Wait(); close(exited) }()
	writePID(orphan.Process.Pid)
	if err := StopOrphan(dir); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("StopOrphan left the directory's dnsmasq running")
	}

	if err := StopOrphan(t.TempDir()); err != nil {
		t.Fatalf("no pid file: %v", err)
	}
}
