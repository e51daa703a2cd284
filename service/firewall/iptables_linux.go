package firewall

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

// iptablesCmd is the part of *iptables.IPTables in use; tests wrap it to
// make a chosen call fail.
type iptablesCmd interface {
	NewChain(table, chain string) error
	ClearChain(table, chain string) error
	ClearAndDeleteChain(table, chain string) error
	Append(table, chain string, rulespec ...string) error
	Insert(table, chain string, pos int, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
	DeleteById(table, chain string, id int) error
	Exists(table, chain string, rulespec ...string) (bool, error)
	List(table, chain string) ([]string, error)
	ListChains(table string) ([]string, error)
}

// IPTables is the Firewall on the iptables command. It is safe for
// concurrent use.
type IPTables struct {
	mu  sync.Mutex
	ipt iptablesCmd
}

var _ Firewall = (*IPTables)(nil)

// NewIPTables returns a Firewall that runs iptables.
func NewIPTables() (*IPTables, error) {
	ipt, err := iptables.New(iptables.IPFamily(iptables.ProtocolIPv4))
	if err != nil {
		return nil, fmt.Errorf("finding iptables: %w", err)
	}
	return &IPTables{ipt: ipt}, nil
}

func (t *IPTables) Add(n Network) error {
	if err := n.validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.install(n)
	if errors.Is(err, errChainExists) {
		// The chains were left over from an earlier network on this bridge
		// whose removal failed; the names are ours, so the chains were too,
		// and install's rollback has just removed them.
		err = t.install(n)
	}
	return err
}

var errChainExists = errors.New("chain exists")

// install adds the rules of n; on failure it removes what it added.
func (t *IPTables) install(n Network) (err error) {
	defer func() {
		if err != nil {
			if rerr := t.remove(n); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rolling back: %w", rerr))
			}
		}
	}()
	if err := t.ensureTop(); err != nil {
		return err
	}
	// Chains are filled before anything jumps to them, so no packet ever
	// meets a half-built chain.
	for _, c := range networkChains(n) {
		if err := t.ipt.NewChain(c.table, c.name); err != nil {
			if isChainExists(err) {
				return fmt.Errorf("creating chain %s: %w", c.name, errChainExists)
			}
			return fmt.Errorf("creating chain %s: %w", c.name, err)
		}
		if err := t.appendRules(c); err != nil {
			return err
		}
	}
	for _, j := range networkJumps(n) {
		if err := t.addJump(j); err != nil {
			return err
		}
	}
	return nil
}

func (t *IPTables) Remove(n Network) error {
	if err := n.validate(); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remove(n)
}

