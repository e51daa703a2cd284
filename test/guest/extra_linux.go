package guest

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
)

// ExtraFile is a file added to a kit's initramfs: Path is where it goes,
// relative to its root.
type ExtraFile struct {
	Path string
	Exec bool
	Data []byte
}

// WithFiles returns k with files added, as a second archive the kernel
// unpacks after the first, written to dir; k itself is left as it is.
func (k Kit) WithFiles(dir string, files []ExtraFile) (Kit, error) {
	base, err := os.ReadFile(k.Initrd)
	if err != nil {
		return Kit{}, err
	}
	var extra bytes.Buffer
	zw := gzip.NewWriter(&extra)
	cw := &newcWriter{w: zw}
	made := map[string]bool{}
	for _, f := range files {
		var parents []string
		for d := path.Dir(f.Path); d != "." && d != "/" && !made[d]; d = path.Dir(d) {
			parents = append(parents, d)
			made[d] = true
		}
		for _, d := range slices.Backward(parents) {
			cw.dir(d)
		}
		mode := uint32(modeFile)
		if f.Exec {
			mode = modeExec
		}
		cw.file(f.Path, mode, f.Data)
	}
	if err := cw.close(); err != nil {
		return Kit{}, err
	}
	if err := zw.Close(); err != nil {
		return Kit{}, err
	}
	initrd := filepath.Join(dir, "initrd-extra.img")
	if err := os.WriteFile(initrd, append(base, extra.Bytes()...), 0o644); err != nil {
		return Kit{}, err
	}
	return Kit{Kernel: k.Kernel, Initrd: initrd}, nil
}

// lddLine is one library ldd(1) lists: "name => /path (addr)" or, for the
// loader, "/path (addr)".
var lddLine = regexp.MustCompile(`(?m)^\s+(?:\S+ => )?(/\S+) \(0x[0-9a-f]+\)$`)

// HostProgram is the host's program at file, put in /bin, with the shared
// libraries it loads where the host has them, for WithFiles.
func HostProgram(file string) ([]ExtraFile, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	files := []ExtraFile{{Path: "bin/" + filepath.Base(file), Exec: true, Data: data}}
	out, err := exec.Command("ldd", file).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", file, err)
	}
	for _, m := range lddLine.FindAllStringSubmatch(string(out), -1) {
		lib, err := os.ReadFile(m[1])
		if err != nil {
			return nil, err
		}
		files = append(files, ExtraFile{Path: m[1][1:], Exec: true, Data: lib})
	}
	return files, nil
}
