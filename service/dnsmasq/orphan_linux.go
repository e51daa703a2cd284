package dnsmasq

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StopOrphan stops the dnsmasq that an earlier netgrantd started for dir
// and could not stop itself (it died), found by its pid file. The command
// line must name dir, so a recycled pid is never killed.
func StopOrphan(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, pidFileName))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return nil
	}
	ours := func() bool {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && strings.Contains(string(cmdline), dir+"/")
	}
	if !ours() {
		return nil
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(stopGrace); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if !ours() {
			return nil
		}
	}
	return syscall.Kill(pid, syscall.SIGKILL)
}
