// Command netgrant is the command line client of netgrantd: it runs VMs
// (or anything else) with tap devices, and creates, lists and deletes NAT
// networks and taps, each request authorized by polkit.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/netgrant/netgrant/client"
)

var version = "devel"

const usageMain = `Usage: netgrant COMMAND [OPTIONS]

Network access for virtual machines without root: tap devices and private
NAT networks from netgrantd, each request authorized by polkit.

Commands:
  run [OPTIONS] -- COMMAND [ARGS...]
                           run COMMAND (e.g. QEMU) with tap fds; the network
                           it uses lives as long as COMMAND does
  list [--json]            networks (IPv4 and IPv6), taps, DHCP leases and
                           port forwards
  network create NAME [OPTIONS]
                           create a persistent NAT network
  network show NAME [--json]
                           a network's settings, taps, leases and forwards
  network delete NAME      tear a network down now
  network forward add NAME PROTO HOST_PORT GUEST GUEST_PORT [--address ADDR]
                           forward a port of this host to a guest
  network forward remove NAME PROTO HOST_PORT
                           remove a port forward
  network forward list NAME [--json]
                           a network's port forwards
  tap delete IFNAME        delete a tap device now
  help [COMMAND]           this text, or a command's
  version                  netgrant's version

Every command takes --help. When polkit wants a password, netgrant asks for
it on the terminal (or your desktop's agent does); --no-ask-password fails
instead.

Example:
  netgrant run --network demo -- qemu-system-x86_64 -m 1G disk.qcow2 \
      -netdev tap,id=n0,fd={fd} -device virtio-net-pci,netdev=n0,mac={mac}
`

// exitError ends the program with code after printing msg (if any).
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError is a mistake on the command line: exit status 2.
func usageError(command, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &exitError{code: 2, msg: fmt.Sprintf("netgrant %s: %s\nRun \"netgrant %s --help\" for usage.", command, msg, command)}
}

type command struct {
	usage string
	run   func(args []string, stdout io.Writer) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"run":                    {usageRun, runCommand},
		"list":                   {usageList, listCommand},
		"network create":         {usageNetworkCreate, networkCreateCommand},
		"network show":           {usageNetworkShow, networkShowCommand},
		"network delete":         {usageNetworkDelete, networkDeleteCommand},
		"network forward add":    {usageForwardAdd, forwardAddCommand},
		"network forward remove": {usageForwardRemove, forwardRemoveCommand},
		"network forward list":   {usageForwardList, forwardListCommand},
		"tap delete":             {usageTapDelete, tapDeleteCommand},
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout)
	if err == nil {
		return 0
	}
	var exit *exitError
	if errors.As(err, &exit) {
		if exit.msg != "" {
			fmt.Fprintln(stderr, exit.msg)
		}
		return exit.code
	}
	fmt.Fprintln(stderr, "netgrant: "+client.Explain(err))
	return 1
}

func dispatch(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usageMain)
		return &exitError{code: 2}
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 && args[0] == "help" {
			name := strings.Join(args[1:], " ")
			c, ok := commands[name]
			if !ok {
				return &exitError{code: 2, msg: fmt.Sprintf("netgrant help: no command %q", name)}
			}
			fmt.Fprint(stdout, c.usage)
			return nil
		}
		fmt.Fprint(stdout, usageMain)
		return nil
	case "version", "--version":
		fmt.Fprintln(stdout, "netgrant", version)
		return nil
	}
	name := args[0]
	rest := args[1:]
	for isGroup(name) {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			return groupUsage(name, rest, stdout)
		}
		name += " " + rest[0]
		rest = rest[1:]
	}
	c, ok := commands[name]
	if !ok {
		return &exitError{code: 2, msg: fmt.Sprintf("netgrant: unknown command %q\nRun \"netgrant --help\" for the commands.", name)}
	}
	return c.run(rest, stdout)
}

// isGroup tells whether name is the start of other commands' names.
func isGroup(name string) bool {
	for c := range commands {
		if strings.HasPrefix(c, name+" ") {
			return true
		}
	}
	return false
}

// groupUsage answers "netgrant network" and "netgrant network --help".
func groupUsage(group string, args []string, stdout io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: netgrant %s COMMAND\n\nCommands:\n", group)
	// A command's entry may go on over more deeply indented lines.
	inGroup := false
	for _, line := range strings.Split(usageMain, "\n") {
		switch {
		case strings.HasPrefix(line, "  "+group+" "):
			inGroup = true
		case !strings.HasPrefix(line, "    "):
			inGroup = false
		}
		if inGroup {
			fmt.Fprintln(&b, line)
		}
	}
	if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
		fmt.Fprint(stdout, b.String())
		return nil
	}
	return &exitError{code: 2, msg: strings.TrimSuffix(b.String(), "\n")}
}

// cmdFlags are a command's options and its usage text.
type cmdFlags struct {
	*flag.FlagSet
	command string
	usage   string
	stdout  io.Writer
}

func flagSet(command, usage string, stdout io.Writer) *cmdFlags {
	fs := flag.NewFlagSet(command, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// flag calls Usage on every error too; usage goes out on --help only.
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, command: command, usage: usage, stdout: stdout}
}

// parse parses options up to the first argument that is no option.
func (fs *cmdFlags) parse(args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(fs.stdout, fs.usage)
			return &exitError{code: 0}
		}
		return usageError(fs.command, "%v", err)
	}
	return nil
}

// parseArgs parses options anywhere among the arguments (before a "--");
// it returns the other arguments.
func parseArgs(fs *cmdFlags, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fs.parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		// flag stops at the first argument that is no option, or after "--".
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// positionalArgs checks that exactly the named arguments were given.
func positionalArgs(command string, args []string, names ...string) error {
	if len(args) < len(names) {
		return usageError(command, "missing %s", names[len(args)])
	}
	if len(args) > len(names) {
		return usageError(command, "unexpected argument %q", args[len(names)])
	}
	return nil
}

// session is what a command that calls netgrantd needs.
type session struct {
	conn        *client.Conn
	interactive bool
	stopAgent   func()
}

// connect connects to the system bus; with askPassword, calls allow
// interactive authorization, and a terminal polkit agent is started first
// if stdin is a terminal.
func connect(askPassword bool) (*session, error) {
	conn, err := client.Connect()
	if err != nil {
		return nil, err
	}
	s := &session{conn: conn, interactive: askPassword, stopAgent: func() {}}
	if askPassword {
		s.stopAgent = sync.OnceFunc(conn.StartTTYAgent())
	}
	return s, nil
}

func (s *session) close() {
	s.stopAgent()
	s.conn.Close()
}

const noAskPasswordHelp = "never prompt for a password: fail when polkit wants one"
