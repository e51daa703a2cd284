package main

import "testing"

func TestGuestMACFromQEMUsCommandLine(t *testing.T) {
	for _, tc := range []struct {
		comm string
		args []string
		want string
	}{
		{"qemu-system-x86", []string{"-netdev", "bridge,id=n0,br=ngbr0", "-device", "virtio-net-pci,netdev=n0"}, qemuDefaultMAC},
		{"qemu-system-x86", []string{"-device", "virtio-net-pci,netdev=n0,mac=52:54:00:AA:bb:01"}, "52:54:00:aa:bb:01"},
		{"qemu-system-x86", []string{"-nic", "bridge,br=ngbr0,mac=52:54:00:00:00:07,model=virtio"}, "52:54:00:00:00:07"},
		{"qemu-system-x86", []string{"-net", "nic,macaddr=52:54:00:00:00:08", "-net", "bridge,br=ngbr0"}, "52:54:00:00:00:08"},
		{"qemu-system-x86", []string{"-device", `{"driver":"virtio-net-pci","netdev":"n0","mac":"52:54:00:00:00:09"}`}, "52:54:00:00:00:09"},
		{"qemu-system-x86", []string{"-device", "e1000,mac=52:54:00:00:00:01", "-device", "e1000,mac=52:54:00:00:00:02"}, ""},
		{"virtqemud", []string{"--timeout", "120"}, ""},
	} {
		if got := guestMAC(tc.comm, tc.args); got != tc.want {
			t.Errorf("guestMAC(%s %q) = %q, want %q", tc.comm, tc.args, got, tc.want)
		}
	}
}
