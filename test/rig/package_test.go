package rig_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	var err error
	if debDir, err = os.MkdirTemp("", "netgrant-deb-"); err != nil {
		return "", err
	}
	src := filepath.Join(debDir, "netgrant")
	if err := releaseTree(src); err != nil {
		return "", err
	}
	// Built as a distribution builds it: with Debian's Go (the PATH has no
	// other), no module cache, and no network at all.
	build := exec.Command("unshare", "--net", "--", "dpkg-buildpackage", "-us", "-uc", "-b")
	build.Dir = src
	build.Env = append(os.Environ(), "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "GOMODCACHE="+filepath.Join(debDir, "no-modules"), "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("unshare --net dpkg-buildpackage -us -uc -b: %w\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(debDir, "netgrant_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("dpkg-buildpackage made %v, want one netgrant_*.deb", debs)
	}
	return debs[0], nil
}

// releaseTree makes dir what a release tarball (meson dist) unpacks to:
// the tracked files of this work tree, and new ones not ignored, with
// the Go modules in vendor/ from the module cache "go mod download"
// filled.
func releaseTree(dir string) error {
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files, err := exec.Command("git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard").Output()
	if err != nil {
		return fmt.Errorf("listing the source files with git: %w", err)
	}
	tar := exec.Command("tar", "-C", root, "--null", "-T", "-", "-cf", "-")
	tar.Stdin = bytes.NewReader(files)
	untar := exec.Command("tar", "-C", dir, "-xf", "-")
	if untar.Stdin, err = tar.StdoutPipe(); err != nil {
		return err
	}
	if err := untar.Start(); err != nil {
		return err
	}
	var tarErr bytes.Buffer
	tar.Stderr = &tarErr
	if err := tar.Run(); err != nil {
		return fmt.Errorf("copying the source: %w: %s", err, tarErr.Bytes())
	}
	if err := untar.Wait(); err != nil {
		return fmt.Errorf("copying the source: %w", err)
	}
	vendor := exec.Command("go", "mod", "vendor")
	vendor.Dir = dir
	vendor.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off")
	if out, err := vendor.CombinedOutput(); err != nil {
		return fmt.Errorf("go mod vendor: %w\n%s", err, out)
	}
	return nil
}

func TestPackagePassesLintian(t *testing.T) {
	requireRoot(t)
	deb := debianPackage(t)
	changes, _ := filepath.Glob(filepath.Join(filepath.Dir(deb), "netgrant_*.changes"))
	if len(changes) != 1 {
		t.Fatalf("no .changes next to %s", deb)
	}
	out, err := exec.Command("lintian", "--fail-on", "error,warning", changes[0]).CombinedOutput()
	t.Logf("lintian --fail-on error,warning %s:\n%s", filepath.Base(changes[0]), out)
	if err != nil || regexp.MustCompile(`(?m)^[EW]: `).Match(out) {
		t.Fatalf("lintian reports errors or warnings (%v)", err)
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
		"./usr/share/man/man1/netgrant.1.gz",
		"./usr/share/man/man5/netgrant.conf.5.gz",
		"./usr/share/man/man8/netgrantd.8.gz",
		"./usr/share/man/man8/netgrant-bridge-helper.8.gz",
	} {
		if !strings.Contains(string(out), " "+path+"\n") {
			t.Errorf("the package lacks %s", path)
		}
	}
}
