package cli_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/godbus/dbus/v5"
	"golang.org/x/sys/unix"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/test/harness"
)

func TestNetworkCreateListShowDelete(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})

	r := netgrant(t, harness.UserAlice, "network", "create", "lab", "--subnet", "10.97.5.0/24")
	mustSucceed(t, r)
	for _, want := range []string{"Network lab: bridge ", "subnet 10.97.5.0/24, gateway 10.97.5.1", "; IPv6 fd", "::/64, gateway fd", "It is persistent", "netgrant network delete lab"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("network create printed %q, lacking %q", r.stdout, want)
		}
	}
	// The CLI has exited: only persistence keeps the network.
	if !networkExists(t, env, "lab") {
		t.Fatal("the network is gone after network create exited")
	}

	r = netgrant(t, harness.UserBob, "list")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "lab") || !strings.Contains(r.stdout, "ngalice") || !strings.Contains(r.stdout, "10.97.5.0/24") ||
		!strings.Contains(r.stdout, "persistent") || !strings.Contains(r.stdout, "No taps.") {
		t.Errorf("list as another user does not show alice's persistent network and no taps:\n%s", r.stdout)
	}

	r = netgrant(t, harness.UserAlice, "list", "--json")
	mustSucceed(t, r)
	var list struct {
		Networks []struct {
			Name, Subnet, Gateway, Bridge string
			Persistent, DHCP, Outbound    bool
			Owner                         uint32
			OwnerName                     string `json:"owner_name"`
			Leases                        []any
		}
		Taps []any
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatalf("list --json is no JSON: %v", err)
	}
	if len(list.Networks) != 1 || len(list.Taps) != 0 {
		t.Fatalf("list --json: %+v, want one network and no taps", list)
	}
	n := list.Networks[0]
	if n.Name != "lab" || n.Subnet != "10.97.5.0/24" || n.Gateway != "10.97.5.1" || !n.Persistent || !n.DHCP || !n.Outbound ||
		n.Owner != 4001 || n.OwnerName != harness.UserAlice || n.Leases == nil || n.Bridge == "" {
		t.Errorf("list --json network: %+v", n)
	}

	r = netgrant(t, harness.UserAlice, "network", "show", "lab")
	mustSucceed(t, r)
	for _, want := range []string{"Owner:      ngalice (4001)", "Subnet:     10.97.5.0/24", "Subnet6:    fd", "Gateway6:   fd", "Persistent: yes", "Leases:     -"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("network show lacks %q:\n%s", want, r.stdout)
		}
	}

	// An IPv4-only network shows no IPv6.
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "create", "v4", "--no-ipv6", "--subnet", "10.97.7.0/24"))
	if r = netgrant(t, harness.UserAlice, "network", "show", "v4"); !strings.Contains(r.stdout, "Subnet6:    -") {
		t.Errorf("network show of a network without IPv6:\n%s", r.stdout)
	}
	if r = netgrant(t, harness.UserAlice, "list"); !strings.Contains(r.stdout, "SUBNET6") || !regexp.MustCompile(`v4 +ngalice +10\.97\.7\.0/24 +10\.97\.7\.1 +- `).MatchString(r.stdout) {
		t.Errorf("list shows no IPv6 column, or IPv6 for v4:\n%s", r.stdout)
	}
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "delete", "v4"))
	// Deleting another user's network needs org.netgrant.manage.
	wantFailure(t, netgrant(t, harness.UserMallory, "network", "delete", "lab"), exitNoPerm,
		"netgrant: /org/netgrant/NetGrant1/network/lab belongs to another user: acting on it needs polkit org.netgrant.manage")
	if !networkExists(t, env, "lab") {
		t.Fatal("mallory's refused delete removed the network")
	}

	r = netgrant(t, harness.UserAlice, "network", "delete", "lab")
	mustSucceed(t, r)
	if r.stdout != "Deleted network lab.\n" {
		t.Errorf("network delete printed %q", r.stdout)
	}
	if networkExists(t, env, "lab") {
		t.Error("the network still exists after network delete")
	}
	wantFailure(t, netgrant(t, harness.UserAlice, "network", "show", "lab"), exitNotFound, `there is no network "lab"`)
}

