package rig_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sys/unix"
)

// rootfsPackages is what the container runs besides what netgrant's own
// package pulls in: systemd as PID 1 with logind (libpam-systemd) and
// resolved, gdbus to make raw calls as scripts do, nft to look at the
// firewall, and ping to reach guests by name.
var rootfsPackages = []string{
	"systemd", "systemd-sysv", "libpam-systemd", "systemd-resolved", "dbus", "polkitd",
	"iproute2", "iptables", "dnsmasq-base", "libglib2.0-bin", "nftables", "iputils-ping",
}

// cachedRootfs returns the rootfs tarball for rootfsPackages from the
// cache, building it with mmdebstrap first if the cache lacks it. The
// container's packages come from the sources apt uses on this machine.
func cachedRootfs() (string, error) {
	dir := os.Getenv("NETGRANT_RIG_CACHE")
	if dir == "" {
		dir = "/var/cache/netgrant-rig"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	suite, err := hostSuite()
	if err != nil {
		return "", err
	}
	sources, err := aptSources()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %s\n", suite, strings.Join(rootfsPackages, ","))
	for _, s := range sources {
		data, err := os.ReadFile(s)
		if err != nil {
			return "", err
		}
		h.Write(data)
	}
	tar := filepath.Join(dir, "rootfs-"+hex.EncodeToString(h.Sum(nil))[:16]+".tar")

	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return "", err
	}
	if _, err := os.Stat(tar); err == nil {
		return tar, nil
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		return "", fmt.Errorf("mmdebstrap is not installed (sudo ./test/run installs it)")
	}
	partial := tar + ".partial"
	args := append([]string{"--variant=minbase", "--format=tar", "--include=" + strings.Join(rootfsPackages, ","), suite, partial}, sources...)
	// In a pid namespace of its own: the packages' maintainer scripts stop
	// "their" daemons by executable (polkitd's runs start-stop-daemon
	// --stop --exec /usr/lib/polkit-1/polkitd), and from a chroot that
	// sees the host's /proc they killed the polkitd of tests running
	// meanwhile.
	cmd := exec.Command("unshare", append([]string{"--pid", "--fork", "--mount-proc", "--", "mmdebstrap"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		os.Remove(partial)
		return "", fmt.Errorf("mmdebstrap %v: %w\n%s", args, err, out.Bytes())
	}
	return tar, os.Rename(partial, tar)
}

// hostSuite is this machine's Debian release (bookworm): the container
// runs the release the package is built on.
func hostSuite() (string, error) {
	data, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return "", err
	}
	m := regexp.MustCompile(`(?m)^VERSION_CODENAME=(\w+)$`).FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("no VERSION_CODENAME in /etc/os-release: not Debian?")
	}
	return string(m[1]), nil
}

// aptSources are apt's source files, passed to mmdebstrap as its mirrors.
func aptSources() ([]string, error) {
	var files []string
	if _, err := os.Stat("/etc/apt/sources.list"); err == nil {
		files = append(files, "/etc/apt/sources.list")
	}
	for _, pattern := range []string{"/etc/apt/sources.list.d/*.list", "/etc/apt/sources.list.d/*.sources"} {
		more, _ := filepath.Glob(pattern)
		files = append(files, more...)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("apt has no sources in /etc/apt/sources.list{,.d}")
	}
	return files, nil
}
