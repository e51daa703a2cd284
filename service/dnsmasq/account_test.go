package dnsmasq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// accountFrom refuses accounts dnsmasq must not run as; the lookups use
// the system's passwd (root and nobody exist everywhere), the duplicate
// check the file given.
func TestAccountRefusesSharedAccounts(t *testing.T) {
	passwd := filepath.Join(t.TempDir(), "passwd")
	if err := os.WriteFile(passwd, []byte("root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\nimpostor:x:65534:65534::/:/bin/false\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{
		"root":                "root's uid",
		"nobody":              "shares its uid 65534 with impostor",
		"no-such-user-really": "is missing",
	} {
		if _, err := accountFrom(name, passwd); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("account %s: %v, want an error saying %q", name, err, want)
		}
	}
}
