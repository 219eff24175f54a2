package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/tables"
)

// Every standalone command through the real cortex and cortexd binaries:
// outputs, JSON shapes and exit codes of ../shared/CLI.md.
func TestCLITour(t *testing.T) {
	n := newNode(t, "home")
	n.start()

	n.must("table", "create", "fruit", "--scope", "all")
	n.must("table", "create", "notes") // default scope: local
	n.must("table", "create", "shared", "--scope", "home,office", "--allow-unknown")
	n.must("put", "fruit", "apple", "red")
	if r := n.cliIn("yellow", "put", "fruit", "banana", "-"); r.code != 0 {
		t.Fatalf("put from stdin: %+v", r)
	}
	if got := n.must("get", "fruit", "banana"); got != "yellow" {
		t.Fatalf("get: %q", got)
	}
	var rec struct {
		Table, Key, Value, Origin string
		HLC                       uint64 `json:"hlc,string"` // a decimal string: jq would round a number
		HLCTime                   string `json:"hlc_time"`
	}
	if err := json.Unmarshal([]byte(n.must("get", "fruit", "apple", "--json")), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Table != "fruit" || rec.Key != "apple" || rec.Value != "red" || rec.Origin != "home" || rec.HLC == 0 ||
		rec.HLCTime != tables.Timestamp(rec.HLC).Time() {
		t.Fatalf("get --json: %+v", rec)
	}
	if got := n.must("scan", "fruit"); got != "apple\tred\nbanana\tyellow\n" {
		t.Fatalf("scan: %q", got)
	}
	if got := n.must("scan", "fruit", "--prefix", "b", "--limit", "1"); got != "banana\tyellow\n" {
		t.Fatalf("scan --prefix: %q", got)
	}
	n.must("del", "fruit", "banana")

	var list []struct {
		Name  string          `json:"name"`
		Scope json.RawMessage `json:"scope"`
		Home  string          `json:"home"`
		Held  bool            `json:"held"`
		Keys  int64           `json:"keys"`
	}
	if err := json.Unmarshal([]byte(n.must("table", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, ti := range list {
		got[ti.Name] = string(ti.Scope) + " " + ti.Home + " " + map[bool]string{true: "held", false: "not-held"}[ti.Held]
		if ti.Name == "fruit" && ti.Keys != 1 {
			t.Errorf("fruit keys %d, want 1", ti.Keys)
		}
	}
	for name, want := range map[string]string{
		"fruit": `"all" home held`, "notes": `"local" home held`, "shared": `["home","office"] home held`,
		"cortex_meta": `"all"  held`,
	} {
		if got[name] != want {
			t.Errorf("table list %s: %q, want %q", name, got[name], want)
		}
	}
	if out := n.must("table", "list"); !strings.Contains(out, "NAME") || !strings.Contains(out, "fruit") {
		t.Errorf("table list: %s", out)
	}
	n.must("table", "scope", "notes", "all")
	n.must("table", "drop", "shared", "--yes")

	n.must("identity", "add", "alice")
	n.must("acl", "grant", "alice", "fruit", "write")
	var acls []map[string]string
	if err := json.Unmarshal([]byte(n.must("acl", "list", "--json")), &acls); err != nil {
		t.Fatal(err)
	}
	if len(acls) != 1 || acls[0]["identity"] != "alice" || acls[0]["table"] != "fruit" || acls[0]["perm"] != "write" {
		t.Fatalf("acl list: %v", acls)
	}
	n.must("acl", "revoke", "alice", "fruit")
	if out := n.must("identity", "list", "--json"); !strings.Contains(out, `"name":"alice"`) {
		t.Fatalf("identity list: %s", out)
	}
	n.must("identity", "remove", "alice")

	var st map[string]any
	if err := json.Unmarshal([]byte(n.must("node", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st["node"] != "home" || st["mesh"] != false || st["version"] == "" {
		t.Fatalf("node status: %v", st)
	}

	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"get", "fruit", "banana"}, 3}, // deleted
		{[]string{"get", "nope", "k"}, 3},       // unknown table
		{[]string{"table", "create", "t", "--scope", ","}, 2},
		{[]string{"table", "create", "Bad"}, 2},
		{[]string{"put", "fruit", "k"}, 2},            // missing value
		{[]string{"get", "fruit", "k", "--bogus"}, 2}, // unknown flag
		{[]string{"table", "create", "fruit"}, 1},     // exists
		{[]string{"acl", "grant", "nobody", "fruit", "read"}, 3},
		{[]string{"table", "drop", "cortex_meta", "--yes"}, 1},
		{[]string{"table", "drop", "fruit"}, 2}, // no --yes, no terminal
	} {
		r := n.cli(tc.args...)
		if r.code != tc.code || !strings.HasPrefix(r.stderr, "error: ") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("cortex %v: exit %d stderr %q, want exit %d and one error line", tc.args, r.code, r.stderr, tc.code)
		}
	}
	if err := n.stop(); err != nil {
		t.Fatalf("cortexd exit after SIGTERM: %v", err)
	}
	if r := n.cli("node", "status"); r.code != 5 {
		t.Errorf("node status with the daemon stopped: exit %d, want 5 (%s)", r.code, r.stderr)
	}
}
