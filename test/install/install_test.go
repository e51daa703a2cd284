// Package install_test installs netgrant with meson into a scratch
// directory, as a distribution's package build does, and checks what was
// installed: the files, and the sandbox of its systemd units.
package install_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

var (
	installOnce sync.Once
	scratch     string
	destdir     string
	installErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if scratch != "" {
		os.RemoveAll(scratch)
	}
	os.Exit(code)
}

// installed runs meson setup, compile and install once for the package
// and returns the DESTDIR the files went to.
func installed(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("meson"); err != nil {
		t.Skip("meson is not installed")
	}
	installOnce.Do(func() {
		_, self, _, _ := runtime.Caller(0)
		root := filepath.Join(filepath.Dir(self), "..", "..")
		var err error
		scratch, err = os.MkdirTemp("", "netgrant-install")
		if err != nil {
			installErr = err
			return
		}
		build, dest := filepath.Join(scratch, "build"), filepath.Join(scratch, "dest")
		for _, args := range [][]string{
			{"setup", build, root, "--prefix=/usr"},
			{"compile", "-C", build},
			{"install", "-C", build, "--no-rebuild", "--destdir", dest},
		} {
			if out, err := exec.Command("meson", args...).CombinedOutput(); err != nil {
				installErr = fmt.Errorf("meson %v: %w\n%s", args, err, out)
				return
			}
		}
		destdir = dest
	})
	if installErr != nil {
		t.Fatal(installErr)
	}
	return destdir
}

func TestMesonInstallsEverything(t *testing.T) {
	dest := installed(t)
	for _, path := range []string{
		"usr/libexec/netgrantd",
		"usr/libexec/netgrant-bridge-helper",
		"usr/bin/netgrant",
		"usr/share/dbus-1/system.d/org.netgrant.NetGrant1.conf",
		"usr/share/dbus-1/system-services/org.netgrant.NetGrant1.service",
		"usr/share/dbus-1/interfaces/org.netgrant.NetGrant1.xml",
		"usr/share/polkit-1/actions/org.netgrant.policy",
		"usr/share/polkit-1/rules.d/60-netgrant.rules",
		"usr/lib/sysusers.d/netgrant.conf",
		"usr/lib/firewalld/zones/netgrant.xml",
		"usr/lib/firewalld/policies/netgrant-out.xml",
		"etc/netgrant/hooks.d",
		unitPath(t, dest, "netgrantd.service"),
		unitPath(t, dest, "netgrant-dnsmasq@.service"),
	} {
		if _, err := os.Stat(filepath.Join(dest, path)); err != nil {
			t.Errorf("not installed: /%s", path)
		}
	}
}

// unitPath finds where meson put a unit: the host's systemd decides.
func unitPath(t *testing.T, dest, unit string) string {
	t.Helper()
	for _, dir := range []string{"lib/systemd/system", "usr/lib/systemd/system"} {
		if _, err := os.Stat(filepath.Join(dest, dir, unit)); err == nil {
			return filepath.Join(dir, unit)
		}
	}
	return filepath.Join("lib/systemd/system", unit)
}

// maxExposure is the most systemd-analyze security may say of netgrant's
// units (issue 8: 2.5; it said 5.7 before).
const maxExposure = 2.5

var exposure = regexp.MustCompile(`Overall exposure level for \S+: (\d+\.\d+)`)

func TestUnitsAreSandboxed(t *testing.T) {
	dest := installed(t)
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	for _, unit := range []string{"netgrantd.service", "netgrant-dnsmasq@.service"} {
		path := filepath.Join(dest, unitPath(t, dest, unit))
		check := path
		if unit == "netgrant-dnsmasq@.service" {
			// Templates are analysed as an instance.
			check = filepath.Join(t.TempDir(), "netgrant-dnsmasq@lab.service")
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(check, data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out, _ := exec.Command("systemd-analyze", "security", "--offline=true", check).CombinedOutput()
		m := exposure.FindSubmatch(out)
		if m == nil {
			t.Fatalf("systemd-analyze security %s printed no exposure level:\n%s", unit, out)
		}
		level, _ := strconv.ParseFloat(string(m[1]), 64)
		t.Logf("systemd-analyze security --offline=true %s: %.1f", unit, level)
		if level > maxExposure {
			t.Errorf("%s: exposure %.1f, more than %.1f:\n%s", unit, level, maxExposure, out)
		}
	}
}
