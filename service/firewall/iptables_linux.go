package firewall

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// IPTables is the Firewall on iptables: each Apply reads the ruleset with
// one iptables-save and changes it with one iptables-restore --noflush
// (atomic per table on iptables' nf_tables flavour), rather than one
// iptables exec per rule, each of which re-reads the whole ruleset.
type IPTables struct {
	mu            sync.Mutex
	save, restore string
	guests        guestFilter
}

var _ Firewall = (*IPTables)(nil)

// NewIPTables returns a Firewall that runs iptables-save and
// iptables-restore, and keeps the guests' filters in nftables' bridge
// family, as ebtables-nft would.
func NewIPTables() (*IPTables, error) {
	save, err := exec.LookPath("iptables-save")
	if err != nil {
		return nil, fmt.Errorf("finding iptables-save: %w", err)
	}
	restore, err := exec.LookPath("iptables-restore")
	if err != nil {
		return nil, fmt.Errorf("finding iptables-restore: %w", err)
	}
	return &IPTables{save: save, restore: restore}, nil
}

func (t *IPTables) Backend() string { return "iptables" }

func (t *IPTables) Apply(nets []Network) error {
	if err := validateAll(nets); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.applyChains(nets); err != nil {
		return err
	}
	return t.guests.update(nets)
}

// applyChains makes netgrant's iptables chains those of nets.
func (t *IPTables) applyChains(nets []Network) error {
	var stderr bytes.Buffer
	save := exec.Command(t.save)
	save.Stderr = &stderr
	out, err := save.Output()
	if err != nil {
		return fmt.Errorf("iptables-save: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	script := restoreScript(parseSave(string(out)), wantedChains(nets))
	if script == "" {
		return nil
	}
	stderr.Reset()
	restore := exec.Command(t.restore, "--noflush", "--wait")
	restore.Stdin = strings.NewReader(script)
	restore.Stderr = &stderr
	if err := restore.Run(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Restore is Apply that also rebuilds the guests' table; the chains are
// read as they are by every Apply.
func (t *IPTables) Restore(nets []Network) error {
	t.guests.forget()
	return t.Apply(nets)
}

// removeOwn removes netgrant's iptables chains.
func (t *IPTables) removeOwn() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.applyChains(nil)
}

func (t *IPTables) UpdateGuests(nets []Network) error {
	if err := validateAll(nets); err != nil {
		return err
	}
	return t.guests.update(nets)
}
