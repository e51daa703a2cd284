package main

import (
	"os"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
)

// Shell completion (netgrant completion bash|zsh|fish, from cobra) offers
// the names of networks and taps as netgrant list --json has them, read
// from netgrantd only when it runs (objectsOrNothing): a TAB never starts
// it.

const noFiles = cobra.ShellCompDirectiveNoFileComp

func networkNames() []string {
	var out []string
	for _, n := range objectsOrNothing().Networks {
		out = append(out, n.Name)
	}
	return out
}

// completeNetworkArg completes a network's name as the first argument.
func completeNetworkArg(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	return networkNames(), noFiles
}

// completeTapArg completes a tap's name as the first argument.
func completeTapArg(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, noFiles
	}
	var out []string
	for _, t := range objectsOrNothing().Taps {
		out = append(out, t.Name)
	}
	return out, noFiles
}

// completeForwardArgs completes NAME PROTO HOST_PORT of forward add and
// remove; for remove, the ports the network forwards.
func completeForwardArgs(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	switch len(args) {
	case 0:
		return networkNames(), noFiles
	case 1:
		return []string{"tcp", "udp"}, noFiles
	case 2:
		if cmd.Name() != "remove" {
			return nil, noFiles
		}
		var ports []string
		for _, n := range objectsOrNothing().Networks {
			for _, f := range n.PortForwards {
				if n.Name == args[0] && f.Protocol == args[1] {
					ports = append(ports, strconv.Itoa(int(f.HostPort)))
				}
			}
		}
		return ports, noFiles
	}
	return nil, noFiles
}

func completeNetworkFlag(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return networkNames(), noFiles
}

// completeBridgeFlag offers the host's bridges: netgrant's networks' and
// the ones an administrator may have allowed.
func completeBridgeFlag(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	var out []string
	links, _ := os.ReadDir("/sys/class/net")
	for _, link := range links {
		if _, err := os.Stat(filepath.Join("/sys/class/net", link.Name(), "bridge")); err == nil {
			out = append(out, link.Name())
		}
	}
	return out, noFiles
}