func (t *IPTables) remove(n Network) error {
	var errs []error
	for _, j := range networkJumps(n) {
		if err := t.ipt.Delete(j.table, j.chain, j.spec...); err != nil && !isNotExist(err) {
			errs = append(errs, fmt.Errorf("deleting jump to %s: %w", j.spec[len(j.spec)-1], err))
		}
	}
	for _, c := range networkChains(n) {
		if err := t.ipt.ClearAndDeleteChain(c.table, c.name); err != nil {
			errs = append(errs, fmt.Errorf("deleting chain %s: %w", c.name, err))
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	left, err := t.ourChains()
	if err != nil {
		return err
	}
	if len(left) == 0 {
		return t.removeTop()
	}
	return nil
}

func (t *IPTables) Sync(nets []Network) error {
	if err := validateAll(nets); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(nets) == 0 {
		if err := t.removeTop(); err != nil {
			return err
		}
		return t.removeStale(nil)
	}
	if err := t.ensureTop(); err != nil {
		return err
	}
	want := make(map[chainKey]bool)
	jumps := make(map[string][]jump)
	for _, n := range nets {
		for _, c := range networkChains(n) {
			if err := t.syncChain(c); err != nil {
				return err
			}
			want[chainKey{c.table, c.name}] = true
		}
		for _, j := range networkJumps(n) {
			jumps[j.chain] = append(jumps[j.chain], j)
		}
	}
	// Stale jumps go before stale chains: a chain cannot be deleted while
	// something jumps to it.
	for _, top := range topChains {
		if err := t.syncJumps(top, jumps[top.name]); err != nil {
			return err
		}
	}
	return t.removeStale(want)
}

type chainKey struct{ table, name string }

// ensureTop creates the top-level chains and the jumps to them where
// missing. The jumps go first in the built-in chains so that other tools'
// rules and policies (Docker's FORWARD DROP) do not decide for our guests.
func (t *IPTables) ensureTop() error {
	for _, top := range topChains {
		if err := t.ipt.NewChain(top.table, top.name); err != nil && !isChainExists(err) {
			return fmt.Errorf("creating chain %s: %w", top.name, err)
		}
		ok, err := t.ipt.Exists(top.table, top.builtin, "-j", top.name)
		if err != nil {
			return fmt.Errorf("checking jump to %s: %w", top.name, err)
		}
		if !ok {
			if err := t.ipt.Insert(top.table, top.builtin, 1, "-j", top.name); err != nil {
				return fmt.Errorf("adding jump to %s: %w", top.name, err)
			}
		}
	}
	return nil
}

func (t *IPTables) removeTop() error {
	var errs []error
	for _, top := range topChains {
		if err := t.ipt.Delete(top.table, top.builtin, "-j", top.name); err != nil && !isNotExist(err) {
			errs = append(errs, fmt.Errorf("deleting jump to %s: %w", top.name, err))
			continue
		}
		if err := t.ipt.ClearAndDeleteChain(top.table, top.name); err != nil {
			errs = append(errs, fmt.Errorf("deleting chain %s: %w", top.name, err))
		}
	}
	return errors.Join(errs...)
}

func (t *IPTables) appendRules(c chain) error {
	for _, r := range c.rules {
		if err := t.ipt.Append(c.table, c.name, r...); err != nil {
			return fmt.Errorf("adding rule to %s: %w", c.name, err)
		}
	}
	return nil
}

func (t *IPTables) addJump(j jump) error {
	var err error
	if j.first {
		err = t.ipt.Insert(j.table, j.chain, 1, j.spec...)
	} else {
		err = t.ipt.Append(j.table, j.chain, j.spec...)
	}
	if err != nil {
		return fmt.Errorf("adding jump to %s: %w", j.spec[len(j.spec)-1], err)
	}
	return nil
}

// syncChain leaves c alone when its rules are right, so their counters
// and the protection they give never lapse; otherwise it rewrites c.
func (t *IPTables) syncChain(c chain) error {
	// A failing list is no reason to give up: iptables-nft 1.8.9 reports a
	// missing chain as "incompatible", and rewriting mends both.
	have, err := t.ipt.List(c.table, c.name)
	want := append([]string{"-N " + c.name}, ruleLines(c.name, c.rules)...)
	if err == nil && slices.Equal(have, want) {
		return nil
	}
	if err := t.ipt.ClearChain(c.table, c.name); err != nil {
		return fmt.Errorf("flushing chain %s: %w", c.name, err)
	}
	return t.appendRules(c)
}

// syncJumps makes top hold exactly jumps: it deletes the others and adds
// the missing ones, keeping those in place that are already right.
func (t *IPTables) syncJumps(top topChain, jumps []jump) error {
	have, err := t.ipt.List(top.table, top.name)
	if err != nil {
		return fmt.Errorf("listing chain %s: %w", top.name, err)
	}
	wanted := make(map[string]jump)
	for _, j := range jumps {
		wanted[ruleLine(top.name, j.spec)] = j
	}
	var stale []int // rule numbers, counted from 1
	kept := make(map[string]bool)
	orderBroken, seenLater := false, false
	have = slices.DeleteFunc(have, func(line string) bool { return strings.HasPrefix(line, "-N ") })
	for i, line := range have {
		j, ok := wanted[line]
		if !ok || kept[line] {
			stale = append(stale, i+1)
			continue
		}
		kept[line] = true
		if j.first && seenLater {
			orderBroken = true
		}
		seenLater = seenLater || !j.first
	}
	if orderBroken {
		// Not something netgrant writes; start the chain afresh.
		if err := t.ipt.ClearChain(top.table, top.name); err != nil {
			return fmt.Errorf("flushing chain %s: %w", top.name, err)
		}
		clear(kept)
		stale = nil
	}
	// From the end, so the numbers of the rules still to delete hold.
	for i := len(stale) - 1; i >= 0; i-- {
		if err := t.ipt.DeleteById(top.table, top.name, stale[i]); err != nil {
			return fmt.Errorf("deleting rule %d of %s: %w", stale[i], top.name, err)
		}
	}
	for _, j := range jumps {
		if !kept[ruleLine(top.name, j.spec)] {
			if err := t.addJump(j); err != nil {
				return err
			}
		}
	}
	return nil
}

// removeStale deletes the per-network chains of ours not in keep.
func (t *IPTables) removeStale(keep map[chainKey]bool) error {
	chains, err := t.ourChains()
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range chains {
		if keep[c] {
			continue
		}
		if err := t.ipt.ClearAndDeleteChain(c.table, c.name); err != nil {
			errs = append(errs, fmt.Errorf("deleting chain %s: %w", c.name, err))
		}
	}
	return errors.Join(errs...)
}

// ourChains lists the per-network chains of ours in the kernel.
func (t *IPTables) ourChains() ([]chainKey, error) {
	var ours []chainKey
	for _, table := range []string{tableFilter, tableNAT} {
		chains, err := t.ipt.ListChains(table)
		if err != nil {
			return nil, fmt.Errorf("listing %s chains: %w", table, err)
		}
		for _, name := range chains {
			if isNetworkChain(table, name) {
				ours = append(ours, chainKey{table, name})
			}
		}
	}
	return ours, nil
}

func ruleLine(chain string, spec []string) string {
	return "-A " + chain + " " + strings.Join(spec, " ")
}

func ruleLines(chain string, rules [][]string) []string {
	lines := make([]string, len(rules))
	for i, r := range rules {
		lines[i] = ruleLine(chain, r)
	}
	return lines
}

func isNotExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}

// isChainExists tells -N's "Chain already exists" (status 1) apart from
// real failures.
func isChainExists(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.ExitStatus() == 1
}
