package firewall

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// IPTables is the Firewall on iptables: each Apply reads the ruleset of
// each family with one iptables-save (ip6tables-save) and changes it with
// one iptables-restore --noflush (atomic per table on iptables' nf_tables
// flavour), rather than one iptables exec per rule, each of which re-reads
// the whole ruleset.
type IPTables struct {
	mu    sync.Mutex
	tools [len(families)]iptablesTools
	// clean says a family's iptables held nothing of netgrant's after the
	// last change, so while no network needs it there is nothing to read.
	clean  [len(families)]bool
	guests guestFilter
}

// iptablesTools are one family's iptables-save and iptables-restore; empty
// where the host lacks them.
type iptablesTools struct{ save, restore string }

var _ Firewall = (*IPTables)(nil)

// NewIPTables returns a Firewall that runs iptables-save and
// iptables-restore (and their ip6tables twins for networks with IPv6),
// and keeps the guests' filters in nftables' bridge family, as
// ebtables-nft would.
func NewIPTables() (*IPTables, error) {
	t := &IPTables{}
	for _, fam := range families {
		prefix := iptablesCommands[fam]
		save, saveErr := exec.LookPath(prefix + "-save")
		restore, restoreErr := exec.LookPath(prefix + "-restore")
		if err := errors.Join(saveErr, restoreErr); err != nil {
			if fam == ipv4 {
				return nil, fmt.Errorf("finding iptables: %w", err)
			}
			continue
		}
		t.tools[fam] = iptablesTools{save, restore}
	}
	return t, nil
}

var iptablesCommands = [...]string{ipv4: "iptables", ipv6: "ip6tables"}

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

// applyChains makes netgrant's chains in each family's iptables those of
// nets. The families' tables are apart, so both change at once: a network
// waits for the slower of the two, not for both in turn.
func (t *IPTables) applyChains(nets []Network) error {
	var errs [len(families)]error
	var wg sync.WaitGroup
	for _, fam := range families {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[fam] = t.applyFamily(fam, nets)
		}()
	}
	wg.Wait()
	return errors.Join(errs[:]...)
}

func (t *IPTables) applyFamily(fam family, nets []Network) error {
	needed := len(withFamily(fam, nets)) > 0
	if !needed && t.clean[fam] {
		return nil
	}
	tools, command := t.tools[fam], iptablesCommands[fam]
	if tools.save == "" {
		if needed {
			return fmt.Errorf("%s-save and %s-restore are not installed: install the iptables package", command, command)
		}
		return nil
	}
	var stderr bytes.Buffer
	save := exec.Command(tools.save)
	save.Stderr = &stderr
	out, err := save.Output()
	if err != nil {
		if !needed {
			return nil // a kernel without IPv6 holds nothing to remove
		}
		return fmt.Errorf("%s-save: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	script := restoreScript(parseSave(string(out)), wantedChains(fam, nets))
	if script != "" {
		stderr.Reset()
		restore := exec.Command(tools.restore, "--noflush", "--wait")
		restore.Stdin = strings.NewReader(script)
		restore.Stderr = &stderr
		if err := restore.Run(); err != nil {
			t.clean[fam] = false
			return fmt.Errorf("%s-restore: %w: %s", command, err, strings.TrimSpace(stderr.String()))
		}
	}
	t.clean[fam] = !needed
	return nil
}

// Restore is Apply that also rebuilds the guests' table and reads every
// family's rules again.
func (t *IPTables) Restore(nets []Network) error {
	t.guests.forget()
	t.mu.Lock()
	t.clean = [len(families)]bool{}
	t.mu.Unlock()
	return t.Apply(nets)
}

// removeOwn removes netgrant's iptables chains.
func (t *IPTables) removeOwn() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clean = [len(families)]bool{}
	return t.applyChains(nil)
}

func (t *IPTables) UpdateGuests(nets []Network) error {
	if err := validateAll(nets); err != nil {
		return err
	}
	return t.guests.update(nets)
}
