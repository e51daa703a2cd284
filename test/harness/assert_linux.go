package harness

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Links are the names of the sandbox's network links starting with prefix,
// sorted.
func Links(t testing.TB, prefix string) []string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatalf("harness: listing links: %v", err)
	}
	var names []string
	for _, i := range ifaces {
		if strings.HasPrefix(i.Name, prefix) {
			names = append(names, i.Name)
		}
	}
	sort.Strings(names)
	return names
}

// IPTablesSave is the sandbox's IPv4 filter and nat tables as
// iptables-save prints them, without its comment lines (they hold a
// timestamp) so two dumps can be compared.
func IPTablesSave(t testing.TB) string {
	t.Helper()
	var b strings.Builder
	for _, table := range []string{"filter", "nat"} {
		out, err := exec.Command("iptables-save", "-t", table).CombinedOutput()
		if err != nil {
			t.Fatalf("harness: iptables-save -t %s: %v: %s", table, err, out)
		}
		for _, line := range strings.SplitAfter(string(out), "\n") {
			if !strings.HasPrefix(line, "#") {
				b.WriteString(line)
			}
		}
	}
	return b.String()
}

// IP6TablesSave is the sandbox's IPv6 filter and nat tables as
// ip6tables-save prints them, leaving out tables that hold nothing but
// empty built-in chains: netgrant's last chains gone leave such a table
// behind, and it filters nothing.
func IP6TablesSave(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("ip6tables-save").CombinedOutput()
	if err != nil {
		t.Fatalf("harness: ip6tables-save: %v: %s", err, out)
	}
	var b strings.Builder
	for _, table := range strings.Split(string(out), "\n*")[1:] {
		lines := strings.Split(table, "\n")
		empty := true
		for _, line := range lines[1:] {
			empty = empty && (line == "" || line == "COMMIT" || strings.HasPrefix(line, "#") || strings.HasSuffix(line, " ACCEPT [0:0]"))
		}
		if empty {
			continue
		}
		b.WriteString("*")
		for _, line := range lines {
			if line != "" && !strings.HasPrefix(line, "#") {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// FirewallRules is everything netgrant's firewall could hold: iptables'
// and ip6tables' filter and nat tables and netgrant's nftables tables, so
// a test compares the firewall before and after whatever the backend.
func FirewallRules(t testing.TB) string {
	t.Helper()
	rules := IPTablesSave(t) + IP6TablesSave(t)
	for _, table := range [][]string{{"ip", "netgrant"}, {"ip6", "netgrant"}, {"bridge", "netgrant"}} {
		out, err := exec.Command("nft", append([]string{"list", "table"}, table...)...).CombinedOutput()
		switch {
		case err == nil:
			rules += string(out)
		case !strings.Contains(string(out), "No such file or directory"):
			t.Fatalf("harness: nft list table %v: %v: %s", table, err, out)
		}
	}
	return rules
}

// ProcessesNamed are the pids of the sandbox's live (not zombie) processes
// whose command name (as in /proc/PID/comm, at most 15 bytes) is name.
func ProcessesNamed(name string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The state follows the command name, which may contain spaces.
		if fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(fields) > 0 && fields[0] == "Z" {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// OpenFDs is the number of fds process pid has open, or -1 if it is gone.
func OpenFDs(pid int) int {
	entries, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		return -1
	}
	return len(entries)
}
