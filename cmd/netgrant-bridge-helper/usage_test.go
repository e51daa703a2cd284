package main

import (
	"os"
	"strings"
	"testing"
)

// The usage names the helper where it is installed, whatever libexec
// directory the build chose.
func TestUsageNamesTheHelpersOwnPath(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	u := usage()
	if !strings.Contains(u, "helper="+self+" ") || !strings.Contains(u, `bridge_helper = "`+self+`"`) || strings.Contains(u, "HELPER") {
		t.Errorf("usage does not name %s:\n%s", self, u)
	}
}
