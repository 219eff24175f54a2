package api

import (
	"testing"

	"github.com/cortex-mesh/cortex/store"
)

func TestDeniedMessageQuotesTheWildcard(t *testing.T) {
	cases := []struct {
		identity, table string
		perm            store.Perm
		want            string
	}{
		{"alice", "users", store.PermRead, "alice may not read table users (ask an admin: cortex acl grant alice users read)"},
		{"alice", "*", store.PermAdmin, "alice may not admin every table ('*') (ask an admin: cortex acl grant alice '*' admin)"},
		{"ops", "*", store.PermWrite, "ops may not write every table ('*') (ask an admin: cortex acl grant ops '*' write)"},
	}
	for _, c := range cases {
		if got := deniedMessage(c.identity, c.table, c.perm); got != c.want {
			t.Errorf("deniedMessage(%q, %q, %s) = %q, want %q", c.identity, c.table, c.perm, got, c.want)
		}
	}
}
