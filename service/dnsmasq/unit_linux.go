package dnsmasq

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Under systemd, each network's dnsmasq is an instance of the unit
// netgrant-dnsmasq@ (data/netgrant-dnsmasq@.service) rather than
// netgrantd's child: it gets a sandbox and a dynamic user of its own,
// systemd restarts it, and it keeps serving while netgrantd restarts.
// netgrantd's own sandbox can then do without what only dnsmasq needs
// (changing uid, binding privileged ports, signalling another user's
// process). The instance reads the configuration file netgrantd writes in
// UnitDir and writes its lease file in UnitLeaseDir, which systemd makes
// for its dynamic user.

// UnitStateDir is the state directory the unit expects the networks' directories in.
const UnitStateDir = "/run/netgrant"

// systemctlTimeout bounds one systemctl call; dnsmasq starts in well
// under a second.
const systemctlTimeout = time.Minute

// A network's dnsmasq unit is named after its bridge, whose name is short
// and of the characters a user name takes: the unit's User=, which gives
// each instance a dynamic user of its own, derives from it. (Without
// User=, DynamicUser= would name every instance's user after the
// template, netgrant-dnsmasq, and so give them all one, the static
// account of that name.)

// UnitName is the systemd unit of the dnsmasq of the network whose bridge
// is bridge.
func UnitName(bridge string) string { return "netgrant-dnsmasq@" + bridge + ".service" }

// UnitDir is the directory the unit of bridge's dnsmasq reads its
// configuration from.
func UnitDir(bridge string) string { return filepath.Join(UnitStateDir, "dnsmasq-"+bridge) }

// UnitLeaseDir is the directory the unit of bridge's dnsmasq writes its
// lease file in (its RuntimeDirectory=).
func UnitLeaseDir(bridge string) string { return filepath.Join("/run/netgrant-dnsmasq", bridge) }

func (c Config) confFile() string { return filepath.Join(c.Dir, "dnsmasq.conf") }

// conf is c as a dnsmasq configuration file: the command line's options
// but keep-in-foreground and log-facility. The unit's dnsmasq daemonizes,
// which is how systemd learns it is serving, and logs to the journal.
func (c Config) conf() []byte {
	var b bytes.Buffer
	for _, arg := range c.args() {
		opt := strings.TrimPrefix(arg, "--")
		if opt == "keep-in-foreground" || strings.HasPrefix(opt, "log-facility=") || strings.HasPrefix(opt, "conf-file=") {
			continue
		}
		b.WriteString(opt + "\n")
	}
	return b.Bytes()
}

// startUnit writes c's configuration and starts its unit, returning once
// dnsmasq serves. A unit still running (netgrantd restarted) goes on as
// it is: the configuration of a network never changes. The unit's dynamic
// user must read the configuration, whatever umask netgrantd runs with;
// it holds nothing secret.
func startUnit(c Config) error {
	tmp := c.confFile() + ".tmp"
	if err := os.WriteFile(tmp, c.conf(), 0o644); err != nil {
		return fmt.Errorf("writing dnsmasq's configuration: %w", err)
	}
	for path, mode := range map[string]os.FileMode{tmp: 0o644, c.Dir: 0o755} {
		if err := os.Chmod(path, mode); err != nil {
			return fmt.Errorf("writing dnsmasq's configuration: %w", err)
		}
	}
	if err := os.Rename(tmp, c.confFile()); err != nil {
		return fmt.Errorf("writing dnsmasq's configuration: %w", err)
	}
	return systemctl("start", UnitName(c.Bridge))
}

// StopUnit stops bridge's dnsmasq unit; one not running is not an error.
func StopUnit(bridge string) error {
	return systemctl("stop", UnitName(bridge))
}

// systemctl runs "systemctl verb --quiet options... unit".
func systemctl(verb string, args ...string) error {
	unit := args[len(args)-1]
	ctx, cancel := context.WithTimeout(context.Background(), systemctlTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, "systemctl", append([]string{verb, "--quiet"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemctl %s %s: %w: %s (see journalctl -u %s)", verb, unit, err, strings.TrimSpace(string(out)), unit)
	}
	return nil
}