func TestNetworkCreateHoldLastsUntilInterrupted(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	cmd := commandAs(t, harness.UserAlice, bin(t, "netgrant"), "network", "create", "held", "--hold", "--isolated")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	readLine(t, out)
	if line := readLine(t, out); !strings.HasPrefix(line, "Holding it until interrupted") {
		t.Fatalf("second line %q", line)
	}
	r := netgrant(t, harness.UserAlice, "network", "show", "held", "--json")
	var n struct {
		Persistent, Outbound bool
		Holders              uint32
	}
	if err := json.Unmarshal([]byte(r.stdout), &n); err != nil {
		t.Fatal(err)
	}
	if n.Persistent || n.Outbound || n.Holders != 1 {
		t.Errorf("held network: %+v, want not persistent, isolated, one holder", n)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if line := readLine(t, out); line != "Released network held." {
		t.Errorf("after Ctrl-C: %q", line)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("network create --hold after Ctrl-C: %v", err)
	}
	eventually(t, "torn down", func() bool { return !networkExists(t, env, "held") })
}

func TestRefusalsInPlainWords(t *testing.T) {
	harness.Start(t, harness.Options{Rules: rules})
	wantFailure(t, netgrant(t, harness.UserMallory, "network", "create", "m1", "--hold"), exitNoPerm,
		"netgrant: not allowed: polkit refused org.netgrant.create-nat-network; ask your administrator to allow it (see POLKIT in netgrantd(8))")
	wantFailure(t, netgrant(t, harness.UserMallory, "network", "create", "m1"), exitNoPerm, "not allowed: polkit refused org.netgrant.")
	// No rule for bob: polkit wants a password, and without a terminal
	// there is nobody to ask.
	wantFailure(t, netgrant(t, harness.UserBob, "run", "--tap", "vnet_hdr=on", "--", "true"), exitNoPerm,
		"authentication needed for org.netgrant.create-tap but no polkit agent is running", "run the command on a terminal")
	wantFailure(t, netgrant(t, harness.UserAlice, "run", "--bridge", "br0", "--", "true"), exitNoPerm,
		`bridge "br0" is not listed in [Bridges] Allow= of the netgrant configuration; an administrator must add it`)
	wantFailure(t, netgrant(t, harness.UserAlice, "tap", "delete", "ngtap99"), exitNotFound, "there is no tap called ngtap99")

	r := netgrant(t, harness.UserAlice, "run", "--tap", "network=a,bridge=b", "--", "true")
	if r.code != 2 || !strings.Contains(r.stderr, "network and bridge exclude each other") || !strings.Contains(r.stderr, "netgrant run --help") {
		t.Errorf("a bad --tap: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
}

func TestServiceNotRunning(t *testing.T) {
	harness.Start(t, harness.Options{NoDaemon: true})
	wantFailure(t, netgrant(t, harness.UserAlice, "list"), exitUnavailable, "netgrantd is not running or not installed")
}

// network forward add, list and remove, and forwards in list and show.
func TestNetworkForwardCommands(t *testing.T) {
	harness.Start(t, harness.Options{Rules: rules})
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "create", "fw", "--subnet", "10.97.6.0/24"))
	r := netgrant(t, harness.UserAlice, "network", "forward", "add", "fw", "tcp", "2222", "10.97.6.10", "22")
	mustSucceed(t, r)
	if r.stdout != "Forwarding tcp port 2222 (every address of this host) to 10.97.6.10 port 22 on network fw.\n" {
		t.Errorf("forward add printed %q", r.stdout)
	}
	wantFailure(t, netgrant(t, harness.UserAlice, "network", "forward", "add", "fw", "tcp", "2222", "10.97.6.11", "22"), exitFailure,
		"tcp port 2222 is already forwarded")
	if r := netgrant(t, harness.UserAlice, "network", "forward", "add", "fw", "icmp", "1", "10.97.6.11", "22"); r.code != 2 ||
		!strings.Contains(r.stderr, `PROTO "icmp" is neither tcp nor udp`) {
		t.Errorf("forward add icmp: exit %d, stderr %q, want a usage error", r.code, r.stderr)
	}
	wantFailure(t, netgrant(t, harness.UserMallory, "network", "forward", "add", "fw", "udp", "5000", "10.97.6.11", "53"), exitNoPerm, "belongs to another user")

	r = netgrant(t, harness.UserAlice, "network", "forward", "list", "fw")
	mustSucceed(t, r)
	if !strings.Contains(r.stdout, "tcp    2222       -        10.97.6.10  22") {
		t.Errorf("forward list:\n%s", r.stdout)
	}
	r = netgrant(t, harness.UserAlice, "network", "show", "fw")
	if !strings.Contains(r.stdout, "Forwards:   tcp *:2222 -> 10.97.6.10:22") {
		t.Errorf("network show lacks the forward:\n%s", r.stdout)
	}
	r = netgrant(t, harness.UserBob, "list", "--json")
	var list struct {
		Networks []struct {
			PortForwards []struct {
				Protocol  string `json:"protocol"`
				HostPort  uint16 `json:"host_port"`
				Guest     string `json:"guest"`
				GuestPort uint16 `json:"guest_port"`
				Address   string `json:"address"`
			} `json:"port_forwards"`
		}
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Networks) != 1 ||
		fmt.Sprint(list.Networks[0].PortForwards) != "[{tcp 2222 10.97.6.10 22 }]" {
		t.Errorf("list --json: %v %+v", err, list)
	}
	if r := netgrant(t, harness.UserBob, "list"); !strings.Contains(r.stdout, "fw       tcp    *:2222  10.97.6.10:22") {
		t.Errorf("list lacks the forward:\n%s", r.stdout)
	}

	r = netgrant(t, harness.UserAlice, "network", "forward", "remove", "fw", "tcp", "2222")
	mustSucceed(t, r)
	if r = netgrant(t, harness.UserAlice, "network", "forward", "list", "fw", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("forward list --json after the removal: %q", r.stdout)
	}
	wantFailure(t, netgrant(t, harness.UserAlice, "network", "forward", "remove", "fw", "tcp", "2222"), exitNotFound, "forwards no tcp port 2222")
	mustSucceed(t, netgrant(t, harness.UserAlice, "network", "delete", "fw"))
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"run", "--help"}, {"list", "--help"}, {"network", "--help"},
		{"network", "create", "--help"}, {"network", "show", "--help"}, {"network", "delete", "--help"}, {"tap", "delete", "--help"},
		{"network", "forward", "--help"}, {"network", "forward", "add", "--help"}, {"network", "forward", "remove", "--help"},
		{"network", "forward", "list", "--help"}} {
		r := netgrant(t, harness.UserAlice, args...)
		if r.code != 0 || !strings.HasPrefix(r.stdout, "Usage: netgrant") {
			t.Errorf("netgrant %s: exit %d, stdout %q", strings.Join(args, " "), r.code, r.stdout)
		}
	}
	r := runAs(t, harness.UserAlice, bin(t, "netgrant-bridge-helper"), "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "bridge_helper") {
		t.Errorf("netgrant-bridge-helper --help: exit %d, stdout %q", r.code, r.stdout)
	}
}

