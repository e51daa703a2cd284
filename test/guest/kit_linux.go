package guest

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	kernelMetaPackage = "linux-image-cloud-amd64"
	busyboxPath       = "/bin/busybox"
)

// moduleRoots are the modules the guest needs for its NIC; their
// dependencies come along. Roots built into the kernel are skipped.
var moduleRoots = []string{"virtio_pci", "virtio_net"}

//go:embed rootfs
var rootfs embed.FS

// Prepare returns the kit from the cache (see PrepareDir), building it on
// first use. Building needs apt's network, which a test sandbox lacks: call
// PrepareDir from TestMain before nstest.Main.
func Prepare(t testing.TB) Kit {
	t.Helper()
	kit, err := PrepareDir("")
	if err != nil {
		t.Fatalf("preparing guest kit: %v", err)
	}
	return kit
}

// PrepareDir returns the kit cached under dir, building it first if the
// cache lacks it: the kernel package is downloaded with apt once per machine
// (after apt-get update if apt cannot find it). An empty dir means
// $NETGRANT_GUEST_CACHE, else netgrant-test in the user's cache directory.
func PrepareDir(dir string) (Kit, error) {
	if dir == "" {
		var err error
		if dir, err = defaultCacheDir(); err != nil {
			return Kit{}, err
		}
	}
	busybox, err := staticBusybox()
	if err != nil {
		return Kit{}, err
	}
	key, err := kitKey(busybox)
	if err != nil {
		return Kit{}, err
	}
	kitDir := filepath.Join(dir, key)
	kit := Kit{Kernel: filepath.Join(kitDir, "vmlinuz"), Initrd: filepath.Join(kitDir, "initrd.img")}
	if _, err := os.Stat(kitDir); err == nil {
		return kit, nil
	}

	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Kit{}, fmt.Errorf("creating guest cache: %w", err)
	}
	// Test packages run in parallel; only one of them should download.
	unlock, err := lockDir(dir)
	if err != nil {
		return Kit{}, err
	}
	defer unlock()
	if _, err := os.Stat(kitDir); err == nil {
		return kit, nil
	}
	if err := build(dir, kitDir, busybox); err != nil {
		return Kit{}, fmt.Errorf("building guest kit: %w", err)
	}
	return kit, nil
}

func defaultCacheDir() (string, error) {
	if dir := os.Getenv("NETGRANT_GUEST_CACHE"); dir != "" {
		return dir, nil
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("finding a cache directory (set NETGRANT_GUEST_CACHE): %w", err)
	}
	return filepath.Join(base, "netgrant-test"), nil
}

func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking guest cache: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking guest cache: %w", err)
	}
	return func() { f.Close() }, nil
}

// staticBusybox reads busybox, which must not need a dynamic loader: the
// initramfs has no libc.
func staticBusybox() ([]byte, error) {
	f, err := elf.Open(busyboxPath)
	if err != nil {
		return nil, fmt.Errorf("reading busybox (install busybox-static): %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("%s is dynamically linked: install busybox-static", busyboxPath)
		}
	}
	return os.ReadFile(busyboxPath)
}

// kitKey names a kit by everything that goes into its initramfs, so a
// changed init script or busybox builds a new kit instead of reusing a stale one.
func kitKey(busybox []byte) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "netgrant-guest modules=%s\n", strings.Join(moduleRoots, ","))
	err := fs.WalkDir(rootfs, "rootfs", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := rootfs.ReadFile(name)
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
		return err
	})
	if err != nil {
		return "", err
	}
	h.Write(busybox)
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// build assembles the kit in a scratch directory next to kitDir and renames
// it into place, so an interrupted build never leaves a half kit behind.
func build(dir, kitDir string, busybox []byte) error {
	work, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	deb, err := downloadKernel(work)
	if err != nil {
		if out, updateErr := exec.Command("apt-get", "update").CombinedOutput(); updateErr != nil {
			return fmt.Errorf("%w (apt-get update: %v: %s)", err, updateErr, out)
		}
		if deb, err = downloadKernel(work); err != nil {
			return err
		}
	}
	unpacked := filepath.Join(work, "root")
	if out, err := exec.Command("dpkg-deb", "-x", deb, unpacked).CombinedOutput(); err != nil {
		return fmt.Errorf("unpacking %s: %w: %s", filepath.Base(deb), err, out)
	}
	vmlinuz, err := onlyMatch(filepath.Join(unpacked, "boot", "vmlinuz-*"))
	if err != nil {
		return err
	}
	moduleDir, err := onlyMatch(filepath.Join(unpacked, "lib", "modules", "*"))
	if err != nil {
		return err
	}
	modules, err := moduleLoadOrder(moduleDir, moduleRoots)
	if err != nil {
		return err
	}

	staged := filepath.Join(work, "kit")
	if err := os.Mkdir(staged, 0o755); err != nil {
		return err
	}
	if err := os.Rename(vmlinuz, filepath.Join(staged, "vmlinuz")); err != nil {
		return err
	}
	if err := writeInitrd(filepath.Join(staged, "initrd.img"), busybox, modules); err != nil {
		return fmt.Errorf("writing initramfs: %w", err)
	}
	return os.Rename(staged, kitDir)
}

