package dbus

import (
	"log/slog"
	"sort"
	"strings"
	"testing"

	godbus "github.com/godbus/dbus/v5"
	"github.com/godbus/dbus/v5/introspect"

	"github.com/netgrant/netgrant/internal/names"
	"github.com/netgrant/netgrant/service"
)

// The installed introspection XML is what clients generate code from: every
// method and property it lists must be what the daemon really answers, with
// the same types, and nothing more.
func TestIntrospectionMatchesExportedMethods(t *testing.T) {
	s := NewServer(slog.Default(), "test")
	exported := map[string]iface{
		names.ManagerInterface: s.managerMethods(),
		names.NetworkInterface: s.networkMethods(),
		names.TapInterface:     s.tapMethods(),
	}
	for name, methods := range exported {
		xmlIface, ok := ownInterfaces[name]
		if !ok {
			t.Errorf("interface %s is exported but missing from the XML", name)
			continue
		}
		declared := map[string]bool{}
		for _, m := range xmlIface.Methods {
			declared[m.Name] = true
			impl, ok := methods[m.Name]
			if !ok {
				t.Errorf("%s.%s is in the XML but not exported", name, m.Name)
				continue
			}
			in, out := argSignatures(m)
			if in != impl.in || out != impl.out {
				t.Errorf("%s.%s: XML says (%s)→(%s), exported (%s)→(%s)", name, m.Name, in, out, impl.in, impl.out)
			}
		}
		for m := range methods {
			if !declared[m] {
				t.Errorf("%s.%s is exported but missing from the XML", name, m)
			}
		}
	}
}

func TestIntrospectionMatchesProperties(t *testing.T) {
	exported := map[string]map[string]godbus.Variant{
		names.ManagerInterface: {"Version": godbus.MakeVariant("")},
		names.NetworkInterface: networkProps(service.NetworkInfo{Leases: []service.Lease{{}}}),
		names.TapInterface:     tapProps(service.TapInfo{}),
	}
	for name, props := range exported {
		declared := map[string]string{}
		for _, p := range ownInterfaces[name].Properties {
			declared[p.Name] = p.Type
			if p.Access != "read" {
				t.Errorf("%s.%s is %q; every netgrant property is read-only", name, p.Name, p.Access)
			}
		}
		var got, want []string
		for k, v := range props {
			got = append(got, k+" "+v.Signature().String())
		}
		for k, typ := range declared {
			want = append(want, k+" "+typ)
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s properties:\n exported %v\n XML      %v", name, got, want)
		}
	}
}

func argSignatures(m introspect.Method) (in, out string) {
	for _, a := range m.Args {
		if a.Direction == "out" {
			out += a.Type
		} else {
			in += a.Type
		}
	}
	return in, out
}

func TestOptionDecodingIsStrict(t *testing.T) {
	v := godbus.MakeVariant
	for _, tc := range []struct {
		opts    map[string]godbus.Variant
		wantKey string
	}{
		{map[string]godbus.Variant{"queue": v(uint32(2))}, `"queue"`},
		{map[string]godbus.Variant{"queues": v(int32(2))}, `"queues"`},
		{map[string]godbus.Variant{"vnet_hdr": v("yes")}, `"vnet_hdr"`},
		{map[string]godbus.Variant{"mtu": v(uint64(1500))}, `"mtu"`},
		{map[string]godbus.Variant{"mac": v([]byte{1, 2})}, `"mac"`},
	} {
		_, err := decodeTapRequest(tc.opts)
		if service.KindOf(err) != service.InvalidArgument || !strings.Contains(err.Error(), tc.wantKey) {
			t.Errorf("decodeTapRequest(%v) = %v, want InvalidArgument naming %s", tc.opts, err, tc.wantKey)
		}
	}
	req, err := decodeTapRequest(map[string]godbus.Variant{"queues": v(uint32(4)), "vnet_hdr": v(false)})
	if err != nil || req.Queues != 4 || req.VnetHdr {
		t.Errorf("decodeTapRequest(queues 4, vnet_hdr false) = %+v, %v", req, err)
	}
	if req, _ := decodeTapRequest(nil); req.Queues != 1 || !req.VnetHdr {
		t.Errorf("defaults: %+v, want 1 queue with vnet_hdr", req)
	}
	if _, err := decodeNetworkRequest("n", map[string]godbus.Variant{"subnet": v(uint32(1))}); service.KindOf(err) != service.InvalidArgument {
		t.Errorf("subnet given as u: %v, want InvalidArgument", err)
	}
	if err := attachOptions.check("AttachBridge", map[string]godbus.Variant{"x": v("")}); service.KindOf(err) != service.InvalidArgument {
		t.Errorf("AttachBridge with an option: %v, want InvalidArgument", err)
	}
	// subnet and subnet6 share a type: each goes where its key says.
	if req, err := decodeNetworkRequest("n", map[string]godbus.Variant{"subnet6": v("fd00::/64"), "ipv6": v(true)}); err != nil ||
		req.Subnet != nil || req.Subnet6 == nil || *req.Subnet6 != "fd00::/64" || req.IPv6 == nil || !*req.IPv6 {
		t.Errorf("decodeNetworkRequest(subnet6, ipv6) = %+v, %v", req, err)
	}
	forward := func(opts map[string]godbus.Variant) error {
		_, err := decodeForwardRequest("n", []any{"tcp", uint16(80), "10.97.0.5", uint16(80), opts})
		return err
	}
	for _, opts := range []map[string]godbus.Variant{{"addr": v("192.0.2.1")}, {"address": v(uint32(1))}} {
		if err := forward(opts); service.KindOf(err) != service.InvalidArgument {
			t.Errorf("AddPortForward options %v: %v, want InvalidArgument", opts, err)
		}
	}
	if err := forward(map[string]godbus.Variant{"address": v("192.0.2.1")}); err != nil {
		t.Errorf("AddPortForward with address: %v", err)
	}
}

func TestErrorNames(t *testing.T) {
	for kind, name := range map[service.Kind]string{
		service.InvalidArgument:                  "org.netgrant.NetGrant1.Error.InvalidArgument",
		service.QuotaExceeded:                    "org.netgrant.NetGrant1.Error.QuotaExceeded",
		service.AccessDenied:                     "org.freedesktop.DBus.Error.AccessDenied",
		service.InteractiveAuthorizationRequired: "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired",
	} {
		if got := toDBusError(service.Errorf(kind, "x")).Name; got != name {
			t.Errorf("kind %d maps to %s, want %s", kind, got, name)
		}
	}
	if got := toDBusError(errPlain{}).Name; got != "org.netgrant.NetGrant1.Error.Failed" {
		t.Errorf("an unclassified error maps to %s, want Failed", got)
	}
}

type errPlain struct{}

func (errPlain) Error() string { return "plain" }