// childScript prints what netgrant run gave it: its arguments, the
// environment, what its fds are and the network's holders.
const childScript = `
echo "args: $*"
echo "env: $NETGRANT_TAP_FDS $NETGRANT_IFNAME $NETGRANT_MAC | $NETGRANT_TAP_FDS1 $NETGRANT_IFNAME1 $NETGRANT_MAC1"
for fd in 3 4 5; do echo "fd $fd: $(readlink /proc/self/fd/$fd)"; done
echo "master: $(basename "$(readlink /sys/class/net/$NETGRANT_IFNAME1/master)")"
netgrant network show demo --json | grep -E '"(holders|bridge)"'
exit 7
`

func TestRunHandsTapsToTheChild(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	r := netgrant(t, harness.UserAlice, "run", "--network", "demo", "--subnet", "10.97.7.0/24",
		"--tap", "network=demo,queues=2", "--tap", "network=demo,mac=52:54:00:aa:bb:cc",
		"--", "sh", "-c", childScript, "sh", "fds={fds}", "fd={fd}", "fd1={fd1}", "mac1={mac1}", "if={ifname}", "{keep}")
	if r.code != 7 {
		t.Fatalf("exit status %d, want the child's 7; stderr %s", r.code, r.stderr)
	}
	lines := strings.Split(r.stdout, "\n")
	var ifname string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(l, "args: fds=3:4 fd=3 fd1=5 mac1=52:54:00:aa:bb:cc if="); ok {
			ifname = strings.TrimSuffix(rest, " {keep}")
		}
	}
	if !strings.HasPrefix(ifname, "ngtap") {
		t.Errorf("placeholders not substituted as documented: %q", lines[0])
	}
	for _, want := range []string{
		"env: 3:4 " + ifname + " ",
		"| 5 ngtap",
		" 52:54:00:aa:bb:cc\n",
		"fd 3: /dev/net/tun", "fd 4: /dev/net/tun", "fd 5: /dev/net/tun",
		`"holders": 1`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("child output lacks %q", want)
		}
	}
	var bridge string
	for _, l := range lines {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), `"bridge": "`); ok {
			bridge = strings.TrimSuffix(rest, `",`)
		}
	}
	if bridge == "" || !strings.Contains(r.stdout, "master: "+bridge+"\n") {
		t.Errorf("the second tap is not on the network's bridge %q", bridge)
	}
	// The child was the taps' last holder, and the CLI the network's.
	if links := harness.Links(t, "ngtap"); len(links) > 0 {
		t.Errorf("taps left after the child exited: %v", links)
	}
	eventually(t, "torn down", func() bool { return !networkExists(t, env, "demo") })
}

