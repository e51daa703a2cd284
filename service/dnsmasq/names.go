package dnsmasq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
)

// A network's guests are known in DNS by their DHCP hostnames, below the
// network's domain: alpha.lab.netgrant.internal. dnsmasq left alone would
// give a name to whichever guest asked for it last, so a guest could take
// over another's name just by asking; netgrantd decides instead, the
// first guest keeping the name, and writes what dnsmasq answers into a
// hosts file per name in NamesDir, which dnsmasq prefers to its leases'
// names and rereads as it changes (--hostsdir).

// NamesDir is where the guests' names of the dnsmasq of dir are.
func NamesDir(dir string) string { return filepath.Join(dir, "names") }

// Names gives each hostname to one guest at a time: the first whose lease
// asked for it keeps it until its lease goes or asks for another name.
type Names struct {
	holders map[string]string // lower-case name → MAC
}

// ReadNames picks up the names given out before a restart, from the
// hosts files in dir's NamesDir.
func ReadNames(dir string) *Names {
	n := &Names{holders: map[string]string{}}
	entries, _ := os.ReadDir(NamesDir(dir))
	for _, e := range entries {
		if !validHostname(e.Name()) || strings.ToLower(e.Name()) != e.Name() {
			continue
		}
		first, err := firstLine(filepath.Join(NamesDir(dir), e.Name()))
		if err != nil {
			continue
		}
		if mac, ok := strings.CutPrefix(first, "# "); ok {
			if hw, err := net.ParseMAC(mac); err == nil {
				n.holders[e.Name()] = hw.String()
			}
		}
	}
	return n
}

// firstLine reads the first line of path, which names the MAC holding
// the name. netgrantd alone writes these files.
func firstLine(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return "", errors.New("empty")
	}
	return sc.Text(), nil
}

// Named is a guest with the name it holds and the addresses dnsmasq
// answers for it.
type Named struct {
	MAC, Name string
	Addrs     []netip.Addr
}

// Assign hands out the names leases ask for, the names held already
// staying with their holders, and returns the name each MAC holds. A
// holder whose lease shows no name keeps its own: dnsmasq strips the name
// from an older lease when another guest asks for it.
func (n *Names) Assign(leases []Lease) map[string]string {
	if n.holders == nil {
		n.holders = map[string]string{}
	}
	asks := map[string]string{} // MAC → lower-case name, "" for none
	for _, l := range leases {
		asks[l.MAC] = strings.ToLower(l.Hostname)
	}
	for name, mac := range n.holders {
		if ask, leased := asks[mac]; !leased || ask != "" && ask != name {
			delete(n.holders, name)
		}
	}
	held := map[string]string{} // MAC → name
	for name, mac := range n.holders {
		held[mac] = name
	}
	for _, l := range leases {
		name := asks[l.MAC]
		if name == "" || held[l.MAC] != "" {
			continue
		}
		if _, taken := n.holders[name]; !taken {
			n.holders[name] = l.MAC
			held[l.MAC] = name
		}
	}
	return held
}

// WriteNames makes dnsmasq of dir answer exactly guests, each under
// <name>.<domain> and its bare name, from now on.
func WriteNames(dir, domain string, guests []Named) error {
	names := NamesDir(dir)
	want := map[string][]byte{}
	for _, g := range guests {
		if len(g.Addrs) == 0 {
			continue
		}
		var b bytes.Buffer
		fmt.Fprintf(&b, "# %s\n", g.MAC)
		for _, a := range g.Addrs {
			fmt.Fprintf(&b, "%s %s.%s %s\n", a, g.Name, domain, g.Name)
		}
		want[g.Name] = b.Bytes()
	}
	var errs []error
	entries, err := os.ReadDir(names)
	if err != nil {
		return fmt.Errorf("reading guests' names: %w", err)
	}
	for _, e := range entries {
		if _, ok := want[e.Name()]; !ok {
			if err := os.Remove(filepath.Join(names, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
				errs = append(errs, err)
			}
		}
	}
	for name, data := range want {
		path := filepath.Join(names, name)
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			continue
		}
		if err := writeReadable(names, name, data); err != nil {
			errs = append(errs, fmt.Errorf("naming %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

// writeReadable replaces dir/name with data, atomically, readable by
// dnsmasq's identity whatever umask netgrantd runs with. The temporary
// file's name is no hostname, so dnsmasq never takes it for one.
func writeReadable(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, "."+name)
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
