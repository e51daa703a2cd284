package guest

import (
	"fmt"
	"io"
)

// newc file types and permissions, as cpio(5) "new ASCII" format stores them.
const (
	modeDir     = 0o040755
	modeFile    = 0o100644
	modeExec    = 0o100755
	modeCharDev = 0o020600
)

// newcWriter writes a cpio archive in the newc format the kernel unpacks as
// initramfs. Written here rather than with cpio(1) so /dev/console can be a
// device node without mknod, that is, without root.
type newcWriter struct {
	w   io.Writer
	ino uint32
	err error
}

func (c *newcWriter) dir(name string) { c.entry(name, modeDir, 0, 0, nil) }

func (c *newcWriter) file(name string, mode uint32, data []byte) { c.entry(name, mode, 0, 0, data) }

func (c *newcWriter) charDev(name string, major, minor uint32) {
	c.entry(name, modeCharDev, major, minor, nil)
}

// close writes the trailer; it does not close the underlying writer.
func (c *newcWriter) close() error {
	c.entry("TRAILER!!!", 0, 0, 0, nil)
	return c.err
}

func (c *newcWriter) entry(name string, mode, rdevMajor, rdevMinor uint32, data []byte) {
	if c.err != nil {
		return
	}
	c.ino++
	header := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdevMajor, rdevMinor, len(name)+1, 0)
	c.write([]byte(header + name + "\x00"))
	c.pad(len(header) + len(name) + 1)
	c.write(data)
	c.pad(len(data))
}

func (c *newcWriter) pad(n int) {
	if rem := n % 4; rem != 0 {
		c.write(make([]byte, 4-rem))
	}
}

func (c *newcWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
	}
}
