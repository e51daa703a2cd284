package rig_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rpm/netgrant.spec builds the RPM package from a release tarball without
// network, and rpmlint (with the filters and reasons of
// rpm/netgrant.rpmlintrc) accepts spec and package. rpmbuild runs with
// --nodeps: Fedora's BuildRequires are not Debian packages.
func TestRPMPackage(t *testing.T) {
	requireRoot(t)
	for _, program := range []string{"rpmbuild", "rpmlint"} {
		if _, err := exec.LookPath(program); err != nil {
			t.Fatalf("%s is not installed (sudo ./test/run installs it)", program)
		}
	}
	top := t.TempDir()
	release := filepath.Join(top, "netgrant-0.1.0")
	if err := releaseTree(release); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(top, "SOURCES"), 0o755); err != nil {
		t.Fatal(err)
	}
	tarball := filepath.Join(top, "SOURCES", "netgrant-0.1.0.tar.xz")
	if out, err := exec.Command("tar", "-C", top, "-cJf", tarball, "netgrant-0.1.0").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	spec := filepath.Join(release, "rpm", "netgrant.spec")
	build := exec.Command("unshare", "--net", "--", "rpmbuild", "-bb", "--nodeps", "--define", "_topdir "+top, spec)
	// Debian's Go, as for the Debian package: no module cache, no network.
	build.Env = append(os.Environ(), "PATH=/usr/lib/go-1.23/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOMODCACHE="+filepath.Join(top, "no-modules"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("unshare --net rpmbuild -bb --nodeps: %v\n%s", err, out)
	}
	rpms, _ := filepath.Glob(filepath.Join(top, "RPMS", "*", "netgrant-0.1.0-*.rpm"))
	if len(rpms) != 1 {
		t.Fatalf("rpmbuild made %v, want one netgrant-0.1.0 package", rpms)
	}
	lint := exec.Command("rpmlint", "-r", filepath.Join(release, "rpm", "netgrant.rpmlintrc"), spec, rpms[0])
	out, err := lint.CombinedOutput()
	t.Logf("rpmlint:\n%s", out)
	if err != nil || !strings.Contains(string(out), "0 errors, 0 warnings") {
		t.Errorf("rpmlint does not accept the spec and the package (%v)", err)
	}
	files, err := exec.Command("rpm", "-qlp", rpms[0]).Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{
		"/usr/libexec/netgrantd", "/usr/bin/netgrant", "/usr/libexec/netgrant-bridge-helper",
		"/usr/lib/systemd/system/netgrantd.service", "/usr/lib/sysusers.d/netgrant.conf",
		"/usr/share/polkit-1/rules.d/60-netgrant.rules", "/usr/share/man/man8/netgrantd.8",
		"/usr/share/zsh/site-functions/_netgrant", "/usr/share/licenses/netgrant",
	} {
		if !strings.Contains(string(files), path) {
			t.Errorf("the package lacks %s:\n%s", path, files)
		}
	}
}
