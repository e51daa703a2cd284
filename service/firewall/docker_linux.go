package firewall

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/nftables"
)

// syncDockerUser keeps netgrant's accepts in DOCKER-USER, where Docker
// made one in iptables' nf_tables flavour; without Docker it costs one
// netlink dump.
func syncDockerUser(nets []Network) error {
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	chains, err := conn.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("nftables: listing chains: %w", err)
	}
	found := false
	for _, c := range chains {
		found = found || c.Table.Name == "filter" && c.Name == dockerUserChain
	}
	if !found {
		return nil
	}
	var stderr bytes.Buffer
	save := exec.Command("iptables-save", "-t", "filter")
	save.Stderr = &stderr
	out, err := save.Output()
	if err != nil {
		return fmt.Errorf("iptables-save: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	script := dockerUserScript(parseSave(string(out))["filter"][dockerUserChain], nets)
	if script == "" {
		return nil
	}
	stderr.Reset()
	restore := exec.Command("iptables-restore", "--noflush", "--wait")
	restore.Stdin = strings.NewReader(script)
	restore.Stderr = &stderr
	if err := restore.Run(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
