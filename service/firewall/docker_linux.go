package firewall

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/nftables"
)

// syncDockerUser keeps netgrant's accepts in DOCKER-USER, in each family
// where Docker made one in iptables' nf_tables flavour (IPv6 too, as
// Docker does with ip6tables on); without Docker it costs a netlink dump
// per family.
func syncDockerUser(nets []Network) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	for _, fam := range families {
		chains, err := conn.ListChainsOfTableFamily(nftTableRef(fam).Family)
		if err != nil {
			return fmt.Errorf("nftables: listing chains: %w", err)
		}
		found := false
		for _, c := range chains {
			found = found || c.Table.Name == "filter" && c.Name == dockerUserChain
		}
		if found {
			if err := syncDockerUserOf(fam, withFamily(fam, nets)); err != nil {
				return err
			}
		}
	}
	return nil
}

func syncDockerUserOf(fam family, nets []Network) error {
	command := iptablesCommands[fam]
	var stderr bytes.Buffer
	save := exec.Command(command+"-save", "-t", "filter")
	save.Stderr = &stderr
	out, err := save.Output()
	if err != nil {
		return fmt.Errorf("%s-save: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	script := dockerUserScript(parseSave(string(out))["filter"][dockerUserChain], nets)
	if script == "" {
		return nil
	}
	stderr.Reset()
	restore := exec.Command(command+"-restore", "--noflush", "--wait")
	restore.Stdin = strings.NewReader(script)
	restore.Stderr = &stderr
	if err := restore.Run(); err != nil {
		return fmt.Errorf("%s-restore: %w: %s", command, err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
