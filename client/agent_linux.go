package client

import (
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// StartTTYAgent starts pkttyagent, as systemctl does, when a password
// prompt could be answered: stdin is a terminal and the caller is not root
// (polkit never asks root). It returns once the agent is registered, so
// calls made afterwards on c with interactive authorization prompt on the
// terminal. The agent registers for this process: polkit maps the bus name
// netgrantd asks about to its process and finds the agent there, with or
// without a login session. (systemctl's --fallback would defer to the
// session's agent, but polkit uses a fallback agent only when the caller
// has a logind session, so it would never prompt over ssh without
// pam_systemd or in a container; someone typing at a terminal expects the
// prompt there anyway.) stop ends the agent; it is never nil.
func (c *Conn) StartTTYAgent() (stop func()) {
	noop := func() {}
	if os.Geteuid() == 0 || !isTerminal(os.Stdin) {
		return noop
	}
	path, err := exec.LookPath("pkttyagent")
	if err != nil {
		return noop
	}
	notifyR, notifyW, err := os.Pipe()
	if err != nil {
		return noop
	}
	defer notifyR.Close()
	cmd := exec.Command(path, "--notify-fd", "3", "--process", strconv.Itoa(os.Getpid()))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{notifyW}
	err = cmd.Start()
	notifyW.Close()
	if err != nil {
		return noop
	}
	// The agent closes the notify fd once registered (or by exiting).
	io.Copy(io.Discard, notifyR)
	return func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}
}

func isTerminal(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}
