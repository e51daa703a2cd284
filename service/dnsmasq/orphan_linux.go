package dnsmasq

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopOrphan stops the dnsmasq of dir that an earlier netgrantd left
// running. No file dnsmasq could write is trusted to find it: it is the
// process running the dnsmasq binary, as root (not yet dropped) or as
// account, whose command line names dir's lease file. Nobody else can
// start a process with that binary under those uids.
func StopOrphan(dir string, account Account) error {
	bin, err := binary()
	if err != nil {
		return nil // no dnsmasq binary, no dnsmasq running
	}
	// /proc/PID/exe shows the binary's real path.
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		return err
	}
	pids, err := orphans(dir, bin, account.UID)
	if err != nil {
		return err
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	for deadline := time.Now().Add(stopGrace); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if pids, err = orphans(dir, bin, account.UID); err != nil || len(pids) == 0 {
			return err
		}
	}
	for _, pid := range pids {
		syscall.Kill(pid, syscall.SIGKILL)
	}
	return nil
}

func orphans(dir, bin string, uid int) ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("listing processes: %w", err)
	}
	marker := []byte(leaseFileArg(dir))
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		proc := filepath.Join("/proc", e.Name())
		if exe, err := os.Readlink(filepath.Join(proc, "exe")); err != nil || exe != bin {
			continue
		}
		if owner, ok := realUID(proc); !ok || owner != 0 && owner != uid {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
		if err == nil && containsArg(cmdline, marker) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
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
