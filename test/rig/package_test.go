package rig_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

var (
	debOnce sync.Once
	debFile string
	debErr  error
	debDir  string
)

// debianPackage builds netgrant's binary package from a copy of the
// source tree, as a distribution's builder does, once per test run.
func debianPackage(t *testing.T) string {
	t.Helper()
	debOnce.Do(func() { debFile, debErr = buildPackage() })
	if debErr != nil {
		t.Fatal(debErr)
	}
	return debFile
}

func buildPackage() (string, error) {
	if _, err := exec.LookPath("dpkg-buildpackage"); err != nil {
		return "", fmt.Errorf("dpkg-buildpackage is not installed (sudo ./test/run installs it)")
	}
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	var err error
	if debDir, err = os.MkdirTemp("", "netgrant-deb-"); err != nil {
		return "", err
	}
	src := filepath.Join(debDir, "netgrant")
	if err := os.Mkdir(src, 0o755); err != nil {
		return "", err
	}
	// The tracked files, and new ones not ignored: what a clean checkout of
	// this work tree would hold.
	files, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return "", fmt.Errorf("listing the source files with git: %w", err)
	}
	tar := exec.Command("tar", "-C", root, "--null", "-T", "-", "-cf", "-")
	tar.Stdin = bytes.NewReader(files)
	untar := exec.Command("tar", "-C", src, "-xf", "-")
	if untar.Stdin, err = tar.StdoutPipe(); err != nil {
		return "", err
	}
	if err := untar.Start(); err != nil {
		return "", err
	}
	var tarErr bytes.Buffer
	tar.Stderr = &tarErr
	if err := tar.Run(); err != nil {
		return "", fmt.Errorf("copying the source: %w: %s", err, tarErr.Bytes())
	}
	if err := untar.Wait(); err != nil {
		return "", fmt.Errorf("copying the source: %w", err)
	}
	build := exec.Command("dpkg-buildpackage", "-us", "-uc", "-b")
	build.Dir = src
	// The tests have no network: the modules come from the cache that
	// "go mod download" filled.
	build.Env = append(os.Environ(), "GOPROXY=off")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("dpkg-buildpackage -us -uc -b: %w\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(debDir, "netgrant_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("dpkg-buildpackage made %v, want one netgrant_*.deb", debs)
	}
	return debs[0], nil
}

func TestPackagePassesLintian(t *testing.T) {
	requireRoot(t)
	deb := debianPackage(t)
	changes, _ := filepath.Glob(filepath.Join(filepath.Dir(deb), "netgrant_*.changes"))
	if len(changes) != 1 {
		t.Fatalf("no .changes next to %s", deb)
	}
	out, err := exec.Command("lintian", "--fail-on", "error", changes[0]).CombinedOutput()
	t.Logf("lintian %s:\n%s", filepath.Base(changes[0]), out)
	if err != nil || strings.Contains(string(out), "\nE: ") || strings.HasPrefix(string(out), "E: ") {
		t.Fatalf("lintian reports errors (%v)", err)
	}
}

func TestPackageHoldsWhatMesonInstalls(t *testing.T) {
	requireRoot(t)
	out, err := exec.Command("dpkg-deb", "--contents", debianPackage(t)).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"./usr/libexec/netgrantd",
		"./usr/libexec/netgrant-bridge-helper",
		"./usr/bin/netgrant",
		"./usr/share/dbus-1/system.d/org.netgrant.NetGrant1.conf",
		"./usr/share/dbus-1/system-services/org.netgrant.NetGrant1.service",
		"./usr/share/polkit-1/actions/org.netgrant.policy",
		"./usr/share/polkit-1/rules.d/60-netgrant.rules",
		"./usr/lib/sysusers.d/netgrant.conf",
		"./usr/lib/firewalld/zones/netgrant.xml",
		"./usr/lib/firewalld/policies/netgrant-out.xml",
		"./lib/systemd/system/netgrantd.service",
		"./lib/systemd/system/netgrant-dnsmasq@.service",
		"./etc/netgrant/hooks.d/",
		"./usr/share/bash-completion/completions/netgrant",
		"./usr/share/zsh/vendor-completions/_netgrant",
		"./usr/share/fish/vendor_completions.d/netgrant.fish",
	} {
		if !strings.Contains(string(out), " "+path+"\n") {
			t.Errorf("the package lacks %s", path)
		}
	}
}