func TestRunForwardsSignalsAndExitStatus(t *testing.T) {
	harness.Start(t, harness.Options{Rules: rules})
	cmd := commandAs(t, harness.UserAlice, bin(t, "netgrant"), "run", "--",
		"sh", "-c", `trap 'echo got-TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line := readLine(t, out); line != "ready" {
		t.Fatalf("child printed %q", line)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if line := readLine(t, out); line != "got-TERM" {
		t.Errorf("after SIGTERM to netgrant, the child printed %q", line)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 3 {
		t.Errorf("exit status %d, want the child's 3", code)
	}

	r := netgrant(t, harness.UserAlice, "run", "--", "sh", "-c", "kill -KILL $$")
	if r.code != 128+9 {
		t.Errorf("child killed by SIGKILL: exit status %d, want 137", r.code)
	}
	r = netgrant(t, harness.UserAlice, "run", "--", "/nonexistent/qemu")
	if r.code != 127 || !strings.Contains(r.stderr, "cannot start /nonexistent/qemu: no such file or directory") {
		t.Errorf("missing command: exit %d, stderr %q", r.code, r.stderr)
	}
}

// createHeldNetwork creates a network held by a harness client of alice's
// and returns its bridge.
func createHeldNetwork(t *testing.T, env *harness.Env, name, subnet string) string {
	t.Helper()
	alice := env.Client(t, harness.UserAlice)
	var path dbus.ObjectPath
	var info map[string]dbus.Variant
	if err := alice.Call("CreateNATNetwork", name, map[string]dbus.Variant{"subnet": dbus.MakeVariant(subnet)}).Store(&path, &info); err != nil {
		t.Fatalf("CreateNATNetwork: %v", err)
	}
	return info["bridge"].Value().(string)
}

func TestBridgeHelperSendsTapFD(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	bridge := createHeldNetwork(t, env, "hb", "10.97.8.0/24")

	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ours, theirs := os.NewFile(uintptr(pair[0]), "ours"), os.NewFile(uintptr(pair[1]), "theirs")
	defer ours.Close()
	cmd := commandAs(t, harness.UserAlice, bin(t, "netgrant-bridge-helper"), "--use-vnet", "--br="+bridge, "--fd=3")
	cmd.ExtraFiles = []*os.File{theirs}
	out, err := cmd.CombinedOutput()
	theirs.Close()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := unix.Recvmsg(pair[0], buf, oob, unix.MSG_DONTWAIT)
	if err != nil || n != 1 {
		t.Fatalf("receiving the fd: %d bytes, %v", n, err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Fatalf("control messages %v, %v", msgs, err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Fatalf("rights %v, %v", fds, err)
	}
	tap := os.NewFile(uintptr(fds[0]), "tap")
	ifr, _ := unix.NewIfreq("")
	if err := unix.IoctlIfreq(int(tap.Fd()), unix.TUNGETIFF, ifr); err != nil {
		t.Fatalf("the fd is no tap: %v", err)
	}
	if flags := ifr.Uint16(); flags&unix.IFF_TAP == 0 || flags&unix.IFF_VNET_HDR == 0 {
		t.Errorf("tap flags %#x, want IFF_TAP|IFF_VNET_HDR for --use-vnet", flags)
	}
	master, _ := os.Readlink(filepath.Join("/sys/class/net", ifr.Name(), "master"))
	if filepath.Base(master) != bridge {
		t.Errorf("tap %s is on %q, want %s", ifr.Name(), filepath.Base(master), bridge)
	}
	// QEMU holds the only fd now: closing it removes the tap.
	tap.Close()
	if links := harness.Links(t, "ngtap"); len(links) > 0 {
		t.Errorf("taps left after QEMU's fd closed: %v", links)
	}

	r := runAs(t, harness.UserAlice, bin(t, "netgrant-bridge-helper"), "--use-vnet", "--br=br-nope", "--fd=3")
	wantFailure(t, r, exitFailure, "netgrant-bridge-helper: cannot get a tap on bridge br-nope:", "an administrator must add it")
	r = runAs(t, harness.UserAlice, bin(t, "netgrant-bridge-helper"), "--bridge=x")
	if r.code == 0 || !strings.Contains(r.stderr, `unknown argument "--bridge=x"`) {
		t.Errorf("bad argument: exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestExampleScripts(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	r := runAs(t, harness.UserAlice, bin(t, "gdbus-network.sh"), "ex-gdbus", "10.97.9.0/24")
	mustSucceed(t, r)
	for _, want := range []string{
		"== create ex-gdbus\n(objectpath '/org/netgrant/NetGrant1/network/ex_2dgdbus', {",
		"'subnet': <'10.97.9.0/24'>",
		"== object /org/netgrant/NetGrant1/network/ex_2dgdbus\n",
		"== networks\nex-gdbus\n",
		"== IPv6 of ex-gdbus\n(<'fd",
		"(mac, ipv4, hostname)\n(<@a(sss) []>,)\n",
		"== forward tcp port 2222 to 10.97.9.10 port 22\n()\n(<[('tcp', uint16 2222, '10.97.9.10', uint16 22, '')]>,)\n",
		"== delete ex-gdbus\n()\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("gdbus example output lacks %q", want)
		}
	}
	if networkExists(t, env, "ex-gdbus") {
		t.Error("the gdbus example left its network")
	}

	r = runAs(t, harness.UserAlice, bin(t, "busctl-network.sh"), "ex-busctl", "10.97.10.0/24")
	mustSucceed(t, r)
	for _, want := range []string{
		"== create ex-busctl\noa{sv} \"/org/netgrant/NetGrant1/network/ex_2dbusctl\"",
		"== object /org/netgrant/NetGrant1/network/ex_2dbusctl\n",
		"\n/org/netgrant/NetGrant1/network/ex_2dbusctl\n",
		"s \"10.97.10.0/24\"\ns \"fd",
		"::/64\"\na(sss) 0\n",
		"== forward tcp port 2222 to 10.97.10.10 port 22\na(sqsqs) 1 \"tcp\" 2222 \"10.97.10.10\" 22 \"\"\n",
		"== delete ex-busctl\n",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("busctl example output lacks %q", want)
		}
	}
	if networkExists(t, env, "ex-busctl") {
		t.Error("the busctl example left its network")
	}
}

// With no network or bridge option, netgrant run puts the VM on the
// caller's own network, user-<uid>, which two VMs share and which goes
// with the last of them.
func TestRunUsesTheCallersOwnNetwork(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	const showMaster = "echo master=$(basename $(readlink /sys/class/net/{ifname}/master))"
	first := commandAs(t, harness.UserAlice, bin(t, "netgrant"), "run", "--", "sh", "-c", showMaster+"; read line")
	stdin, err := first.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := first.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	defer first.Process.Kill()
	line := readLine(t, out)
	if !networkExists(t, env, "user-4001") {
		t.Fatalf("no network user-4001 while the first VM runs (it printed %q)", line)
	}
	bridge := env.Property(names.NetworkPath("user-4001"), names.NetworkInterface, "Bridge")
	if line != fmt.Sprintf("master=%s", bridge) {
		t.Errorf("the first VM's tap: %q, want it on user-4001's bridge %s", line, bridge)
	}
	second := netgrant(t, harness.UserAlice, "run", "--", "sh", "-c", showMaster)
	if second.code != 0 || strings.TrimSpace(second.stdout) != line {
		t.Errorf("a second VM: exit %d, %q %q; want it on user-4001 too", second.code, second.stdout, second.stderr)
	}
	if !networkExists(t, env, "user-4001") {
		t.Error("user-4001 went while the first VM still holds it")
	}
	stdin.Close()
	first.Wait()
	eventually(t, "user-4001 to go with its last VM", func() bool { return !networkExists(t, env, "user-4001") })
}

// netgrant run tells the command whether the user may use vhost-net
// ({vhost}, NETGRANT_VHOST), so QEMU gets vhost=on exactly where it works.
func TestRunSaysWhetherVhostNetWorks(t *testing.T) {
	harness.Start(t, harness.Options{Rules: rules})
	want := "off"
	if runAs(t, harness.UserAlice, "/bin/sh", "-c", "[ -r /dev/vhost-net ] && [ -w /dev/vhost-net ]").code == 0 {
		want = "on"
	}
	r := netgrant(t, harness.UserAlice, "run", "--", "sh", "-c", `echo "$NETGRANT_VHOST $1"`, "sh", "vhost={vhost}")
	mustSucceed(t, r)
	if got := strings.TrimSpace(r.stdout); got != want+" vhost="+want {
		t.Errorf("netgrant run gave %q, want %q: /dev/vhost-net is %s to ngalice", got, want+" vhost="+want, map[string]string{"on": "usable", "off": "not usable"}[want])
	}
}
