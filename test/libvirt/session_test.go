// Package libvirt_test runs netgrant under libvirt's session daemon, as
// virt-manager, GNOME Boxes, virt-install and every other libvirt session
// app use it: an unprivileged user's qemu:///session with bridge_helper set
// to netgrant-bridge-helper, domains with <interface type='bridge'> on
// netgrant networks, booting the tests' guest.
package libvirt_test

import (
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/guest"
	"github.com/netgrant/netgrant/test/harness"
)

func TestMain(m *testing.M) {
	guest.PrepareBeforeSandbox()
	harness.Main(m)
}

// bootLimit is generous: guests run under TCG (see domainType) on a
// machine that may be busy.
const bootLimit = 3 * time.Minute

// session is a user's libvirt session, qemu:///session, with netgrant's
// bridge helper; libvirt spawns its daemon on the first virsh call.
type session struct {
	t    *testing.T
	user string
	dir  string // the user's home; runtime, config and domains' files below
	kit  guest.Kit
}

// startSession prepares user's session: their directories, the one-time
// qemu.conf line, and the guest's kernel and initramfs where their QEMU
// can read them. Their libvirt processes and VMs are killed when t ends.
func startSession(t *testing.T, user string) *session {
	t.Helper()
	if _, err := exec.LookPath("virsh"); err != nil {
		t.Fatal("virsh is missing: test/run installs libvirt-clients, libvirt-daemon and libvirt-daemon-driver-qemu")
	}
	uid, gid := harness.IDs(t, user)
	dir := filepath.Join(harness.RunDir, "libvirt-"+user)
	s := &session{t: t, user: user, dir: dir}
	for _, sub := range []string{"", "run", "config", "config/libvirt", "cache", "vm"} {
		path := filepath.Join(dir, sub)
		if err := os.MkdirAll(path, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(path, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	helper := filepath.Join(harness.Programs(t), "netgrant-bridge-helper")
	s.writeFile("config/libvirt/qemu.conf", fmt.Sprintf("bridge_helper = %q\n", helper), uid, gid)
	kit := guest.Prepare(t)
	for _, f := range []struct{ from, to string }{{kit.Kernel, "vm/vmlinuz"}, {kit.Initrd, "vm/initrd.img"}} {
		data, err := os.ReadFile(f.from)
		if err != nil {
			t.Fatal(err)
		}
		s.writeFile(f.to, string(data), uid, gid)
	}
	s.kit = guest.Kit{Kernel: filepath.Join(dir, "vm/vmlinuz"), Initrd: filepath.Join(dir, "vm/initrd.img")}
	t.Cleanup(func() { killUserProcesses(uid, "libvirtd", "virtlogd", "virtqemud", "qemu-system-x86") })
	return s
}

func (s *session) writeFile(name, data string, uid, gid int) {
	s.t.Helper()
	path := filepath.Join(s.dir, name)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		s.t.Fatal(err)
	}
}

// command runs program as the session's user, in their session's
// environment.
func (s *session) command(program string, args ...string) *exec.Cmd {
	cmd := harness.CommandAs(s.t, s.user, program, args...)
	cmd.Env = append(cmd.Env, "HOME="+s.dir, "XDG_RUNTIME_DIR="+filepath.Join(s.dir, "run"),
		"XDG_CONFIG_HOME="+filepath.Join(s.dir, "config"), "XDG_CACHE_HOME="+filepath.Join(s.dir, "cache"))
	return cmd
}

// virsh runs virsh -c qemu:///session and returns what it printed.
func (s *session) virsh(args ...string) (string, error) {
	out, err := s.command("virsh", append([]string{"-c", "qemu:///session"}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

func (s *session) mustVirsh(args ...string) string {
	s.t.Helper()
	out, err := s.virsh(args...)
	s.t.Logf("%s$ virsh -c qemu:///session %s\n%s", s.user, strings.Join(args, " "), out)
	if err != nil {
		s.t.Fatalf("virsh %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// nic is a domain's <interface type='bridge'>.
type nic struct{ mac, bridge string }

// domain is a libvirt domain booting the tests' guest.
type domain struct {
	s       *session
	name    string
	console string
}

// domainType is "qemu" (TCG): where /dev/kvm exists on these machines a
// guest kernel hangs under it, and the session's user cannot open it.
const domainType = "qemu"

// define defines a domain booting the guest with checks c on nics, its
// serial console in a file.
func (s *session) define(name string, c guest.Checks, nics ...nic) *domain {
	s.t.Helper()
	d := &domain{s: s, name: name, console: filepath.Join(s.dir, "vm", name+".console")}
	var ifaces strings.Builder
	for _, n := range nics {
		fmt.Fprintf(&ifaces, "    <interface type='bridge'>\n      <mac address='%s'/>\n      <source bridge='%s'/>\n      <model type='virtio'/>\n    </interface>\n", n.mac, n.bridge)
	}
	xml := fmt.Sprintf(`<domain type='%s'>
  <name>%s</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>%s</kernel>
    <initrd>%s</initrd>
    <cmdline>%s</cmdline>
  </os>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
%s    <serial type='file'>
      <source path='%s'/>
      <target port='0'/>
    </serial>
  </devices>
</domain>
`, domainType, name, s.kit.Kernel, s.kit.Initrd, html.EscapeString(s.kit.KernelArgs(c)), ifaces.String(), d.console)
	file := filepath.Join(s.dir, "vm", name+".xml")
	uid, gid := harness.IDs(s.t, s.user)
	s.writeFile("vm/"+name+".xml", xml, uid, gid)
	s.mustVirsh("define", file)
	return d
}

// start starts the domain on a fresh console.
func (d *domain) start() {
	d.s.t.Helper()
	os.Remove(d.console)
	d.s.mustVirsh("start", d.name)
}

func (d *domain) destroy() {
	d.s.t.Helper()
	d.s.mustVirsh("destroy", d.name)
}

// lines are what the guest printed on its console so far.
func (d *domain) lines() []string {
	data, err := os.ReadFile(d.console)
	if err != nil {
		return nil
	}
	var lines []string
	for _, line := range strings.Split(string(data), "\n") {
		lines = append(lines, strings.TrimRight(line, "\r"))
	}
	return lines
}

// results waits for the guest to finish its checks and returns them, with
// the console's NETGRANT lines logged.
func (d *domain) results() map[string]guest.Result {
	d.s.t.Helper()
	deadline := time.Now().Add(bootLimit)
	for !d.printed("NETGRANT-DONE") {
		if time.Now().After(deadline) {
			d.s.t.Fatalf("domain %s did not finish its checks within %v; console:\n%s", d.name, bootLimit, strings.Join(d.lines(), "\n"))
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, line := range d.lines() {
		if strings.HasPrefix(line, "NETGRANT-") {
			d.s.t.Logf("%s: %s", d.name, line)
		}
	}
	results, err := guest.Results(d.lines())
	if err != nil {
		d.s.t.Fatal(err)
	}
	return results
}

func (d *domain) printed(prefix string) bool {
	for _, line := range d.lines() {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// killUserProcesses kills uid's processes running one of programs.
func killUserProcesses(uid int, programs ...string) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat("/proc/"+e.Name(), &st) != nil || int(st.Uid) != uid {
			continue
		}
		comm, _ := os.ReadFile("/proc/" + e.Name() + "/comm")
		for _, p := range programs {
			if strings.HasPrefix(strings.TrimSpace(string(comm)), p) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
}
