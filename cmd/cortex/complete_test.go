package main

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/spf13/cobra"
)

// complete runs cobra's hidden __complete command, as the shell does, and
// returns the words offered and the directive.
func complete(t *testing.T, env map[string]string, args ...string) ([]string, string) {
	t.Helper()
	r := runEnv(t, env, "", append([]string{"__complete"}, args...)...)
	if r.code != 0 {
		t.Fatalf("cortex __complete %q: %v", args, r)
	}
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, ":") {
		t.Fatalf("cortex __complete %q: no directive: %q", args, r.stdout)
	}
	return lines[:len(lines)-1], last
}

// Directives as __complete prints them.
const (
	dirDefault = ":0"
	dirNoFile  = ":4"
)

func TestCompleteTables(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	for _, name := range []string{"fruit", "fries", "veg"} {
		d.ok(t, "table", "create", name)
	}
	env := map[string]string{"CORTEX_SOCKET": d.socket}
	for _, c := range []struct {
		args []string
		want []string
		dir  string
	}{
		{[]string{"get", "fr"}, []string{"fries", "fruit"}, dirNoFile},
		{[]string{"get", "v"}, []string{"veg"}, dirNoFile},
		{[]string{"get", "x"}, nil, dirNoFile},
		{[]string{"get", "fruit", ""}, nil, dirNoFile}, // the key: nothing offered
		{[]string{"put", "f"}, []string{"fries", "fruit"}, dirNoFile},
		{[]string{"scan", "fru"}, []string{"fruit"}, dirNoFile},
		{[]string{"table", "drop", "ve"}, []string{"veg"}, dirNoFile},
		{[]string{"table", "scope", "fruit", ""}, nil, dirNoFile},
		{[]string{"sync", "status", "f"}, []string{"fries", "fruit"}, dirNoFile},
		{[]string{"watch", "--prefix", "a", "f"}, []string{"fries", "fruit"}, dirNoFile},
		{[]string{"export", "cortex_ac"}, []string{"cortex_acls"}, dirNoFile},
		{[]string{"import", "f"}, []string{"fries", "fruit"}, dirNoFile},
		{[]string{"import", "fruit", ""}, nil, dirDefault}, // the file: the shell's own completion
		{[]string{"backup", "--out", "x.cxb", "fruit", "f"}, []string{"fries"}, dirNoFile},
		{[]string{"acl", "grant", "alice", "v"}, []string{"veg"}, dirNoFile},
		{[]string{"acl", "grant", "f"}, nil, dirNoFile}, // the identity
		{[]string{"--timeout", "1s", "del", "fri"}, []string{"fries"}, dirNoFile},
	} {
		got, dir := complete(t, env, c.args...)
		if !slices.Equal(got, c.want) || dir != c.dir {
			t.Errorf("complete %q: %q %s, want %q %s", c.args, got, dir, c.want, c.dir)
		}
	}

	// No node, a bad flag, a missing profile: no words, no error.
	dead := filepath.Join(shortDir(t), "none.sock")
	for _, args := range [][]string{
		{"--socket", dead, "get", "f"},
		{"--addr", "nohost", "get", "f"},
		{"--profile", "nosuch", "get", "f"},
	} {
		got, dir := complete(t, nil, args...)
		if len(got) != 0 || dir != dirNoFile {
			t.Errorf("complete %q: %q %s, want nothing", args, got, dir)
		}
	}
}

// Over --addr the names are those the identity may read.
func TestCompleteTablesRemote(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := startRemote(t)
	for _, name := range []string{"fruit", "fries"} {
		n.store.CreateTable(ctx, name, scope.Scope{Local: true})
	}
	n.store.AddIdentity(ctx, store.Identity{Name: "alice", Kind: "client"})
	n.store.GrantPerm(ctx, "alice", "fruit", store.PermRead)
	cfg := writeConfig(t, t.TempDir(), "[profiles.office]\naddr = \""+n.addr+"\"\ncerts_dir = \""+n.dir+"\"\nclient = \"alice\"\n")
	env := map[string]string{"CORTEX_CONFIG": cfg}
	if got, _ := complete(t, env, "--profile", "office", "get", "f"); !slices.Equal(got, []string{"fruit"}) {
		t.Errorf("over a profile: %q, want fruit only", got)
	}
	if got, _ := complete(t, nil, "--addr", n.addr, "--certs-dir", n.dir, "--client", "alice", "get", ""); !slices.Equal(got, []string{"fruit"}) {
		t.Errorf("over --certs-dir: %q, want fruit only", got)
	}
	// Two clients and no --client: no words.
	if got, dir := complete(t, nil, "--addr", n.addr, "--certs-dir", n.dir, "get", ""); len(got) != 0 || dir != dirNoFile {
		t.Errorf("without --client: %q %s", got, dir)
	}
	// --profile completes from the file.
	if got, _ := complete(t, env, "--profile", "o"); !slices.Equal(got, []string{"office"}) {
		t.Errorf("--profile: %q", got)
	}
	if got, _ := complete(t, nil, "--config", cfg, "--profile", ""); !slices.Equal(got, []string{"office"}) {
		t.Errorf("--config --profile: %q", got)
	}
}

// Every command whose first argument is a table completes it.
func TestEveryTableArgCompletes(t *testing.T) {
	t.Parallel()
	root := newRootCmd(newApp(nil, nil, nil, nil, false))
	seen := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		path := strings.TrimPrefix(c.CommandPath(), "cortex ")
		if _, ok := tableArgs[path]; ok {
			seen[path] = true
			if c.ValidArgsFunction == nil {
				t.Errorf("%s: no completion", path)
			}
		}
		words := strings.Fields(c.Use)
		first := ""
		if len(words) > 1 {
			first = words[1]
		}
		if strings.HasPrefix(first, "-") && len(words) > 3 { // backup --out FILE [TABLE...]
			first = words[3]
		}
		isTable := strings.Trim(first, "[].") == "TABLE" || (c.Parent() != nil && c.Parent().Name() == "table" && first == "NAME" && c.Name() != "create")
		if isTable && c.ValidArgsFunction == nil {
			t.Errorf("%s (%s) takes a table but does not complete it", path, c.Use)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for path := range tableArgs {
		if !seen[path] {
			t.Errorf("tableArgs names %q, which is no command", path)
		}
	}
}

func TestMatchTables(t *testing.T) {
	t.Parallel()
	list := []api.TableInfo{{Name: "veg"}, {Name: "fruit"}, {Name: "fries"}, {Name: "fruit"}, {Name: "cortex_acls"}}
	for _, c := range []struct {
		prefix  string
		exclude []string
		want    []string
	}{
		{"", nil, []string{"cortex_acls", "fries", "fruit", "veg"}},
		{"fr", nil, []string{"fries", "fruit"}}, // a name in conflict is offered once
		{"fr", []string{"fruit"}, []string{"fries"}},
		{"z", nil, nil},
	} {
		if got := matchTables(list, c.prefix, c.exclude); !slices.Equal(got, c.want) {
			t.Errorf("matchTables(%q, %q) = %q, want %q", c.prefix, c.exclude, got, c.want)
		}
	}
}
