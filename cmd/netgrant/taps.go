package main

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/godbus/dbus/v5"
)

// tapSpec is one tap netgrant run creates.
type tapSpec struct {
	network string
	opts    map[string]dbus.Variant
}

// tapList collects repeated --tap options.
type tapList []tapSpec

func (l *tapList) String() string { return "" }

func (l *tapList) Type() string { return "KEY=VALUE,..." }

func (l *tapList) Set(value string) error {
	spec, err := parseTapSpec(value)
	if err != nil {
		return err
	}
	*l = append(*l, spec)
	return nil
}

// parseTapSpec parses "network=demo,queues=2,mac=52:54:00:00:00:01,ipv4=10.97.0.50".
func parseTapSpec(s string) (tapSpec, error) {
	spec := tapSpec{opts: map[string]dbus.Variant{}}
	for _, field := range strings.Split(s, ",") {
		key, value, ok := strings.Cut(field, "=")
		if !ok || value == "" {
			return tapSpec{}, fmt.Errorf("%q is not KEY=VALUE", field)
		}
		if _, dup := spec.opts[key]; dup {
			return tapSpec{}, fmt.Errorf("%s given twice", key)
		}
		switch key {
		case "network":
			spec.network = value
			spec.opts[key] = dbus.MakeVariant(value)
		case "bridge", "mac", "ipv4":
			spec.opts[key] = dbus.MakeVariant(value)
		case "queues", "mtu":
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil {
				return tapSpec{}, fmt.Errorf("%s=%s is not a number", key, value)
			}
			spec.opts[key] = dbus.MakeVariant(uint32(n))
		case "vnet_hdr":
			on, err := parseOnOff(value)
			if err != nil {
				return tapSpec{}, fmt.Errorf("vnet_hdr: %w", err)
			}
			spec.opts[key] = dbus.MakeVariant(on)
		default:
			return tapSpec{}, fmt.Errorf("unknown key %q (known: network, bridge, queues, mac, mtu, vnet_hdr, ipv4)", key)
		}
	}
	if spec.opts["network"].Value() != nil && spec.opts["bridge"].Value() != nil {
		return tapSpec{}, fmt.Errorf("network and bridge exclude each other")
	}
	return spec, nil
}

func parseOnOff(s string) (bool, error) {
	switch s {
	case "on", "yes", "true", "1":
		return true, nil
	case "off", "no", "false", "0":
		return false, nil
	}
	return false, fmt.Errorf("%q is not on or off", s)
}

// tapResult is a created tap as the child sees it.
type tapResult struct {
	fds    []int // fd numbers in the child
	mac    string
	ifname string
	ipv4   string // the guest's reserved address; "" if none
}

func (t tapResult) fdList() string {
	s := make([]string, len(t.fds))
	for i, fd := range t.fds {
		s[i] = strconv.Itoa(fd)
	}
	return strings.Join(s, ":")
}

var placeholder = regexp.MustCompile(`\{(fd|fds|mac|ifname)([0-9]*)\}|\{vhost\}`)

// substitute replaces {fd}, {fds}, {mac} and {ifname} (the first tap),
// {fdN}, {fdsN}, {macN}, {ifnameN} (tap N, counting from 0), and {vhost}
// (vhost, "on" or "off") in args; other braces are left alone.
func substitute(args []string, taps []tapResult, vhost string) ([]string, error) {
	out := make([]string, len(args))
	var err error
	for i, arg := range args {
		out[i] = placeholder.ReplaceAllStringFunc(arg, func(m string) string {
			if m == "{vhost}" {
				return vhost
			}
			parts := placeholder.FindStringSubmatch(m)
			index := 0
			if parts[2] != "" {
				index, _ = strconv.Atoi(parts[2])
			}
			if index >= len(taps) {
				if err == nil {
					err = fmt.Errorf("%s names tap %d, but there are only %d (counting from 0)", m, index, len(taps))
				}
				return m
			}
			t := taps[index]
			switch parts[1] {
			case "fd":
				return strconv.Itoa(t.fds[0])
			case "fds":
				return t.fdList()
			case "mac":
				return t.mac
			}
			return t.ifname
		})
	}
	return out, err
}

// vhostNet is "on" where the caller may open /dev/vhost-net, for QEMU's
// -netdev tap,vhost=: the kernel then moves the guest's packets, much
// faster than QEMU itself. "off" elsewhere.
func vhostNet() string {
	f, err := os.OpenFile("/dev/vhost-net", os.O_RDWR, 0)
	if err != nil {
		return "off"
	}
	f.Close()
	return "on"
}

// tapEnv describes the taps to the child: NETGRANT_TAP_FDS, NETGRANT_MAC and
// NETGRANT_IFNAME for the first, with suffix N for tap N after it, and
// NETGRANT_VHOST, vhost (on or off).
func tapEnv(taps []tapResult, vhost string) []string {
	env := []string{"NETGRANT_VHOST=" + vhost}
	for i, t := range taps {
		suffix := ""
		if i > 0 {
			suffix = strconv.Itoa(i)
		}
		env = append(env,
			"NETGRANT_TAP_FDS"+suffix+"="+t.fdList(),
			"NETGRANT_MAC"+suffix+"="+t.mac,
			"NETGRANT_IFNAME"+suffix+"="+t.ifname)
	}
	return env
}
