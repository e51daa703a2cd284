package attack_test

import (
	"fmt"
	"testing"

	"github.com/godbus/dbus/v5"

	"github.com/netgrant/netgrant/test/harness"
)

// A user claimed 10.1.2.0/24, which the host reached through its default
// route, and from then on answered the host's own traffic to it; another
// claimed 10.97.0.0/16 and every other user's default network failed.
// Now every subnet lies inside a configured pool and is no larger than
// LargestPrefix.
func TestSubnetsStayInThePools(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice, bob := env.Client(t, harness.UserAlice), env.Client(t, harness.UserBob)
	for _, subnet := range []string{"10.1.2.0/24", "10.97.0.0/16", "10.97.0.0/21", "192.168.1.0/24", "172.16.0.0/24"} {
		_, _, err := alice.CreateNATNetwork("grab", map[string]dbus.Variant{"subnet": dbus.MakeVariant(subnet)})
		if harness.ErrorName(err) != "org.netgrant.NetGrant1.Error.InvalidArgument" {
			t.Errorf("alice claiming %s: %v, want InvalidArgument", subnet, err)
		}
	}
	if links := harness.Links(t, "ng-"); len(links) != 0 {
		t.Fatalf("refused claims left bridges: %v", links)
	}
	// The largest subnet allowed still leaves room for everyone else.
	mustCreateNetwork(t, alice, "big", map[string]dbus.Variant{"subnet": dbus.MakeVariant("10.97.0.0/22")})
	_, info, err := bob.CreateNATNetwork("mine", nil)
	if err != nil {
		t.Fatalf("bob's default network after alice's largest one: %v", err)
	}
	if got := info["subnet"].Value(); got != "10.97.4.0/24" {
		t.Errorf("bob's default subnet is %v, want 10.97.4.0/24 (the first free /24 of the pool)", got)
	}
}

// user-<uid> is that uid's default network (netgrant run creates or joins
// it): no one else may take the name first.
func TestDefaultNetworkNamesCannotBeSquatted(t *testing.T) {
	env := harness.Start(t, harness.Options{Rules: allowAliceAndBob})
	alice, bob := env.Client(t, harness.UserAlice), env.Client(t, harness.UserBob)
	aliceDefault := fmt.Sprintf("user-%d", alice.UID)
	for _, name := range []string{aliceDefault, "user-0" + fmt.Sprint(alice.UID)} {
		if _, _, err := bob.CreateNATNetwork(name, nil); harness.ErrorName(err) != "org.netgrant.NetGrant1.Error.NotOwner" {
			t.Errorf("bob creating %s: %v, want NotOwner", name, err)
		}
	}
	mustCreateNetwork(t, alice, aliceDefault, nil)
	mustCreateNetwork(t, bob, fmt.Sprintf("user-%d", bob.UID), nil)
}
