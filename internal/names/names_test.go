package names

import "testing"

func TestPathLabelEncoding(t *testing.T) {
	for name, want := range map[string]string{
		"my-net": "my_2dnet", "lab": "lab", "a_b": "a_5fb", "ngtap0": "ngtap0", "x.y": "x_2ey",
	} {
		if got := EncodePathLabel(name); got != want {
			t.Errorf("EncodePathLabel(%q) = %q, want %q", name, got, want)
		}
		if back, ok := DecodePathLabel(want); !ok || back != name {
			t.Errorf("DecodePathLabel(%q) = %q, %v", want, back, ok)
		}
	}
	for _, bad := range []string{"a_2", "a_zz", "a_2D", "_2dx_"} {
		if _, ok := DecodePathLabel(bad); ok {
			t.Errorf("DecodePathLabel(%q) accepted a label EncodePathLabel cannot produce", bad)
		}
	}
}

// Bridge names are the API's: ng-<name> where it fits in 15 bytes, else
// ng-, the first 7 bytes, - and 4 hex digits of the name's SHA-256.
func TestBridgeName(t *testing.T) {
	for network, want := range map[string]string{
		"lab":                              "ng-lab",
		"user-1000":                        "ng-user-1000",
		"twelve-chars":                     "ng-twelve-chars",
		"thirteen-char":                    "ng-thirtee-3adc",
		"a-much-longer-name":               "ng-a-much--2a0d",
		"a-much-longer-nam2":               "ng-a-much--da85",
		"abcdefghijklmnopqrstuvwxyz012345": "ng-abcdefg-653b",
	} {
		if got := BridgeName(network); got != want {
			t.Errorf("BridgeName(%q) = %q, want %q", network, got, want)
		}
	}
}
