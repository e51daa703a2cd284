package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// On a netgrant network a guest may send only from the MAC its tap was
// made for, but QEMU does not tell its bridge helper which MAC the NIC
// has. It is on QEMU's command line, though: the helper's parent's.

// qemuDefaultMAC is the MAC QEMU gives its first NIC when none is set.
const qemuDefaultMAC = "52:54:00:12:34:56"

var macOption = regexp.MustCompile(`(?i)(?:^|[,{\s"])(?:mac|macaddr)"?\s*[=:]\s*"?([0-9a-f]{2}(?::[0-9a-f]{2}){5})`)

// guestMAC finds the MAC QEMU's NIC will use from QEMU's command line
// args: the one MAC it names, or QEMU's default when it names none; ""
// when it names several (which NIC this tap is for cannot be told) or
// the parent is not QEMU (libvirt runs the helper itself).
func guestMAC(comm string, args []string) string {
	if !strings.HasPrefix(comm, "qemu") {
		return ""
	}
	found := map[string]bool{}
	for _, arg := range args {
		for _, m := range macOption.FindAllStringSubmatch(arg, -1) {
			found[strings.ToLower(m[1])] = true
		}
	}
	switch len(found) {
	case 0:
		return qemuDefaultMAC
	case 1:
		for mac := range found {
			return mac
		}
	}
	return ""
}

// parentGuestMAC is guestMAC of the process that started the helper.
func parentGuestMAC() string {
	proc := filepath.Join("/proc", strconv.Itoa(os.Getppid()))
	comm, err := os.ReadFile(filepath.Join(proc, "comm"))
	if err != nil {
		return ""
	}
	cmdline, err := os.ReadFile(filepath.Join(proc, "cmdline"))
	if err != nil {
		return ""
	}
	args := strings.Split(string(bytes.TrimRight(cmdline, "\x00")), "\x00")
	return guestMAC(strings.TrimSpace(string(comm)), args)
}
