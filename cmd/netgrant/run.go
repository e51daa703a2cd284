package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/godbus/dbus/v5"
	"github.com/spf13/cobra"
)

const usageRun = `Usage: netgrant run [OPTIONS] [--] COMMAND [ARGS...]

Creates tap devices (creating or joining the NAT networks they use), runs
COMMAND with the taps' fds from fd 3 on, forwards signals to it and exits
with its status. The networks are held by this command: one it created goes
away when COMMAND exits, unless it is persistent or someone else holds it.
A tap lives as long as COMMAND (or anything it passes the fds to) keeps them.

Without --network, --bridge or --tap, COMMAND gets a tap on your own
network, user-UID (user-1000 for uid 1000), created or joined: only you
may create it.

Options:
  --network NAME     create the NAT network NAME, or join it if it is yours
                     and the options match; without --tap, COMMAND gets one
                     tap on it
  --subnet CIDR      the network's IPv4 subnet (default: a free /24)
  --subnet6 CIDR     the network's IPv6 /64 inside the configured
                     SubnetPool6 (default: derived from the machine and
                     the network's name)
  --no-ipv6          an IPv4-only network
  --isolated         no outbound traffic: the host and the guests only
  --bridge BRIDGE    without --tap: the tap joins this bridge (a host bridge
                     the administrator allows, or a network's bridge)
  --queues N         without --tap: queues (fds) of the tap, 1..16
  --mac MAC          without --tap: the guest's MAC (default: generated)
  --forward [PROTO:]HOST_PORT:GUEST_PORT
                     forward HOST_PORT of this host (PROTO tcp, the
                     default, or udp) to GUEST_PORT of the guest on the
                     first tap on a network, at the tap's address, once
                     the tap exists, until COMMAND exits (repeatable),
                     like podman's -p: --forward 2222:22
  --tap SPEC         a tap (repeatable, in order): KEY=VALUE,... with keys
                     network, bridge, queues, mac, mtu, vnet_hdr (on|off),
                     ipv4 (with network: the guest's fixed address),
                     e.g. --tap network=demo,queues=2 --tap bridge=br0
  --no-ask-password  ` + noAskPasswordHelp + `

In COMMAND and its arguments:
  {fd}      the first tap's fd (its first queue), for QEMU's tap,fd=
  {fds}     all the first tap's fds, colon-separated, for QEMU's tap,fds=
  {mac}     the MAC the guest must use on the first tap
  {ifname}  the first tap's device name
  {fd1} {fds1} {mac1} {ifname1}  the second tap's, and so on
  {vhost}   on where you may open /dev/vhost-net, else off: for QEMU's
            -netdev tap,vhost={vhost} (the kernel moves the packets)
The environment has NETGRANT_TAP_FDS, NETGRANT_MAC and NETGRANT_IFNAME for
the first tap, NETGRANT_TAP_FDS1, NETGRANT_MAC1, ... for the others, and
NETGRANT_VHOST.

Examples:
  netgrant run --network demo -- qemu-system-x86_64 -m 1G disk.qcow2 \
      -netdev tap,id=n0,fd={fd},vhost={vhost} -device virtio-net-pci,netdev=n0,mac={mac}
  netgrant run --tap network=demo,queues=4 --tap bridge=br0 -- \
      qemu-system-x86_64 ... \
      -netdev tap,id=n0,fds={fds},vhost=off -device virtio-net-pci,netdev=n0,mq=on,mac={mac} \
      -netdev tap,id=n1,fd={fd1} -device virtio-net-pci,netdev=n1,mac={mac1}
`

// forwardedSignals go on to the child. A terminal's Ctrl-C reaches the
// child twice (the terminal signals the whole process group); programs
// treat a second SIGINT like the first.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2}

func runCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "run [OPTIONS] [--] COMMAND [ARGS...]", Long: usageRun}
	// Options end at COMMAND: what follows is COMMAND's.
	cmd.Flags().SetInterspersed(false)
	var network networkOptions
	networkName := cmd.Flags().String("network", "", "create or join this network")
	cmd.RegisterFlagCompletionFunc("network", completeNetworkFlag)
	network.add(cmd)
	bridge := cmd.Flags().String("bridge", "", "the tap joins this bridge")
	cmd.RegisterFlagCompletionFunc("bridge", completeBridgeFlag)
	queues := cmd.Flags().Uint("queues", 0, "queues of the tap")
	mac := cmd.Flags().String("mac", "", "the guest's MAC")
	var taps tapList
	cmd.Flags().Var(&taps, "tap", "a tap: KEY=VALUE,...")
	var forwards forwardList
	cmd.Flags().Var(&forwards, "forward", "forward [PROTO:]HOST_PORT:GUEST_PORT")
	askPassword := addNoAskPassword(cmd)
	cmd.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return usageError(cmd, "no command to run")
		}
		return nil
	}
	cmd.RunE = func(cmd *cobra.Command, argv []string) error {
		if *networkName == "" && network.given() {
			return usageError(cmd, "--subnet, --subnet6, --no-ipv6 and --isolated need --network")
		}
		netOpts, err := network.options(cmd)
		if err != nil {
			return err
		}
		if len(taps) > 0 && (*bridge != "" || *queues != 0 || *mac != "") {
			return usageError(cmd, "with --tap, give bridge, queues and mac as --tap keys")
		}
		if len(taps) == 0 && *networkName == "" && *bridge == "" {
			*networkName = defaultNetwork()
		}
		if len(taps) == 0 {
			spec := tapSpec{network: *networkName, opts: map[string]dbus.Variant{}}
			switch {
			case *networkName != "" && *bridge != "":
				return usageError(cmd, "--network and --bridge exclude each other without --tap")
			case *networkName != "":
				spec.opts["network"] = dbus.MakeVariant(*networkName)
			case *bridge != "":
				spec.opts["bridge"] = dbus.MakeVariant(*bridge)
			}
			if *queues != 0 {
				spec.opts["queues"] = dbus.MakeVariant(uint32(*queues))
			}
			if *mac != "" {
				spec.opts["mac"] = dbus.MakeVariant(*mac)
			}
			taps = tapList{spec}
		}
		return runWithTaps(cmd, *networkName, netOpts, taps, forwards, argv, askPassword())
	}
	return cmd
}

// runForward is a --forward of netgrant run.
type runForward struct {
	proto               string
	hostPort, guestPort uint16
}

// forwardList collects repeated --forward options.
type forwardList []runForward

func (l *forwardList) String() string { return "" }

func (l *forwardList) Type() string { return "[PROTO:]HOST_PORT:GUEST_PORT" }

func (l *forwardList) Set(value string) error {
	f := runForward{proto: "tcp"}
	parts := strings.Split(value, ":")
	if len(parts) == 3 {
		f.proto, parts = parts[0], parts[1:]
	}
	if len(parts) != 2 || f.proto != "tcp" && f.proto != "udp" {
		return fmt.Errorf("%q is not [PROTO:]HOST_PORT:GUEST_PORT with PROTO tcp or udp (like tcp:2222:22)", value)
	}
	for i, port := range []*uint16{&f.hostPort, &f.guestPort} {
		n, err := strconv.ParseUint(parts[i], 10, 16)
		if err != nil || n == 0 {
			return fmt.Errorf("%q in %q is not a port (1-65535)", parts[i], value)
		}
		*port = uint16(n)
	}
	*l = append(*l, f)
	return nil
}

// defaultNetwork is the caller's own network, API.md's user-<uid>.
func defaultNetwork() string { return "user-" + strconv.Itoa(os.Getuid()) }

