package nstest

import (
	"net"
	"os"
	"testing"
)

func TestMain(m *testing.M) { Main(m) }

func TestSandboxHasOnlyLoopback(t *testing.T) {
	Require(t)
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" {
		t.Fatalf("sandbox shows links %v, want only lo", ifaces)
	}
	entries, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "lo" {
		t.Fatalf("/sys/class/net shows %d entries, want only lo", len(entries))
	}
}
