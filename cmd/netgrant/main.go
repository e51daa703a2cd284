// Command netgrant is the command line client of netgrantd: it runs VMs
// (or anything else) with tap devices, and creates, lists and deletes NAT
// networks and taps, each request authorized by polkit.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/netgrant/netgrant/client"
	"github.com/netgrant/netgrant/internal/names"
)

var version = "devel"

// Exit statuses, as netgrant(1) documents them: sysexits' EX_UNAVAILABLE
// and EX_NOPERM where they fit, as systemctl and podman use them.
const (
	exitFailure     = 1
	exitUsage       = 2
	exitNotFound    = 4
	exitUnavailable = 69
	exitNoPerm      = 77
)

const usageMain = `Usage: netgrant COMMAND [OPTIONS]

Network access for virtual machines without root: tap devices and private
NAT networks from netgrantd, each request authorized by polkit.

Commands:
  run [OPTIONS] [--] COMMAND [ARGS...]
                           run COMMAND (e.g. QEMU) with tap fds; the network
                           it uses lives as long as COMMAND does
  list                     networks (IPv4 and IPv6), taps, DHCP leases and
                           port forwards
  network list             the networks, one a line
  network create NAME [OPTIONS]
                           create a NAT network that stays until deleted
  network show NAME        a network's settings, taps, leases and forwards
  network delete NAME      tear a network down now
  network forward add NAME PROTO HOST_PORT GUEST GUEST_PORT [--address ADDR]
                           forward a port of this host to a guest
  network forward remove NAME PROTO HOST_PORT
                           remove a port forward
  network forward list [NAME]
                           the port forwards of NAME, or of every network
  tap list                 the taps, one a line
  tap delete IFNAME        delete a tap device now
  completion bash|zsh|fish shell completion code
  help [COMMAND]           this text, or a command's
  version                  netgrant's version

Every command takes --help; every command that lists takes --json,
--format TEMPLATE and --no-legend. When polkit wants a password, netgrant
asks for it on the terminal (or your desktop's agent does);
--no-ask-password fails instead. netgrant(1) has the details and the exit
statuses.

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
func usageError(cmd *cobra.Command, format string, args ...any) error {
	path := cmd.CommandPath()
	return &exitError{code: exitUsage, msg: fmt.Sprintf("%s: %s\nRun \"%s --help\" for usage.", path, fmt.Sprintf(format, args...), path)}
}

// notFoundError is what the CLI itself found missing (exit status 4).
type notFoundError struct{ msg string }

func (e *notFoundError) Error() string { return e.msg }

func notFoundf(format string, args ...any) error {
	return &notFoundError{fmt.Sprintf(format, args...)}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(singleDashCompat(root, args))
	err := root.Execute()
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
	return exitCode(err)
}

// exitCode tells failures apart for scripts: what is missing, what is not
// permitted, and a service that is not there.
func exitCode(err error) int {
	var busErr *client.BusError
	var notFound *notFoundError
	var e *client.Error
	switch {
	case errors.As(err, &busErr):
		return exitUnavailable
	case errors.As(err, &notFound):
		return exitNotFound
	case !errors.As(err, &e):
		return exitFailure
	}
	switch e.Name {
	case names.ErrorPrefix + "NotFound":
		return exitNotFound
	case client.ErrAccessDenied, client.ErrInteractiveRequired, names.ErrorPrefix + "NotOwner", names.ErrorPrefix + "BridgeNotAllowed":
		return exitNoPerm
	case client.ErrServiceUnknown, client.ErrNoReply, client.ErrNameHasNoOwner:
		return exitUnavailable
	}
	return exitFailure
}

// newRoot builds the command tree. Help is the hand-written usage text
// of each command (its Long), so that what --help shows is what the
// manual says; cobra parses and completes.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "netgrant",
		Long:          usageMain,
		Version:       version,
		Args:          cobra.ArbitraryArgs,
		SilenceErrors: true,
		SilenceUsage:  true,
		RunE:          groupRun,
		// A typo of a command is one of at most two letters.
		SuggestionsMinimumDistance: 2,
		// The completion command is documented; its hidden helpers are
		// not.
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: false},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetVersionTemplate("netgrant {{.Version}}\n")
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { fmt.Fprint(cmd.OutOrStdout(), usageOf(cmd)) })
	root.SetFlagErrorFunc(flagError)
	root.SetHelpCommand(helpCommand())

	network := group("network", "networks: list, create, show, delete, forward")
	forward := group("forward", "port forwards: add, remove, list")
	forward.AddCommand(forwardAddCommand(), forwardRemoveCommand(), forwardListCommand())
	network.AddCommand(networkListCommand(), networkCreateCommand(), networkShowCommand(), networkDeleteCommand(), forward)
	tap := group("tap", "taps: list, delete")
	tap.AddCommand(tapListCommand(), tapDeleteCommand())
	root.AddCommand(runCommand(), listCommand(), network, tap, versionCommand())
	root.InitDefaultCompletionCmd()
	for _, c := range root.Commands() {
		if c.Name() == "completion" {
			c.Long = usageCompletion
			for _, shell := range c.Commands() {
				shell.Long = usageCompletion
			}
		}
	}
	return root
}

const usageCompletion = `Usage: netgrant completion bash|zsh|fish

