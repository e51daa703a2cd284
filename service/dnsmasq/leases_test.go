package dnsmasq

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseLeases(t *testing.T) {
	file := strings.Join([]string{
		"1700000000 52:54:00:AB:cd:01 10.97.0.23 guest1 01:52:54:00:ab:cd:01",
		"0 52:54:00:ab:cd:02 10.97.0.24 * *",
		"",
		"garbage",
		"notanumber 52:54:00:ab:cd:03 10.97.0.25 x *",
		"-5 52:54:00:ab:cd:03 10.97.0.25 x *",
		"1700000000 not-a-mac 10.97.0.26 x *",
		"1700000000 6-52:54:00:ab:cd:04 10.97.0.27 x *", // another hardware type
		"1700000000 52:54:00:ab:cd:05 10.97.0 x *",
		"duid 00:01:00:01:2c:aa:bb:cc:52:54:00:00:00:01",
		"1700000000 12345678 fd00::5 v6guest 00:01:00:01",     // DHCPv6 lease
		"1700000000 52:54:00:ab:cd:06 10.97.0.28",             // too few fields
		"1700000000 52:54:00:ab:cd:08 10.98.0.30 elsewhere *", // outside the subnet
		"1700000000 52:54:00:ab:cd:09 10.97.0.23 second *",    // an address already leased
		"1700000000 52:54:00:ab:cd:07 10.97.0.29 half",        // unterminated: dnsmasq is still writing
	}, "\n")
	want := []Lease{
		{MAC: "52:54:00:ab:cd:01", IP: "10.97.0.23", Hostname: "guest1", Expiry: time.Unix(1700000000, 0)},
		{MAC: "52:54:00:ab:cd:02", IP: "10.97.0.24"},
	}
	if got := parseLeases([]byte(file), subnet); !reflect.DeepEqual(got, want) {
		t.Errorf("parseLeases:\n got %+v\nwant %+v", got, want)
	}
	if got := parseLeases(nil, subnet); got != nil {
		t.Errorf("empty file: got %+v", got)
	}
}

var subnet = netip.MustParsePrefix("10.97.0.0/24")

func TestHostnamesArePlainNames(t *testing.T) {
	for name, published := range map[string]string{
		"guest1":                "guest1",
		"WIN_PC-7":              "WIN_PC-7",
		strings.Repeat("a", 63): strings.Repeat("a", 63),
		strings.Repeat("a", 64): "",
		"caf\xc3\xa9":           "",
		"bad\xff":               "",
		"-lead":                 "",
		"trail-":                "",
		"a.b":                   "",
		"x\x1b[31m":             "",
		"<script>":              "",
		"\u202eexe.txt":         "",
	} {
		line := "0 52:54:00:ab:cd:01 10.97.0.23 " + name + " *\n"
		got := parseLeases([]byte(line), subnet)
		if len(got) != 1 || got[0].Hostname != published {
			t.Errorf("hostname %q: got %+v, want the lease with hostname %q", name, got, published)
		}
	}
}

func TestLeasesAreBoundedByTheSubnet(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "0 52:54:00:00:%02x:%02x 10.97.0.%d g *\n", i/256, i%256, i%256)
	}
	if got := parseLeases([]byte(b.String()), subnet); len(got) != 256 {
		t.Errorf("5000 lease lines for a /24: %d leases kept, want one per address (256)", len(got))
	}
}

func TestCurrentDropsExpiredAndSorts(t *testing.T) {
	now := time.Unix(1000, 0)
	in := []Lease{
		{MAC: "52:54:00:00:00:03", IP: "10.97.0.30", Expiry: time.Unix(2000, 0)},
		{MAC: "52:54:00:00:00:01", IP: "10.97.0.9", Expiry: time.Unix(1000, 0)}, // expires now
		{MAC: "52:54:00:00:00:02", IP: "10.97.0.4"},                             // infinite
	}
	got := current(in, now)
	want := []Lease{in[2], in[0]}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("current:\n got %+v\nwant %+v", got, want)
	}
	if next := nextExpiry(got); !next.Equal(time.Unix(2000, 0)) {
		t.Errorf("nextExpiry = %v, want 2000", next.Unix())
	}
}

func TestSameGuestsIgnoresExpiry(t *testing.T) {
	a := []Lease{{MAC: "52:54:00:00:00:01", IP: "10.97.0.2", Hostname: "g", Expiry: time.Unix(1, 0)}}
	renewed := []Lease{{MAC: "52:54:00:00:00:01", IP: "10.97.0.2", Hostname: "g", Expiry: time.Unix(2, 0)}}
	renamed := []Lease{{MAC: "52:54:00:00:00:01", IP: "10.97.0.2", Hostname: "h", Expiry: time.Unix(1, 0)}}
	if !sameGuests(a, renewed) {
		t.Error("a renewal that only moves the expiry counts as a change")
	}
	if sameGuests(a, renamed) {
		t.Error("a new hostname does not count as a change")
	}
}

