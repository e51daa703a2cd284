package dnsmasq

import (
	"bufio"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
)

// A dnsmasq that a guest compromises must not reach any other network's:
// every network's dnsmasq runs under a uid and gid of its own, so none may
// signal, trace or stop another. Under systemd the unit's DynamicUser=
// gives each instance its own. As netgrantd's child, each runs under an
// identity from the block of ids delegated to the account User in
// /etc/subuid and /etc/subgid: that file is the system's registry of ids
// handed to an account (useradd, podman and lxc read it), so no other
// allocator gives them out, and no login or service account has them.

// User is the account whose delegated ids the networks' dnsmasqs run
// under when they are netgrantd's children (data/netgrant.sysusers
// creates it).
const User = "netgrant-dnsmasq"

// Identity is the uid and gid one network's dnsmasq runs under.
type Identity struct {
	UID int `json:"uid"`
	GID int `json:"gid"`
}

// IDRange is the block of ids delegated to User: its i-th identity is
// the i-th uid and the i-th gid.
type IDRange struct {
	UID, GID, Count int
}

// Identity returns the range's i-th identity; i must be below Count.
func (r IDRange) Identity(i int) Identity {
	return Identity{UID: r.UID + i, GID: r.GID + i}
}

// Has tells whether id is one of the range's identities.
func (r IDRange) Has(id Identity) bool {
	i := id.UID - r.UID
	return i >= 0 && i < r.Count && id.GID == r.GID+i
}

// maxIdentities bounds the block used, whatever its size: far more
// networks than any host runs.
const maxIdentities = 65536

// DelegatedIDs returns the ids delegated to User, refusing a block that
// holds an id an account or group of the system has.
func DelegatedIDs() (IDRange, error) {
	return delegatedIDs(User, idFiles{passwd: "/etc/passwd", group: "/etc/group", subuid: "/etc/subuid", subgid: "/etc/subgid"})
}

type idFiles struct{ passwd, group, subuid, subgid string }

func delegatedIDs(name string, files idFiles) (IDRange, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return IDRange{}, fmt.Errorf("the system user %s is missing: create it with systemd-sysusers (netgrant installs its sysusers.d file)", name)
	}
	hint := fmt.Sprintf("delegate ids to it, e.g. usermod --add-subuids 3000000-3000999 --add-subgids 3000000-3000999 %s", name)
	uids, err := delegated(files.subuid, name, u.Uid)
	if err != nil {
		return IDRange{}, fmt.Errorf("reading the uids delegated to %s: %w (%s)", name, err, hint)
	}
	gids, err := delegated(files.subgid, name, u.Uid)
	if err != nil {
		return IDRange{}, fmt.Errorf("reading the gids delegated to %s: %w (%s)", name, err, hint)
	}
	r := IDRange{UID: uids[0], GID: gids[0], Count: min(uids[1], gids[1], maxIdentities)}
	if r.UID == 0 || r.GID == 0 {
		return IDRange{}, fmt.Errorf("the ids delegated to %s start at 0, root's: refusing to run dnsmasq as root", name)
	}
	if taken, err := firstTaken(files.passwd, r.UID, r.Count); err != nil {
		return IDRange{}, err
	} else if taken != "" {
		return IDRange{}, fmt.Errorf("the uids delegated to %s include that of account %s: refusing to run dnsmasq under a shared uid", name, taken)
	}
	if taken, err := firstTaken(files.group, r.GID, r.Count); err != nil {
		return IDRange{}, err
	} else if taken != "" {
		return IDRange{}, fmt.Errorf("the gids delegated to %s include that of group %s: refusing to run dnsmasq under a shared gid", name, taken)
	}
	return r, nil
}

// delegated returns the first block ("name:start:count", the owner also
// by uid) of a subordinate id file: its start and count.
func delegated(path, name, uid string) ([2]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return [2]int{}, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(strings.TrimSpace(sc.Text()), ":")
		if len(fields) != 3 || fields[0] != name && fields[0] != uid {
			continue
		}
		start, err1 := strconv.ParseUint(fields[1], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 32)
		if err1 != nil || err2 != nil || count == 0 || start+count > 1<<32-1 {
			return [2]int{}, fmt.Errorf("%s: unreadable line %q", path, sc.Text())
		}
		return [2]int{int(start), int(count)}, nil
	}
	if err := sc.Err(); err != nil {
		return [2]int{}, err
	}
	return [2]int{}, fmt.Errorf("%s has no line for %s", path, name)
}

// firstTaken names the first entry of a passwd or group file whose id
// lies in [first, first+count).
func firstTaken(path string, first, count int) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) < 3 {
			continue
		}
		if id, err := strconv.Atoi(fields[2]); err == nil && id >= first && id < first+count {
			return fields[0], nil
		}
	}
	return "", sc.Err()
}
