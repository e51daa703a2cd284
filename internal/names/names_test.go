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
