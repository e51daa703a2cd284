package dnsmasq

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// StopOrphan stops the dnsmasq of dir that an earlier netgrantd left
// running, and returns once it has exited, its sockets closed, so that the
// next dnsmasq of dir can bind them. No file dnsmasq could write is
// trusted to find it: it is the process running the dnsmasq binary under
// a uid ours accepts, whose command line names dir's lease file. Nobody
// else can start a process with that binary under those uids.
//
// A dying process leaves /proc's view of its binary before it closes its
// files, so "no longer listed" is not "gone": each process is waited for
// through a pidfd, which reports the exit only once the files are closed.
func StopOrphan(dir string, ours func(uid int) bool) error {
	bin, err := binary()
	if err != nil {
		return nil // no dnsmasq binary, no dnsmasq running
	}
	// /proc/PID/exe shows the binary's real path.
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return err
	}
	found, err := orphans(dir, bin, ours)
	if err != nil {
		return err
	}
	defer func() {
		for _, pidfd := range found {
			unix.Close(pidfd)
		}
	}()
	for _, pidfd := range found {
		unix.PidfdSendSignal(pidfd, unix.SIGTERM, nil, 0)
	}
	if waitExited(found, stopGrace) {
		return nil
	}
	for _, pidfd := range found {
		unix.PidfdSendSignal(pidfd, unix.SIGKILL, nil, 0)
	}
	if !waitExited(found, stopGrace) {
		return fmt.Errorf("the previous dnsmasq of %s did not exit, even when killed", dir)
	}
	return nil
}

// OurUIDs accepts the uids a dnsmasq of netgrant's may run under: the
// delegated ids of User, User's own and root's, under which earlier
// versions started it before it changed to User.
func OurUIDs() func(uid int) bool {
	ids, idsErr := DelegatedIDs()
	account, accountErr := user.Lookup(User)
	return func(uid int) bool {
		switch {
		case uid == 0:
			return true
		case accountErr == nil && strconv.Itoa(uid) == account.Uid:
			return true
		}
		return idsErr == nil && uid >= ids.UID && uid < ids.UID+ids.Count
	}
}

// waitExited waits up to limit for every process of pidfds to exit.
func waitExited(pidfds []int, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for _, pidfd := range pidfds {
		for {
			left := time.Until(deadline)
			if left <= 0 {
				return false
			}
			fds := []unix.PollFd{{Fd: int32(pidfd), Events: unix.POLLIN}}
			n, err := unix.Poll(fds, int(left.Milliseconds())+1)
			if err == nil && n > 0 {
				break
			}
			if err != nil && !errors.Is(err, unix.EINTR) {
				return false
			}
		}
	}
	return true
}

// orphans returns pidfds of the processes of dir's dnsmasq. The process
// is checked once more after its pidfd is open, so a pid reused meanwhile
// is never signalled.
func orphans(dir, bin string, ours func(uid int) bool) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	marker := []byte(leaseFileArg(dir))
	var pidfds []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !isOrphan(pid, bin, ours, marker) {
			continue
		}
		pidfd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // gone already
		}
		if !isOrphan(pid, bin, ours, marker) {
			unix.Close(pidfd)
			continue
		}
		pidfds = append(pidfds, pidfd)
	}
	return pidfds, nil
}

func isOrphan(pid int, bin string, ours func(uid int) bool, marker []byte) bool {
	proc := filepath.Join("/proc", strconv.Itoa(pid))
	if exe, err := os.Readlink(filepath.Join(proc, "exe")); err != nil || exe != bin {
		return false
	}
	if owner, ok := realUID(proc); !ok || !ours(owner) {
		return false
	}
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	return err == nil && containsArg(cmdline, marker)
}

func realUID(proc string) (int, bool) {
	status, err := os.ReadFile(filepath.Join(proc, "status"))
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(status), "\n") {
		if fields := strings.Fields(line); len(fields) > 1 && fields[0] == "Uid:" {
			uid, err := strconv.Atoi(fields[1])
			return uid, err == nil
		}
	}
	return 0, false
}

func containsArg(cmdline, arg []byte) bool {
	for _, a := range bytes.Split(cmdline, []byte{0}) {
		if bytes.Equal(a, arg) {
			return true
		}
	}
	return false
}