// downloadKernel fetches the package the cloud kernel metapackage currently
// points at; the metapackage itself holds no kernel.
func downloadKernel(work string) (deb string, err error) {
	out, err := exec.Command("apt-cache", "depends", kernelMetaPackage).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("resolving %s: %w: %s", kernelMetaPackage, err, out)
	}
	var pkg string
	for _, line := range strings.Split(string(out), "\n") {
		if dep, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(dep, "linux-image-") {
			pkg = dep
			break
		}
	}
	if pkg == "" {
		return "", fmt.Errorf("resolving %s: no linux-image dependency in %q", kernelMetaPackage, out)
	}
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = work
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("downloading %s: %w: %s", pkg, err, out)
	}
	return onlyMatch(filepath.Join(work, pkg+"_*.deb"))
}

func onlyMatch(pattern string) (string, error) {
	matches, err := filepath.Glob(pattern)
	if err != nil {
		return "", err
	}
	if len(matches) != 1 {
		return "", fmt.Errorf("want one file matching %s, found %d", pattern, len(matches))
	}
	return matches[0], nil
}

type module struct{ name, path string }

// moduleLoadOrder lists roots and the modules they depend on, each after its
// dependencies, as insmod needs them. The package ships no modules.dep
// (depmod runs at install), so dependencies come from each module's .modinfo.
func moduleLoadOrder(moduleDir string, roots []string) ([]module, error) {
	builtin, err := builtinModules(filepath.Join(moduleDir, "modules.builtin"))
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	err = filepath.WalkDir(filepath.Join(moduleDir, "kernel"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(p, ".ko") {
			files[moduleName(p)] = p
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listing kernel modules: %w", err)
	}

	var order []module
	seen := map[string]bool{}
	var visit func(name string) error
	visit = func(name string) error {
		if seen[name] || builtin[name] {
			return nil
		}
		seen[name] = true
		p, ok := files[name]
		if !ok {
			return fmt.Errorf("kernel module %s is neither built in nor an uncompressed .ko in the package", name)
		}
		deps, err := moduleDepends(p)
		if err != nil {
			return err
		}
		for _, dep := range deps {
			if err := visit(dep); err != nil {
				return err
			}
		}
		order = append(order, module{name, p})
		return nil
	}
	for _, root := range roots {
		if err := visit(root); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// moduleName is how the kernel names the module in file p.
func moduleName(p string) string {
	return strings.ReplaceAll(strings.TrimSuffix(path.Base(filepath.ToSlash(p)), ".ko"), "-", "_")
}

func builtinModules(file string) (map[string]bool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading built-in module list: %w", err)
	}
	builtin := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			builtin[moduleName(line)] = true
		}
	}
	return builtin, sc.Err()
}

func moduleDepends(p string) ([]string, error) {
	f, err := elf.Open(p)
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", filepath.Base(p), err)
	}
	defer f.Close()
	section := f.Section(".modinfo")
	if section == nil {
		return nil, fmt.Errorf("module %s has no .modinfo", filepath.Base(p))
	}
	info, err := section.Data()
	if err != nil {
		return nil, fmt.Errorf("reading module %s: %w", filepath.Base(p), err)
	}
	for _, field := range bytes.Split(info, []byte{0}) {
		if deps, ok := bytes.CutPrefix(field, []byte("depends=")); ok {
			if len(deps) == 0 {
				return nil, nil
			}
			return strings.Split(string(deps), ","), nil
		}
	}
	return nil, nil
}

// writeInitrd writes the gzipped initramfs: busybox, the init scripts from
// rootfs/, and the modules with their load order for init.
func writeInitrd(file string, busybox []byte, modules []module) (err error) {
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if closeErr := f.Close(); err == nil {
			err = closeErr
		}
	}()
	zw := gzip.NewWriter(f)
	cw := &newcWriter{w: zw}
	for _, d := range []string{"bin", "dev", "lib", "lib/modules", "proc", "run", "sys", "tmp"} {
		cw.dir(d)
	}
	// The kernel opens /dev/console for init before init can mount devtmpfs.
	cw.charDev("dev/console", 5, 1)
	cw.file("bin/busybox", modeExec, busybox)
	for _, script := range []struct{ name, dest string }{
		{"init", "init"},
		{"dhcp-event", "bin/dhcp-event"},
		{"banner", "bin/banner"},
	} {
		data, err := rootfs.ReadFile("rootfs/" + script.name)
		if err != nil {
			return err
		}
		cw.file(script.dest, modeExec, data)
	}
	var loadOrder strings.Builder
	for _, m := range modules {
		data, err := os.ReadFile(m.path)
		if err != nil {
			return err
		}
		cw.file("lib/modules/"+m.name+".ko", modeFile, data)
		fmt.Fprintln(&loadOrder, m.name)
	}
	cw.file("lib/modules/load-order", modeFile, []byte(loadOrder.String()))
	if err := cw.close(); err != nil {
		return err
	}
	return zw.Close()
}

// PrepareBeforeSandbox fills the kit cache while the machine's network is
// still there: a test binary that boots guests calls it first thing in
// TestMain, before it moves into namespaces without a network, where the
// cached kit is then found at once. A failure is told on stderr and again,
// in the test, by Prepare.
func PrepareBeforeSandbox() {
	if os.Geteuid() != 0 {
		return
	}
	if _, err := PrepareDir(""); err != nil {
		fmt.Fprintln(os.Stderr, "preparing the guest kit:", err)
	}
}
