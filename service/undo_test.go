package service

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
)

func mustPrefix(t *testing.T, s string) netip.Prefix {
	t.Helper()
	p, err := netip.ParsePrefix(s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A record written step by step reads back as it was: it is all a
// restarted daemon has to go on.
func TestRecordsSurviveARestart(t *testing.T) {
	m := New(Options{StateDir: t.TempDir(), Log: slog.Default()})
	r := m.newRecord("network", "lab", "lab")
	if err := r.push(opDeleteBridge, map[string]string{"name": "ngbr0"}); err != nil {
		t.Fatal(err)
	}
	if err := r.push(opRemoveDir, map[string]string{"path": "/x"}); err != nil {
		t.Fatal(err)
	}
	r.Complete = true
	r.Network = &netSaved{Owner: 4001, Bridge: "ngbr0", Subnet: "10.97.0.0/24", Holders: []string{"bus/:1.5"}}
	if err := r.save(); err != nil {
		t.Fatal(err)
	}
	// A write the daemon died in leaves a temporary file behind.
	if err := os.WriteFile(filepath.Join(m.opts.StateDir, "network-x.json.tmp"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}

	loaded := m.loadRecords(slog.Default())
	if len(loaded) != 1 {
		t.Fatalf("loaded %d records, want 1", len(loaded))
	}
	got := loaded[0]
	if got.Kind != "network" || got.Name != "lab" || !got.Complete || len(got.Steps) != 2 ||
		got.Steps[0].Op != opDeleteBridge || got.Steps[0].Args["name"] != "ngbr0" ||
		got.Network.Holders[0] != "bus/:1.5" || got.path != r.path {
		t.Fatalf("record read back as %+v", got)
	}
	if _, err := os.Stat(filepath.Join(m.opts.StateDir, "network-x.json.tmp")); !os.IsNotExist(err) {
		t.Error("a half-written record was left in the state directory")
	}
}