// watchFor starts a watcher on dir/leases and returns the channel its
// reports arrive on.
func watchFor(t *testing.T, dir string) (*leaseWatcher, <-chan []Lease) {
	t.Helper()
	reports := make(chan []Lease, 16)
	w, err := watchLeases(filepath.Join(dir, "leases"), subnet, func(l []Lease) { reports <- l })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, reports
}

func next(t *testing.T, reports <-chan []Lease) []Lease {
	t.Helper()
	select {
	case l := <-reports:
		return l
	case <-time.After(30 * time.Second):
		t.Fatal("no lease report")
		return nil
	}
}

func macs(leases []Lease) []string {
	var m []string
	for _, l := range leases {
		m = append(m, l.MAC)
	}
	return m
}

func TestWatcherReportsWritesAndExpiry(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases")
	soon := time.Now().Add(2 * time.Second).Unix()
	// Already there before the watcher starts, as after a daemon restart.
	if err := os.WriteFile(path, []byte("0 52:54:00:00:00:01 10.97.0.2 forever *\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, reports := watchFor(t, dir)
	if got := macs(next(t, reports)); !reflect.DeepEqual(got, []string{"52:54:00:00:00:01"}) {
		t.Fatalf("initial leases: %v", got)
	}

	// Rewritten in place, the way dnsmasq does it.
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rewrite := func(content string) {
		t.Helper()
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte(content), 0); err != nil {
			t.Fatal(err)
		}
	}
	rewrite("0 52:54:00:00:00:01 10.97.0.2 forever *\n" +
		strconv.FormatInt(soon, 10) + " 52:54:00:00:00:02 10.97.0.3 brief *\n")
	got := next(t, reports)
	if !reflect.DeepEqual(macs(got), []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}) || got[1].Hostname != "brief" {
		t.Fatalf("after grant: %+v", got)
	}

	// The file still lists the short lease; it must go when it expires.
	if got := macs(next(t, reports)); !reflect.DeepEqual(got, []string{"52:54:00:00:00:01"}) {
		t.Fatalf("after expiry: %v", got)
	}
	if got := macs(w.Leases()); !reflect.DeepEqual(got, []string{"52:54:00:00:00:01"}) {
		t.Fatalf("Leases after expiry: %v", got)
	}

	rewrite("")
	if got := next(t, reports); len(got) != 0 {
		t.Fatalf("after release: %+v", got)
	}
}

func TestWatcherIgnoresExpiryOnlyRenewal(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "leases")
	w, reports := watchFor(t, dir)
	far := time.Now().Add(time.Hour).Unix()
	write := func(content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	line := func(expiry int64, mac, ip string) string {
		return strconv.FormatInt(expiry, 10) + " " + mac + " " + ip + " * *\n"
	}

	write(line(far, "52:54:00:00:00:01", "10.97.0.2"))
	if got := macs(next(t, reports)); !reflect.DeepEqual(got, []string{"52:54:00:00:00:01"}) {
		t.Fatalf("first report: %v", got)
	}
	write(line(far+60, "52:54:00:00:00:01", "10.97.0.2"))
	// Leases shows the renewal once the watcher has read it.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if l := w.Leases(); len(l) == 1 && l[0].Expiry.Unix() == far+60 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("renewal never read: %+v", w.Leases())
		}
	}
	write(line(far+60, "52:54:00:00:00:01", "10.97.0.2") + line(far, "52:54:00:00:00:02", "10.97.0.3"))
	if got := macs(next(t, reports)); !reflect.DeepEqual(got, []string{"52:54:00:00:00:01", "52:54:00:00:00:02"}) {
		t.Fatalf("second report (the renewal must not be one): %v", got)
	}
}

// dnsmasq's user may replace its lease file: neither a link to a file
// only root may read, nor a FIFO that never ends, is read.
func TestLeaseFileIsReadOnlyAsARegularFile(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("0 52:54:00:ab:cd:01 10.97.0.23 secret *\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "leases-link")
	if err := os.Symlink(secret, link); err != nil {
		t.Fatal(err)
	}
	if data, err := readLeaseFile(link); err == nil {
		t.Errorf("a link was followed: read %q", data)
	}
	fifo := filepath.Join(dir, "leases-fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := readLeaseFile(fifo); err == nil {
		t.Errorf("a FIFO was read: %q", data)
	}
	big := filepath.Join(dir, "leases-big")
	if err := os.WriteFile(big, make([]byte, 3*maxLeaseFileSize), 0o600); err != nil {
		t.Fatal(err)
	}
	if data, err := readLeaseFile(big); err != nil || len(data) != maxLeaseFileSize {
		t.Errorf("a huge file: read %d bytes (%v), want %d", len(data), err, maxLeaseFileSize)
	}
}