Prints the shell code that completes netgrant's commands, options, and the
names of networks and taps (read from netgrantd only when it is running:
completing never starts it). The package installs it for bash, zsh and
fish; to load it by hand:

  source <(netgrant completion bash)
  netgrant completion zsh > "${fpath[1]}/_netgrant"
  netgrant completion fish | source
`

// group is a command that only holds others: alone, it prints its
// commands; with an unknown one, it says so.
func group(name, short string) *cobra.Command {
	return &cobra.Command{Use: name, Short: short, Args: cobra.ArbitraryArgs, RunE: groupRun, SuggestionsMinimumDistance: 2}
}

// groupRun answers "netgrant network" and "netgrant network crate".
func groupRun(cmd *cobra.Command, args []string) error {
	usage := groupUsage(cmd)
	if len(args) == 0 {
		return &exitError{code: exitUsage, msg: strings.TrimSuffix(usage, "\n")}
	}
	msg := fmt.Sprintf("%s: unknown command %q", cmd.CommandPath(), args[0])
	if suggestions := cmd.SuggestionsFor(args[0]); len(suggestions) > 0 {
		msg += fmt.Sprintf("; did you mean %q?", suggestions[0])
	}
	return &exitError{code: exitUsage, msg: msg + fmt.Sprintf("\nRun \"%s --help\" for the commands.", cmd.CommandPath())}
}

// groupUsage lists a group's commands as the main usage text does.
func groupUsage(cmd *cobra.Command) string {
	if !cmd.HasParent() {
		return usageMain
	}
	prefix := strings.TrimPrefix(cmd.CommandPath(), "netgrant ")
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: %s COMMAND\n\nCommands:\n", cmd.CommandPath())
	// A command's entry may go on over more deeply indented lines.
	inGroup := false
	for _, line := range strings.Split(usageMain, "\n") {
		switch {
		case strings.HasPrefix(line, "  "+prefix+" "):
			inGroup = true
		case !strings.HasPrefix(line, "    "):
			inGroup = false
		}
		if inGroup {
			fmt.Fprintln(&b, line)
		}
	}
	return b.String()
}

func helpCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "help [COMMAND]",
		Long: usageMain,
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := cmd.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return &exitError{code: exitUsage, msg: fmt.Sprintf("netgrant help: no command %q", strings.Join(args, " "))}
			}
			fmt.Fprint(cmd.OutOrStdout(), usageOf(target))
			return nil
		},
	}
}

// usageOf is a command's help text; a group's lists its commands.
func usageOf(cmd *cobra.Command) string {
	if cmd.Long == "" {
		return groupUsage(cmd)
	}
	return cmd.Long
}

func versionCommand() *cobra.Command {
	return &cobra.Command{
		Use:  "version",
		Long: "Usage: netgrant version\n\nPrints netgrant's version.\n",
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), "netgrant", version)
			return nil
		},
	}
}

// flagError makes pflag's complaints read like the rest, with the option
// meant when the one given is a near miss.
func flagError(cmd *cobra.Command, err error) error {
	msg := err.Error()
	var typed string
	if name, ok := strings.CutPrefix(msg, "unknown flag: --"); ok {
		typed = name
	} else if _, word, ok := strings.Cut(msg, "' in -"); ok && strings.HasPrefix(msg, "unknown shorthand flag: ") && len(word) > 1 {
		// "-jsn": a long option with one dash, mistyped.
		msg, typed = "unknown flag: -"+word, word
	}
	if near := nearestFlag(cmd, typed); typed != "" && near != "" {
		msg += fmt.Sprintf(" (did you mean --%s?)", near)
	}
	return usageError(cmd, "%s", msg)
}

// nearestFlag is the option of cmd closest to name, if close enough to be
// a typo.
func nearestFlag(cmd *cobra.Command, name string) string {
	best, bestDistance := "", 3
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		if d := levenshtein(name, f.Name); d < bestDistance || d == bestDistance && best == "" && strings.HasPrefix(f.Name, name) {
			best, bestDistance = f.Name, d
		}
	})
	if bestDistance > 2 {
		return ""
	}
	return best
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// singleDashCompat rewrites "-json" to "--json" (and "-subnet=X" to
// "--subnet=X") for the command args name, where it names one of its
// long options: netgrant took Go's single-dash options before it took
// GNU's, and scripts written then keep working. It stops where the
// options end: at "--", and for run at the command to run, whose
// arguments are never touched.
func singleDashCompat(root *cobra.Command, args []string) []string {
	cmd, _, err := root.Find(args)
	if err != nil {
		return args
	}
	out := make([]string, 0, len(args))
	interspersed := cmd.Name() != "run"
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if arg == "--" {
			return append(out, args[i:]...)
		}
		if !strings.HasPrefix(arg, "-") || arg == "-" {
			if !interspersed && !isCommandWord(cmd, arg) {
				return append(out, args[i:]...)
			}
			out = append(out, arg)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		f := cmd.Flags().Lookup(name)
		if f != nil && len(name) > 1 && !strings.HasPrefix(arg, "--") {
			arg = "-" + arg
		}
		out = append(out, arg)
		if f != nil && f.NoOptDefVal == "" && !hasValue && i+1 < len(args) {
			// The option's value, whatever it looks like.
			i++
			out = append(out, args[i])
		}
	}
	return out
}

// isCommandWord tells whether word is part of the command's own name
// (as in "netgrant network forward add"), not an argument.
func isCommandWord(cmd *cobra.Command, word string) bool {
	for c := cmd; c != nil; c = c.Parent() {
		if c.Name() == word {
			return true
		}
	}
	return false
}

// noArgs refuses arguments with a usage error.
func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageError(cmd, "unexpected argument %q", args[0])
	}
	return nil
}

// exactArgs wants exactly the named arguments.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < len(names) {
			return usageError(cmd, "missing %s", names[len(args)])
		}
		if len(args) > len(names) {
			return usageError(cmd, "unexpected argument %q", args[len(names)])
		}
		return nil
	}
}

// optionalArgs takes at most the named arguments.
func optionalArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) > len(names) {
			return usageError(cmd, "unexpected argument %q", args[len(names)])
		}
		return nil
	}
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

// addNoAskPassword adds --no-ask-password to cmd; the result says whether
// a password prompt is allowed.
func addNoAskPassword(cmd *cobra.Command) func() bool {
	noAsk := cmd.Flags().Bool("no-ask-password", false, noAskPasswordHelp)
	return func() bool { return !*noAsk }
}