func runWithTaps(cmd *cobra.Command, network string, netOpts map[string]dbus.Variant, taps tapList, forwards forwardList, argv []string, askPassword bool) error {
	s, err := connect(askPassword)
	if err != nil {
		return err
	}
	// The connection stays open until the child exits: it holds the networks.
	defer s.close()

	held := map[string]bool{}
	hold := func(name string, opts map[string]dbus.Variant) error {
		if name == "" || held[name] {
			return nil
		}
		if _, _, err := s.conn.CreateNATNetwork(name, opts, s.interactive); err != nil {
			return err
		}
		held[name] = true
		return nil
	}
	if err := hold(network, netOpts); err != nil {
		return err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	var results []tapResult
	// guest is the address of the first tap on a network, where the
	// forwards go.
	var guest, guestNetwork string
	for _, spec := range taps {
		if err := hold(spec.network, nil); err != nil {
			return err
		}
		_, fds, info, err := s.conn.CreateTap(spec.opts, s.interactive)
		if err != nil {
			return err
		}
		r := tapResult{}
		r.mac, _ = info["mac"].Value().(string)
		r.ifname, _ = info["ifname"].Value().(string)
		r.ipv4, _ = info["ipv4"].Value().(string)
		for _, f := range fds {
			// ExtraFiles[i] becomes fd 3+i in the child.
			r.fds = append(r.fds, 3+len(files))
			files = append(files, f)
		}
		results = append(results, r)
		if len(forwards) > 0 && spec.network != "" && guest == "" {
			guest, guestNetwork = r.ipv4, spec.network
			if guest == "" {
				return fmt.Errorf("--forward: the tap on network %s has no address to forward to (is its DHCP off?)", spec.network)
			}
		}
	}
	if len(forwards) > 0 && guest == "" {
		return usageError(cmd, "--forward needs a tap on a network (--network, or --tap network=...), not only on a bridge")
	}
	removeForwards, err := addForwards(s, guestNetwork, guest, forwards)
	if err != nil {
		return err
	}
	defer removeForwards()
	// The child gets the terminal to itself.
	s.stopAgent()

	vhost := vhostNet()
	argv, err = substitute(argv, results, vhost)
	if err != nil {
		return &exitError{code: 2, msg: "netgrant run: " + err.Error()}
	}
	child := exec.Command(argv[0], argv[1:]...)
	child.Stdin, child.Stdout, child.Stderr = os.Stdin, os.Stdout, os.Stderr
	child.ExtraFiles = files
	child.Env = append(os.Environ(), tapEnv(results, vhost)...)
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, forwardedSignals...)
	defer signal.Stop(signals)
	if err := child.Start(); err != nil {
		return &exitError{code: 127, msg: "netgrant run: cannot start " + argv[0] + ": " + unwrapExec(err)}
	}
	// From now on the taps live exactly as long as the child keeps them.
	for _, f := range files {
		f.Close()
	}
	files = nil
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-signals:
				child.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err = child.Wait()
	close(done)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		status := exit.Sys().(syscall.WaitStatus)
		if status.Signaled() {
			return &exitError{code: 128 + int(status.Signal())}
		}
		return &exitError{code: status.ExitStatus()}
	}
	return err
}

// addForwards adds run's forwards to guest on network and returns what
// removes them again, once the command exited; a failure removes those
// already added. A forward lives as long as its network, so one this run
// did not remove (it was killed) goes with the network.
func addForwards(s *session, network, guest string, forwards forwardList) (remove func(), err error) {
	var path dbus.ObjectPath
	if len(forwards) > 0 {
		if path, err = s.conn.GetNetwork(network); err != nil {
			return nil, err
		}
	}
	var added forwardList
	remove = func() {
		for _, f := range added {
			if err := s.conn.RemovePortForward(path, f.proto, f.hostPort, false); err != nil {
				fmt.Fprintf(os.Stderr, "netgrant run: removing the forward of %s port %d: %v\n", f.proto, f.hostPort, err)
			}
		}
	}
	for _, f := range forwards {
		if err := s.conn.AddPortForward(path, f.proto, f.hostPort, guest, f.guestPort, "", s.interactive); err != nil {
			remove()
			return nil, fmt.Errorf("--forward %s:%d:%d: %w", f.proto, f.hostPort, f.guestPort, err)
		}
		added = append(added, f)
	}
	return remove, nil
}

func unwrapExec(err error) string {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err.Error()
	}
	var execErr *exec.Error
	if errors.As(err, &execErr) {
		return execErr.Err.Error()
	}
	return err.Error()
}
