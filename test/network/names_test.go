package network_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netgrant/netgrant/test/harness"
)

// lookupAt asks the DNS server at server for name's addresses of network
// ("ip4" or "ip6"), as a host whose resolver sends the domain there does.
func lookupAt(server, name, network string) ([]netip.Addr, error) {
	r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", net.JoinHostPort(server, "53"))
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs, err := r.LookupNetIP(ctx, network, name)
	for i, a := range addrs {
		addrs[i] = a.Unmap()
	}
	return addrs, err
}

func isNotFound(err error) bool {
	var dnsErr *net.DNSError
	return errors.As(err, &dnsErr) && dnsErr.IsNotFound
}

// A guest is <hostname>.<network>.netgrant.internal at its gateway, over
// both families, with the address of its lease and the SLAAC address it
// uses; another guest asking for the same name does not get it; names of
// the domain that no guest has are not asked upstream, nor are other
// networks' names.
func TestGuestsByName(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: rules})
	addUpstreamWithDNS(t)
	alice := env.Client(t, harness.UserAlice)
	// DNS ignores case: network Lab's domain is lab.netgrant.internal.
	netPath, info := mustCreateNetwork(t, alice, "Lab", nil)
	bridge, gateway, gateway6 := info["bridge"].Value().(string), info["gateway"].Value().(string), info["gateway6"].Value().(string)
	const domain = "lab.netgrant.internal"
	if got := info["domain"].Value(); got != domain {
		t.Errorf("info domain %q, want %q", got, domain)
	}
	if got := env.Property(netPath, networkIface, "Domain"); got != domain {
		t.Errorf("property Domain %q, want %q", got, domain)
	}

	alpha := harness.AddNetnsGuest(t, "nsalpha", bridge)
	alpha.Hostname = "alpha"
	alpha.Lease(t)
	alpha4, alpha6 := netip.MustParseAddr(alpha.IPv4(t)), netip.MustParseAddr(alpha.SLAAC(t))
	// The guest uses its address: the host's neighbour table learns it.
	if out, err := alpha.In("busybox", "ping", "-c", "1", "-W", "3", gateway6); err != nil {
		t.Fatalf("guest pinging %s: %v: %s", gateway6, err, out)
	}
	answers := func(server, name string, want4, want6 netip.Addr) bool {
		got4, err4 := lookupAt(server, name, "ip4")
		got6, err6 := lookupAt(server, name, "ip6")
		return err4 == nil && err6 == nil && slices.Equal(got4, []netip.Addr{want4}) && slices.Equal(got6, []netip.Addr{want6})
	}
	for _, server := range []string{gateway, gateway6} {
		harness.WaitFor(t, "alpha."+domain+" at "+server+" to be "+alpha4.String()+" and "+alpha6.String(), func() bool {
			return answers(server, "alpha."+domain+".", alpha4, alpha6)
		})
	}

	// A second guest asks for the name, in another case: the first keeps it.
	impostor := harness.AddNetnsGuest(t, "nsimpost", bridge)
	impostor.Hostname = "ALPHA"
	impostor.Lease(t)
	impostor4 := impostor.IPv4(t)
	harness.WaitFor(t, "the impostor's lease in Network.Leases", func() bool {
		for _, l := range env.Property(netPath, networkIface, "Leases").([][]any) {
			if l[1] == impostor4 {
				return true
			}
		}
		return false
	})
	for _, l := range env.Property(netPath, networkIface, "Leases").([][]any) {
		want := map[string]string{alpha4.String(): "alpha", impostor4: ""}[l[1].(string)]
		if l[2] != want {
			t.Errorf("lease %v: hostname %q, want %q", l, l[2], want)
		}
	}
	if !answers(gateway, "alpha."+domain+".", alpha4, alpha6) {
		got, err := lookupAt(gateway, "alpha."+domain+".", "ip4")
		t.Errorf("after a second guest asked for alpha, alpha.%s is %v (%v), want the first guest's %s", domain, got, err, alpha4)
	}
	if got, err := lookupAt(gateway, "alpha.", "ip4"); err != nil || !slices.Equal(got, []netip.Addr{alpha4}) {
		t.Errorf("guests' bare name alpha is %v (%v), want the first guest's %s", got, err, alpha4)
	}

	// The domain is answered here or nowhere: neither a name no guest
	// has nor another network's name is asked upstream, which answers
	// anything below netgrant.internal.
	for _, name := range []string{"nobody." + domain + ".", "alpha.other.netgrant.internal."} {
		if got, err := lookupAt(gateway, name, "ip4"); !isNotFound(err) {
			t.Errorf("%s: %v, %v; want no such name, not asked upstream", name, got, err)
		}
	}
	if got, err := lookupAt(gateway, "upstream.test.", "ip4"); err != nil || !slices.Equal(got, []netip.Addr{netip.MustParseAddr("198.51.100.2")}) {
		t.Errorf("upstream.test through the gateway: %v, %v", got, err)
	}

	// Another user's network "lab" would share the domain: refused.
	bob := env.Client(t, harness.UserBob)
	if _, _, err := bob.CreateNATNetwork("lab", nil); harness.ErrorName(err) != errPrefix+"Exists" {
		t.Errorf("bob creating lab beside alice's Lab: %v, want Exists", err)
	}
}
