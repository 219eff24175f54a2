package main

import (
	"strings"
	"testing"
)

func TestCheckName(t *testing.T) {
	fp := "sha256:" + strings.Repeat("ab", 32)
	cases := []struct {
		kind nameKind
		s    string
		want string // "" for ok
	}{
		{tableArg, "users", ""},
		{tableArg, "cortex_acls", ""},
		{tableArg, "Users", `invalid: table name "Users" must match [a-z][a-z0-9_]{0,62}`},
		{newTableArg, "cortex_x", `invalid: table name "cortex_x": the prefix "cortex_" is reserved for system tables`},
		{tableOrAll, "*", ""},
		{tableOrAll, "**", `invalid: table name "**" must match [a-z][a-z0-9_]{0,62}`},
		{identityArg, "alice", ""},
		{identityArg, "Alice", `invalid: identity name "Alice" must match [a-z0-9][a-z0-9_-]{0,62}`},
		{identityArg, "", `invalid: identity name "" must be 1 to 63 characters`},
		{nodeArg, "home-1", ""},
		{nodeArg, "Home", `invalid: node name "Home" must match [a-z0-9][a-z0-9_-]{0,62}`},
		{revokeTarget, "home", ""},
		{revokeTarget, fp, ""},
		{revokeTarget, strings.ToUpper(fp), `invalid: "` + strings.ToUpper(fp) + `" is neither a node name nor a certificate fingerprint (sha256:<64 hex digits>)`},
		{revokeTarget, fp[:20], `is neither a node name nor a certificate fingerprint`},
		{anyArg, "Anything at all", ""},
	}
	for _, c := range cases {
		err := checkName(c.kind, c.s)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("checkName(%d, %q) = %v, want ok", c.kind, c.s, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("checkName(%d, %q) = %v, want %q", c.kind, c.s, err, c.want)
		}
	}
}

// A malformed name is a usage error (exit 2) in every command that takes
// one, worded as the check words it, and nothing is sent or changed.
func TestMalformedNamesAreUsageErrors(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	d.ok(t, "put", "t", "k", "v")
	d.ok(t, "identity", "add", "alice")
	d.ok(t, "acl", "grant", "alice", "t", "read")
	dir := t.TempDir()
	const (
		badTable    = `invalid: table name "T" must match [a-z][a-z0-9_]{0,62}`
		badIdentity = `invalid: identity name "Alice" must match [a-z0-9][a-z0-9_-]{0,62}`
		badNode     = `invalid: node name "Home" must match [a-z0-9][a-z0-9_-]{0,62}`
	)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"table", "create", "T"}, badTable},
		{[]string{"table", "drop", "T", "--yes"}, badTable},
		{[]string{"table", "scope", "T", "all"}, badTable},
		{[]string{"table", "set", "T", "--tombstone-grace", "1h"}, badTable},
		{[]string{"get", "T", "k"}, badTable},
		{[]string{"put", "T", "k", "v"}, badTable},
		{[]string{"del", "T", "k"}, badTable},
		{[]string{"scan", "T"}, badTable},
		{[]string{"watch", "T"}, badTable},
		{[]string{"sync", "status", "T"}, badTable},
		{[]string{"sync", "repair", "T"}, badTable},
		{[]string{"export", "T"}, badTable},
		{[]string{"import", "T", "-"}, badTable},
		{[]string{"identity", "add", "Alice"}, badIdentity},
		{[]string{"identity", "remove", "Alice"}, badIdentity},
		{[]string{"acl", "grant", "Alice", "t", "read"}, badIdentity},
		{[]string{"acl", "grant", "alice", "T", "read"}, badTable},
		{[]string{"acl", "revoke", "Alice", "t"}, badIdentity},
		{[]string{"acl", "revoke", "alice", "T"}, badTable},
		{[]string{"node", "revoke", "Home", "--yes"}, `invalid: "Home" is neither a node name nor a certificate fingerprint`},
		{[]string{"table", "create", "u", "--scope", "Home"}, badNode},
		{[]string{"cert", "create-node", "Home", "--dir", dir}, badNode},
		{[]string{"cert", "create-client", "Alice", "--dir", dir}, badIdentity},
	} {
		fails(t, d.run(t, "", c.args...), 2, c.want)
	}
	// Nothing changed: the table, its key, the identity and its grant.
	if got := d.ok(t, "get", "t", "k"); got != "v" {
		t.Errorf("get t k after the refused commands: %q", got)
	}
	if got := d.ok(t, "acl", "list"); !strings.Contains(got, "alice") || !strings.Contains(got, "read") {
		t.Errorf("acl list after the refused commands:\n%s", got)
	}
	if got := d.ok(t, "table", "list", "--json"); strings.Contains(got, `"name":"u"`) {
		t.Errorf("a refused create made a table:\n%s", got)
	}
}
