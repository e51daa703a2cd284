package dnsmasq

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// delegatedIDs reads the block of User's delegated ids and refuses one
// that would make a dnsmasq share an id with root or any account or
// group; the account itself is looked up in the system's passwd, where
// root exists everywhere.
func TestDelegatedIDs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	files := idFiles{
		passwd: write("passwd", "root:x:0:0::/root:/bin/sh\nalice:x:3000010:3000010::/:/bin/sh\n"),
		group:  write("group", "root:x:0:\nwheel:x:3000020:\n"),
		subuid: write("subuid", "alice:100000:65536\nroot:3000000:8\n"),
		subgid: write("subgid", "0:4000000:4\n"),
	}
	got, err := delegatedIDs("root", files)
	if err != nil {
		t.Fatal(err)
	}
	// The smaller of the two blocks bounds the identities; a subgid line
	// may name its owner by uid.
	if want := (IDRange{UID: 3000000, GID: 4000000, Count: 4}); got != want {
		t.Errorf("range %+v, want %+v", got, want)
	}
	if id := got.Identity(3); id != (Identity{UID: 3000003, GID: 4000003}) || !got.Has(id) || got.Has(got.Identity(4)) || got.Has(Identity{UID: 3000003, GID: 4000002}) {
		t.Errorf("identity 3 is %+v; Has disagrees with Identity", id)
	}

	for _, c := range []struct {
		what  string
		files idFiles
		want  string
	}{
		{"a uid block holding an account's uid", idFiles{files.passwd, files.group, write("subuid2", "root:3000008:10\n"), files.subgid}, "account alice"},
		{"a gid block holding a group's gid", idFiles{files.passwd, files.group, files.subuid, write("subgid2", "root:3000015:10\n")}, "group wheel"},
		{"a block at root's ids", idFiles{files.passwd, files.group, write("subuid3", "root:0:10\n"), files.subgid}, "root's"},
		{"no block", idFiles{files.passwd, files.group, write("subuid4", "alice:100000:65536\n"), files.subgid}, "usermod --add-subuids"},
		{"a malformed block", idFiles{files.passwd, files.group, write("subuid5", "root:x:10\n"), files.subgid}, "unreadable line"},
	} {
		if _, err := delegatedIDs("root", c.files); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.what, err, c.want)
		}
	}
	if _, err := delegatedIDs("no-such-user-really", files); err == nil || !strings.Contains(err.Error(), "is missing") {
		t.Errorf("a missing account: %v", err)
	}
}
