package dnsmasq

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// User is the system account every network's dnsmasq runs as once it has
// bound its sockets (data/netgrant.sysusers creates it).
const User = "netgrant-dnsmasq"

// Account is what dnsmasq drops to.
type Account struct {
	User, Group string
	UID         int
}

// DedicatedAccount returns User's account, refusing one that is shared:
// with root, with nobody, or with any other account of the same uid. A
// dnsmasq running as nobody can be signalled by every other service that
// runs as nobody, and could signal them.
func DedicatedAccount() (Account, error) {
	return accountFrom(User, "/etc/passwd")
}

func accountFrom(name, passwd string) (Account, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return Account{}, fmt.Errorf("the system user %s is missing: create it with systemd-sysusers (netgrant installs its sysusers.d file)", name)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if uid == 0 || gid == 0 {
		return Account{}, fmt.Errorf("the system user %s has root's uid or gid: refusing to run dnsmasq as it", name)
	}
	if shared, err := uidTakenByOthers(passwd, name, u.Uid); err != nil {
		return Account{}, err
	} else if shared != "" {
		return Account{}, fmt.Errorf("the system user %s shares its uid %d with %s: refusing to run dnsmasq as a shared account", name, uid, shared)
	}
	g, err := user.LookupGroupId(u.Gid)
	if err != nil {
		return Account{}, fmt.Errorf("the group of system user %s (gid %s) is missing", name, u.Gid)
	}
	if nobody, err := user.LookupGroup("nogroup"); err == nil && nobody.Gid == u.Gid {
		return Account{}, fmt.Errorf("the system user %s has nogroup as its group: refusing to run dnsmasq as a shared account", name)
	}
	return Account{User: name, Group: g.Name, UID: uid}, nil
}

// uidTakenByOthers names another entry of passwd with uid, if any.
func uidTakenByOthers(passwd, name, uid string) (string, error) {
	f, err := os.Open(passwd)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) > 2 && fields[0] != name && fields[2] == uid {
			return fields[0], nil
		}
	}
	return "", sc.Err()
}
