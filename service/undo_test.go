package service

import (
	"bytes"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
	if err := r.push(deleteBridgeStep("ngbr0")); err != nil {
		t.Fatal(err)
	}
	if err := r.push(removeDirStep("/x")); err != nil {
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
		got.Steps[0].Op != opDeleteBridge || got.Steps[0].Bridge != "ngbr0" ||
		got.Network.Holders[0] != "bus/:1.5" || got.path != r.path {
		t.Fatalf("record read back as %+v", got)
	}
	if _, err := os.Stat(filepath.Join(m.opts.StateDir, "network-x.json.tmp")); !os.IsNotExist(err) {
		t.Error("a half-written record was left in the state directory")
	}
}

// A record whose steps a restarted daemon could not carry out as written
// is reported and left alone, never half-understood.
func TestMalformedRecordsAreReported(t *testing.T) {
	for name, body := range map[string]string{
		"unknown op":        `{"kind":"tap","name":"ngtap0","steps":[{"op":"format-disk","dir":"/"}]}`,
		"missing payload":   `{"kind":"tap","name":"ngtap0","steps":[{"op":"delete-tap"}]}`,
		"not our tap":       `{"kind":"tap","name":"ngtap0","steps":[{"op":"delete-tap","tap":{"name":"eth0","index":2}}]}`,
		"not our bridge":    `{"kind":"network","name":"lab","steps":[{"op":"delete-bridge","bridge":"br0"}]}`,
		"relative dir":      `{"kind":"network","name":"lab","steps":[{"op":"remove-dir","dir":"etc"}]}`,
		"bad subnet":        `{"kind":"network","name":"lab","steps":[{"op":"remove-firewall","firewall":{"Bridge":"ngbr0","Subnet":"10.97.0.0/99","Gateway":"10.97.0.1"}}]}`,
		"up event in down":  `{"kind":"tap","name":"ngtap0","steps":[{"op":"run-down-hooks","hooks":{"event":"tap-up","env":{}}}]}`,
		"old map arguments": `{"kind":"network","name":"lab","steps":[{"op":"delete-bridge","args":{"name":"ngbr0"}}]}`,
		"unknown kind":      `{"kind":"disk","name":"x","steps":[]}`,
	} {
		dir := t.TempDir()
		path := filepath.Join(dir, "tap-x.json")
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		var logged bytes.Buffer
		m := New(Options{StateDir: dir, Log: slog.Default()})
		if got := m.loadRecords(slog.New(slog.NewTextHandler(&logged, nil))); len(got) != 0 {
			t.Errorf("%s: loaded %+v", name, got[0])
		}
		if !strings.Contains(logged.String(), "unreadable state") {
			t.Errorf("%s: not reported; log: %s", name, logged.String())
		}
		if _, err := os.Stat(path); err != nil {
			t.Errorf("%s: the record was not left alone: %v", name, err)
		}
	}
}
