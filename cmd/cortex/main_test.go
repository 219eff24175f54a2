package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/cobra"
)

// daemon is a real cortexd API served in-process on a Unix socket.
type daemon struct {
	store  *store.Store
	socket string
}

// shortDir is a temporary directory with a path short enough for a Unix
// socket (t.TempDir's can pass the 108-byte limit).
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func startDaemon(t *testing.T) *daemon {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: "home", Logger: quiet,
		Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, api.NewServer(st, tables.Limits{}, quiet), st)
}

// serve serves h on a fresh socket until the test ends.
func serve(t *testing.T, h http.Handler, st *store.Store) *daemon {
	t.Helper()
	socket := filepath.Join(shortDir(t), "s.sock")
	ln, err := api.ListenUnix(socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { srv.Serve(ln); close(done) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
		if st != nil {
			st.Close()
		}
	})
	return &daemon{store: st, socket: socket}
}

type result struct {
	code           int
	stdout, stderr string
}

func (r result) String() string {
	return fmt.Sprintf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
}

// run runs cortex against the daemon ($CORTEX_SOCKET) with stdin.
func (d *daemon) run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, map[string]string{"CORTEX_SOCKET": d.socket}, stdin, args...)
}

func runEnv(t *testing.T, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, strings.NewReader(stdin), &out, &errb, func(k string) string { return env[k] })
	return result{code, out.String(), errb.String()}
}

// ok runs a command that must succeed with nothing on stderr.
func (d *daemon) ok(t *testing.T, args ...string) string {
	t.Helper()
	r := d.run(t, "", args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("cortex %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

// fails checks a failed run: its exit code, no stdout, and exactly one
// stderr line starting with "error: " that contains want.
func fails(t *testing.T, r result, code int, want string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit %d, want %d: %v", r.code, code, r)
	}
	if r.stdout != "" {
		t.Errorf("stdout %q on failure", r.stdout)
	}
	if !strings.HasPrefix(r.stderr, "error: ") || !strings.HasSuffix(r.stderr, "\n") || strings.Count(r.stderr, "\n") != 1 {
		t.Errorf("stderr is not one \"error: \" line: %q", r.stderr)
	}
	if !strings.Contains(r.stderr, want) {
		t.Errorf("stderr %q does not say %q", r.stderr, want)
	}
}

// decode parses stdout as exactly one JSON value.
func decode[T any](t *testing.T, stdout string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("stdout is not JSON: %v: %q", err, stdout)
	}
	if dec.More() {
		t.Fatalf("stdout holds more than one JSON value: %q", stdout)
	}
	return v
}

func keysOf(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func TestTableCommands(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	if got := d.ok(t, "table", "create", "t"); got != "created table t (scope local, home home)\n" {
		t.Errorf("create: %q", got)
	}
	if got := d.ok(t, "table", "create", "everywhere", "--scope", "all"); got != "created table everywhere (scope all, home home)\n" {
		t.Errorf("create --scope all: %q", got)
	}
	// A scope naming a node that is not a member is refused, unless it is
	// one that has not joined yet (--allow-unknown).
	fails(t, d.run(t, "", "table", "create", "some", "--scope", "n2,home,n2"), 1, "names n2, not a member of the mesh (members: home)")
	if got := d.ok(t, "table", "create", "some", "--scope", "n2,home,n2", "--allow-unknown"); got != "created table some (scope home,n2, home home)\n" {
		t.Errorf("create --scope list: %q", got)
	}
	fails(t, d.run(t, "", "table", "create", "t"), 1, "already exists")

	// JSON of create and scope is a table as list prints it.
	created := decode[map[string]any](t, d.ok(t, "table", "create", "j", "--json"))
	if created["name"] != "j" || created["scope"] != "local" || created["home"] != "home" || created["held"] != true {
		t.Errorf("create --json: %v", created)
	}

	d.ok(t, "put", "t", "a", "1")
	d.ok(t, "put", "t", "b", "2")
	want := "NAME               SCOPE    HOME  HELD  KEYS\n" +
		"cortex_meta        all      -     yes   4\n" +
		"cortex_identities  all      -     yes   0\n" +
		"cortex_acls        all      -     yes   0\n" +
		"everywhere         all      home  yes   0\n" +
		"j                  local    home  yes   0\n" +
		"some               home,n2  home  yes   0\n" +
		"t                  local    home  yes   2\n"
	if got := d.ok(t, "table", "list"); got != want {
		t.Errorf("table list:\n%s\nwant:\n%s", got, want)
	}

	list := decode[[]map[string]any](t, d.ok(t, "table", "list", "--json"))
	if len(list) != 7 {
		t.Fatalf("table list --json: %d tables: %v", len(list), list)
	}
	byName := map[string]map[string]any{}
	for _, tb := range list {
		for _, k := range []string{"name", "scope", "home", "held", "keys", "id", "system"} {
			if _, ok := tb[k]; !ok {
				t.Errorf("table list --json: %v has no %q", tb, k)
			}
		}
		byName[tb["name"].(string)] = tb
	}
	if tb := byName["t"]; tb["scope"] != "local" || tb["home"] != "home" || tb["held"] != true || tb["keys"] != json.Number("2") || tb["system"] != false || tb["created"] == nil {
		t.Errorf("table t: %v", tb)
	}
	if sc, ok := byName["some"]["scope"].([]any); !ok || len(sc) != 2 || sc[0] != "home" || sc[1] != "n2" {
		t.Errorf("list scope is not an array: %v", byName["some"]["scope"])
	}
	if tb := byName["cortex_meta"]; tb["scope"] != "all" || tb["system"] != true || tb["home"] != "" {
		t.Errorf("cortex_meta: %v", tb)
	}

	// A scope that leaves this node out: still listed, not held, but the
	// copy is kept (handing off) until a holder has every entry of it. No
	// node it names is reachable: that needs a yes.
	fails(t, d.run(t, "", "table", "scope", "t", "n2,n3", "--allow-unknown"), 2, "table t: no node that would hold a copy is reachable now: copies: home -> n2, n3")
	if got := d.ok(t, "table", "scope", "t", "n2,n3", "--allow-unknown", "--yes"); got != "table t: scope n2,n3, home home\n" {
		t.Errorf("table scope: %q", got)
	}
	if got := d.ok(t, "table", "list"); !strings.Contains(got, "\nt                  n2,n3    home  handing off  2\n") {
		t.Errorf("table list after scope:\n%s", got)
	}
	scoped := decode[map[string]any](t, d.ok(t, "--json", "table", "scope", "t", "all"))
	if scoped["scope"] != "all" || scoped["held"] != true {
		t.Errorf("table scope --json: %v", scoped)
	}
	fails(t, d.run(t, "", "table", "scope", "nosuch", "all"), 3, "no such table")
	fails(t, d.run(t, "", "table", "scope", "cortex_acls", "local"), 1, "cannot change")

	fails(t, d.run(t, "", "table", "drop", "t"), 2, "add --yes to go on without one")
	if got := d.ok(t, "get", "t", "a"); got == "" {
		t.Errorf("drop without --yes dropped the table")
	}
	if got := d.ok(t, "table", "drop", "t", "--yes"); got != "dropped table t\n" {
		t.Errorf("drop: %q", got)
	}
	fails(t, d.run(t, "", "table", "drop", "t", "--yes"), 3, "no such table: t")
	fails(t, d.run(t, "", "get", "t", "a"), 3, "no such table")
	if got := decode[map[string]any](t, d.ok(t, "table", "drop", "j", "--json", "--yes")); got["table"] != "j" || got["dropped"] != true {
		t.Errorf("drop --json: %v", got)
	}
	fails(t, d.run(t, "", "table", "drop", "cortex_meta", "--yes"), 1, "cannot be dropped")
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"table", "create", "u", "--scope", ","}, `bad scope ","`},
		{[]string{"table", "create", "u", "--scope", ""}, `bad scope ""`},
		{[]string{"table", "create", "u", "--scope", "a,,b"}, "bad scope"},
		{[]string{"table", "create", "u", "--scope", "Node1"}, "bad scope"},
		{[]string{"table", "create", "u", "--scope"}, "flag needs an argument"},
		{[]string{"table", "create", "Bad"}, `table name "Bad"`},
		{[]string{"table", "create", "cortex_x"}, "reserved"},
		{[]string{"table", "create"}, "missing NAME"},
		{[]string{"table", "scope", "t", ","}, `bad scope ","`},
		{[]string{"table", "scope", "t"}, "missing SCOPE"},
		{[]string{"table", "list", "extra"}, `unexpected argument "extra"`},
		{[]string{"table", "drop"}, "missing NAME"},
		{[]string{"table"}, "missing command"},
		{[]string{"table", "lst"}, `did you mean "list"`},
		{[]string{}, "missing command"},
		{[]string{"tabel", "list"}, `did you mean "table"`},
		{[]string{"sync", "status", "a", "b"}, `unexpected argument "b"`},
		{[]string{"sync", "repair"}, "missing TABLE"},
		{[]string{"snyc", "status"}, `did you mean "sync"`},
		{[]string{"gett", "t", "k"}, `unknown command "gett" for cortex: did you mean "get"?`},  // not cert, 2 edits away
		{[]string{"pt", "t", "k", "v"}, `unknown command "pt" for cortex: did you mean "put"?`}, // not get, 2 edits away
		{[]string{"version", "x"}, `unexpected argument "x"`},
		{[]string{"get", "--bogus", "t", "k"}, "unknown flag: --bogus"},
		{[]string{"--bogus"}, "unknown flag: --bogus"},
		{[]string{"table", "list", "-x"}, "unknown shorthand flag"},
		{[]string{"get", "t"}, "missing KEY"},
		{[]string{"get"}, "missing TABLE and KEY"},
		{[]string{"get", "t", "k", "extra"}, `unexpected argument "extra"`},
		{[]string{"get", "t", ""}, "KEY is empty"},
		{[]string{"put", "t", "k"}, "missing VALUE"},
		{[]string{"put", "t", "", "v"}, "KEY is empty"},
		{[]string{"put", "t", "k", "-5"}, "unknown shorthand flag"},
		{[]string{"del", "t"}, "missing KEY"},
		{[]string{"scan"}, "missing TABLE"},
		{[]string{"scan", "t", "--limit", "-1"}, "--limit -1 is negative"},
		{[]string{"scan", "t", "--limit", "ten"}, "invalid argument"},
		{[]string{"identity", "add", "x", "--kind", "robot"}, `bad --kind "robot"`},
		{[]string{"identity", "add"}, "missing NAME"},
		{[]string{"identity", "remove", "a", "b"}, `unexpected argument "b"`},
		{[]string{"acl", "grant", "a", "t", "root"}, `bad permission "root"`},
		{[]string{"acl", "grant", "a", "t"}, "missing PERM"},
		{[]string{"acl", "revoke", "a", "t", "all"}, `bad permission "all"`},
		{[]string{"acl", "revoke", "a", "t", "read", "x"}, `unexpected argument "x"`},
		{[]string{"acl", "list", "x"}, `unexpected argument "x"`},
		{[]string{"node", "status", "x"}, `unexpected argument "x"`},
		{[]string{"--timeout", "-1s", "node", "status"}, "--timeout -1s is negative"},
		{[]string{"--timeout", "soon", "node", "status"}, "invalid argument"},
	} {
		r := d.run(t, "", c.args...)
		fails(t, r, 2, c.want)
		if t.Failed() {
			t.Fatalf("cortex %q", c.args)
		}
	}
	// Nothing was created by the rejected commands.
	if got := d.ok(t, "table", "list"); strings.Contains(got, "\nu ") {
		t.Errorf("a rejected create made a table:\n%s", got)
	}
}

func TestKeyCommands(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")

	// put and del print nothing; get prints the raw value with no newline
	// (stdout is not a terminal).
	if got := d.ok(t, "put", "t", "k", "hello world"); got != "" {
		t.Errorf("put printed %q", got)
	}
	if got := d.ok(t, "get", "t", "k"); got != "hello world" {
		t.Errorf("get: %q", got)
	}
	d.ok(t, "put", "t", "k", "v2")
	if got := d.ok(t, "get", "t", "k"); got != "v2" {
		t.Errorf("get after overwrite: %q", got)
	}

	rec := decode[map[string]any](t, d.ok(t, "get", "t", "k", "--json"))
	if !slices.Equal(keysOf(rec), []string{"hlc", "hlc_time", "key", "origin", "table", "value"}) {
		t.Errorf("get --json fields: %v", keysOf(rec))
	}
	if rec["table"] != "t" || rec["key"] != "k" || rec["value"] != "v2" || rec["origin"] != "home" {
		t.Errorf("get --json: %v", rec)
	}
	// hlc is a decimal string (a number above 2^53 would be rounded by jq),
	// hlc_time the wall time it encodes.
	if s, ok := rec["hlc"].(string); !ok {
		t.Errorf("get --json hlc: %#v, want a decimal string", rec["hlc"])
	} else if hlc, err := tables.ParseTimestamp(s); err != nil || hlc <= 1<<53 || rec["hlc_time"] != hlc.Time() {
		t.Errorf("get --json hlc %q (%v), hlc_time %v, want %s", s, err, rec["hlc_time"], hlc.Time())
	}

	// put -- lets keys and values start with '-'; '-' alone is stdin.
	d.ok(t, "put", "t", "--", "-k", "-5")
	if got := d.ok(t, "get", "t", "--", "-k"); got != "-5" {
		t.Errorf("get -k: %q", got)
	}

	// Raw bytes from stdin, not UTF-8, with a trailing newline kept.
	raw := "a\xff\x00b\n"
	if r := d.run(t, raw, "put", "t", "bin", "-"); r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("put -: %v", r)
	}
	if got := d.ok(t, "get", "t", "bin"); got != raw {
		t.Errorf("get bin: %q, want %q", got, raw)
	}
	bin := decode[map[string]any](t, d.ok(t, "get", "t", "bin", "--json"))
	if bin["value"] != nil || bin["value_base64"] != base64.StdEncoding.EncodeToString([]byte(raw)) || bin["key"] != "bin" {
		t.Errorf("get --json of a non-UTF-8 value: %v", bin)
	}
	if _, ok := bin["value"]; !ok {
		t.Errorf("get --json: value is missing, want null: %v", bin)
	}
	// An empty stdin stores an empty value.
	if r := d.run(t, "", "put", "t", "empty", "-"); r.code != 0 {
		t.Fatalf("put - (empty): %v", r)
	}
	if got := d.ok(t, "get", "t", "empty"); got != "" {
		t.Errorf("get empty: %q", got)
	}
	if got := decode[map[string]any](t, d.ok(t, "get", "t", "empty", "--json")); got["value"] != "" {
		t.Errorf("get --json empty: %v", got)
	}

	// put and del with --json print the version.
	w := decode[map[string]any](t, d.ok(t, "put", "t", "j", "x", "--json"))
	if w["table"] != "t" || w["key"] != "j" || w["origin"] != "home" || w["hlc"] == nil {
		t.Errorf("put --json: %v", w)
	}
	if got := d.ok(t, "del", "t", "j"); got != "" {
		t.Errorf("del printed %q", got)
	}
	fails(t, d.run(t, "", "get", "t", "j"), 3, `key "j"`)
	d.ok(t, "put", "t", "j", "x")
	if w := decode[map[string]any](t, d.ok(t, "--json", "del", "t", "j")); w["key"] != "j" || w["hlc"] == nil {
		t.Errorf("del --json: %v", w)
	}

	// Not found: a missing key, an unknown table.
	fails(t, d.run(t, "", "get", "t", "nope"), 3, `table t: key "nope"`)
	fails(t, d.run(t, "", "get", "t", "nope", "--json"), 3, "not found")
	fails(t, d.run(t, "", "del", "t", "nope"), 3, `table t: key "nope": key not found`)
	fails(t, d.run(t, "", "get", "nosuch", "k"), 3, "no such table")
	fails(t, d.run(t, "", "put", "nosuch", "k", "v"), 3, "no such table")
	fails(t, d.run(t, "", "del", "nosuch", "k"), 3, "no such table")
	fails(t, d.run(t, "", "scan", "nosuch"), 3, "no such table")

	// Rejected by the daemon: a key over the limit.
	fails(t, d.run(t, "", "put", "t", strings.Repeat("k", 2000), "v"), 1, "key is 2,000 bytes, over the limit of 1,024")
	fails(t, d.run(t, strings.Repeat("v", 3<<20), "put", "t", "k", "-"), 1, "value is 3,145,728 bytes, over the limit of 1,048,576")

	// A table this node does not hold.
	d.ok(t, "table", "create", "far", "--scope", "n2", "--allow-unknown", "--yes")
	fails(t, d.run(t, "", "get", "far", "k"), 1, "held on n2")
}

func TestGetNewlineOnTerminal(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	d.ok(t, "put", "t", "a", "x")
	d.ok(t, "put", "t", "b", "y\n")
	d.ok(t, "put", "t", "c", "")
	env := func(k string) string { return map[string]string{"CORTEX_SOCKET": d.socket}[k] }
	for key, want := range map[string]string{"a": "x\n", "b": "y\n", "c": "\n"} {
		var out, errb bytes.Buffer
		code := newApp(strings.NewReader(""), &out, &errb, env, true).execute([]string{"get", "t", key})
		if code != 0 || out.String() != want || errb.Len() != 0 {
			t.Errorf("get %s on a terminal: exit %d, %q (want %q), stderr %q", key, code, out.String(), want, errb.String())
		}
	}
}

func TestScanPaging(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	d.ok(t, "table", "create", "empty")
	// More keys than one page of the daemon (10,000 records), written
	// straight to the store to keep the test fast.
	const na, nb = 10_050, 30
	tb, err := d.store.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < na+nb; i += 8 {
				key := fmt.Sprintf("a%05d", i)
				if i >= na {
					key = fmt.Sprintf("b%05d", i-na)
				}
				if _, err := tb.Put(context.Background(), []byte(key), []byte("v"+key)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	lines := func(out string) []string { return strings.Split(strings.TrimSuffix(out, "\n"), "\n") }
	all := lines(d.ok(t, "scan", "t"))
	if len(all) != na+nb {
		t.Fatalf("scan: %d lines, want %d", len(all), na+nb)
	}
	if !slices.IsSorted(all) || all[0] != "a00000\tva00000" || all[na] != "b00000\tvb00000" || all[len(all)-1] != fmt.Sprintf("b%05d\tvb%05d", nb-1, nb-1) {
		t.Errorf("scan is not every key in order: first %q, last %q", all[0], all[len(all)-1])
	}
	if got := lines(d.ok(t, "scan", "t", "--prefix", "a")); len(got) != na || got[na-1] != fmt.Sprintf("a%05d\tva%05d", na-1, na-1) {
		t.Errorf("scan --prefix a: %d lines, last %q", len(got), got[len(got)-1])
	}
	if got := lines(d.ok(t, "scan", "t", "--prefix", "b", "--limit", "5")); !slices.Equal(got, all[na:na+5]) {
		t.Errorf("scan --prefix b --limit 5: %q", got)
	}
	if got := lines(d.ok(t, "scan", "t", "--limit", "10005")); len(got) != 10005 || !slices.Equal(got, all[:10005]) {
		t.Errorf("scan --limit 10005 (over one page): %d lines", len(got))
	}
	if got := lines(d.ok(t, "scan", "t", "--prefix", "a0001", "--limit", "3")); !slices.Equal(got, []string{"a00010\tva00010", "a00011\tva00011", "a00012\tva00012"}) {
		t.Errorf("scan --prefix a0001 --limit 3: %q", got)
	}
	if got := d.ok(t, "scan", "t", "--prefix", "zz"); got != "" {
		t.Errorf("scan of no keys printed %q", got)
	}

	recs := decode[[]map[string]any](t, d.ok(t, "scan", "t", "--json"))
	if len(recs) != na+nb {
		t.Fatalf("scan --json: %d records", len(recs))
	}
	if r := recs[na]; !slices.Equal(keysOf(r), []string{"hlc", "hlc_time", "key", "origin", "value"}) || r["key"] != "b00000" || r["value"] != "vb00000" || r["origin"] != "home" {
		t.Errorf("scan --json record: %v", r)
	}
	if got := d.ok(t, "scan", "empty", "--json"); got != "[]\n" {
		t.Errorf("scan --json of an empty table: %q", got)
	}
	if got := decode[[]map[string]any](t, d.ok(t, "scan", "t", "--json", "--prefix", "b", "--limit", "2")); len(got) != 2 || got[1]["key"] != "b00001" {
		t.Errorf("scan --json --prefix b --limit 2: %v", got)
	}
}

func TestScanPagesBySize(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "big")
	// Pages also stop at about 4 MiB: 1 MiB values make pages of four.
	value := bytes.Repeat([]byte("x"), tables.DefaultMaxValueSize)
	tb, _ := d.store.Table("big")
	for i := range 6 {
		if _, err := tb.Put(context.Background(), fmt.Appendf(nil, "k%d", i), value); err != nil {
			t.Fatal(err)
		}
	}
	out := d.ok(t, "scan", "big")
	if n := strings.Count(out, "\n"); n != 6 || len(out) != 6*(4+len(value)) {
		t.Errorf("scan of 6 large values: %d lines, %d bytes", n, len(out))
	}
	if got := strings.Count(d.ok(t, "scan", "big", "--limit", "5"), "\n"); got != 5 {
		t.Errorf("scan --limit 5: %d lines", got)
	}
}

func TestScanEscapes(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	d.ok(t, "put", "t", "k\t1", "line1\nline2\\ \xff\x01 é")
	d.ok(t, "put", "t", "plain", "a b")
	want := "k\\t1\tline1\\nline2\\\\ \\xff\\x01 é\nplain\ta b\n"
	if got := d.ok(t, "scan", "t"); got != want {
		t.Errorf("scan:\n%q\nwant\n%q", got, want)
	}
	recs := decode[[]map[string]any](t, d.ok(t, "scan", "t", "--json"))
	if recs[0]["key"] != "k\t1" || recs[0]["value"] != nil || recs[0]["value_base64"] != base64.StdEncoding.EncodeToString([]byte("line1\nline2\\ \xff\x01 é")) {
		t.Errorf("scan --json: %v", recs[0])
	}
}

// selfSigned returns a PEM certificate for the common name cn.
func selfSigned(t *testing.T, cn string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func TestIdentityAndACLCommands(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")

	if got := d.ok(t, "identity", "add", "alice"); got != "added identity alice (client)\n" {
		t.Errorf("identity add: %q", got)
	}
	certFile := filepath.Join(t.TempDir(), "node2.crt")
	os.WriteFile(certFile, selfSigned(t, "node2"), 0o600)
	if got := d.ok(t, "identity", "add", "node2", "--kind", "node", "--cert", certFile); !strings.HasPrefix(got, "added identity node2 (node), pinned to certificate sha256:") {
		t.Errorf("identity add --cert: %q", got)
	}
	fails(t, d.run(t, "", "identity", "add", "bob", "--cert", certFile), 1, `not "bob"`)
	fails(t, d.run(t, "", "identity", "add", "bob", "--cert", filepath.Join(t.TempDir(), "none.crt")), 1, "--cert")
	fails(t, d.run(t, "", "identity", "add", "Bad!"), 2, `invalid: identity name "Bad!" must match [a-z0-9][a-z0-9_-]{0,62}`)

	human := d.ok(t, "identity", "list")
	rows := strings.Split(strings.TrimSuffix(human, "\n"), "\n")
	if len(rows) != 3 || strings.Join(strings.Fields(rows[0]), " ") != "NAME KIND FINGERPRINT ADDED" {
		t.Fatalf("identity list:\n%s", human)
	}
	if f := strings.Fields(rows[1]); len(f) != 4 || f[0] != "alice" || f[1] != "client" || f[2] != "-" {
		t.Errorf("identity list row: %q", rows[1])
	} else if _, err := time.Parse(time.RFC3339, f[3]); err != nil {
		t.Errorf("identity list ADDED: %v", err)
	}
	if f := strings.Fields(rows[2]); len(f) != 4 || f[0] != "node2" || f[1] != "node" || !strings.HasPrefix(f[2], "sha256:") {
		t.Errorf("identity list row: %q", rows[2])
	}
	ids := decode[[]map[string]any](t, d.ok(t, "identity", "list", "--json"))
	if len(ids) != 2 || !slices.Equal(keysOf(ids[0]), []string{"added", "fingerprint", "kind", "name"}) || ids[0]["name"] != "alice" || ids[0]["fingerprint"] != "" || ids[1]["kind"] != "node" {
		t.Errorf("identity list --json: %v", ids)
	}
	if id := decode[map[string]any](t, d.ok(t, "identity", "add", "carol", "--json")); id["name"] != "carol" || id["kind"] != "client" {
		t.Errorf("identity add --json: %v", id)
	}

	if got := d.ok(t, "acl", "grant", "alice", "t", "write"); got != "granted write on t to alice\n" {
		t.Errorf("acl grant: %q", got)
	}
	if got := d.ok(t, "acl", "grant", "alice", "*", "read"); got != "granted read on every table (*) to alice\n" {
		t.Errorf("acl grant *: %q", got)
	}
	if g := decode[map[string]any](t, d.ok(t, "acl", "grant", "carol", "t", "admin", "--json")); g["identity"] != "carol" || g["table"] != "t" || g["perm"] != "admin" {
		t.Errorf("acl grant --json: %v", g)
	}
	fails(t, d.run(t, "", "acl", "grant", "nobody", "t", "read"), 3, "no such identity")
	fails(t, d.run(t, "", "acl", "grant", "alice", "nosuch", "read"), 3, "no such table")

	want := "IDENTITY  TABLE  PERM\n" +
		"alice     *      read\n" +
		"alice     t      write\n" +
		"carol     t      admin\n"
	if got := d.ok(t, "acl", "list"); got != want {
		t.Errorf("acl list:\n%s\nwant:\n%s", got, want)
	}
	grants := decode[[]map[string]any](t, d.ok(t, "acl", "list", "--json"))
	if len(grants) != 3 || !slices.Equal(keysOf(grants[1]), []string{"identity", "perm", "table"}) || grants[1]["identity"] != "alice" || grants[1]["table"] != "t" || grants[1]["perm"] != "write" {
		t.Errorf("acl list --json: %v", grants)
	}

	fails(t, d.run(t, "", "acl", "revoke", "alice", "t", "read"), 1, "holds write on t, not read")
	if got := d.ok(t, "acl", "revoke", "alice", "t", "write"); got != "revoked the grant of alice on t\n" {
		t.Errorf("acl revoke: %q", got)
	}
	if got := d.ok(t, "acl", "revoke", "alice", "t"); got != "alice has no grant on t: nothing revoked\n" {
		t.Errorf("acl revoke again: %q", got)
	}
	if r := decode[map[string]any](t, d.ok(t, "acl", "revoke", "alice", "*", "--json")); r["removed"] != true || r["table"] != "*" {
		t.Errorf("acl revoke --json: %v", r)
	}

	if got := d.ok(t, "identity", "remove", "carol"); got != "removed identity carol and its 1 grant(s)\n" {
		t.Errorf("identity remove: %q", got)
	}
	fails(t, d.run(t, "", "identity", "remove", "carol"), 3, "no such identity: carol")
	if got := d.ok(t, "acl", "list"); got != "IDENTITY  TABLE  PERM\n" {
		t.Errorf("acl list when empty: %q", got)
	}
	if got := d.ok(t, "acl", "list", "--json"); got != "[]\n" {
		t.Errorf("acl list --json when empty: %q", got)
	}
	if r := decode[map[string]any](t, d.ok(t, "identity", "remove", "alice", "--json")); r["name"] != "alice" || r["grants_removed"] != json.Number("0") {
		t.Errorf("identity remove --json: %v", r)
	}
}

func TestNodeStatus(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	d.ok(t, "table", "create", "t")
	human := d.ok(t, "node", "status")
	for _, want := range []string{"NODE     home\n", "VERSION  " + api.Version + "\n", "MESH     no\n", "TABLES   4\n", "UPTIME   "} {
		if !strings.Contains(human, want) {
			t.Errorf("node status lacks %q:\n%s", want, human)
		}
	}
	st := decode[map[string]any](t, d.ok(t, "node", "status", "--json"))
	if !slices.Equal(keysOf(st), []string{"mesh", "node", "tables", "uptime_s", "version"}) || st["node"] != "home" || st["version"] != api.Version || st["mesh"] != false || st["tables"] != json.Number("4") {
		t.Errorf("node status --json: %v", st)
	}
}

func TestSocketSelection(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	dead := filepath.Join(shortDir(t), "none.sock")

	// Nothing behind the socket: exit 5, for every kind of command.
	for _, args := range [][]string{{"node", "status"}, {"get", "t", "k"}, {"table", "list", "--json"}, {"put", "t", "k", "v"}} {
		r := runEnv(t, nil, "", append([]string{"--socket", dead}, args...)...)
		fails(t, r, 5, "cannot reach cortexd at "+dead)
		if !strings.Contains(r.stderr, "is cortexd running?") || strings.Contains(r.stderr, "http://") {
			t.Errorf("unreachable message: %q", r.stderr)
		}
	}
	// A socket file with no listener (a crashed daemon) is unreachable too.
	stale := filepath.Join(shortDir(t), "stale.sock")
	ln, err := api.ListenUnix(stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	ln.Close()
	fails(t, runEnv(t, nil, "", "--socket", stale, "node", "status"), 5, "cannot reach cortexd")

	// $CORTEX_SOCKET is used; --socket wins over it.
	if r := runEnv(t, map[string]string{"CORTEX_SOCKET": d.socket}, "", "node", "status", "--json"); r.code != 0 {
		t.Errorf("$CORTEX_SOCKET: %v", r)
	}
	fails(t, runEnv(t, map[string]string{"CORTEX_SOCKET": d.socket}, "", "--socket", dead, "node", "status"), 5, dead)
	if r := runEnv(t, map[string]string{"CORTEX_SOCKET": dead}, "", "--socket", d.socket, "node", "status"); r.code != 0 {
		t.Errorf("--socket over $CORTEX_SOCKET: %v", r)
	}
}

func TestDefaultSocket(t *testing.T) {
	t.Chdir(t.TempDir())
	fails(t, runEnv(t, nil, "", "node", "status"), 5, "cannot reach cortexd at ./cortex-data/cortex.sock")
}

// fakeDaemon answers every call with status and body after delay.
func fakeDaemon(t *testing.T, status int, body string, delay time.Duration) *daemon {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}), nil)
}

func TestDeniedAndServerErrors(t *testing.T) {
	t.Parallel()
	denied := fakeDaemon(t, http.StatusForbidden, `{"error":"bob may not write table t (ask an admin: cortex acl grant bob t write)","code":"denied"}`, 0)
	fails(t, denied.run(t, "", "put", "t", "k", "v"), 4, "bob may not write table t")
	fails(t, denied.run(t, "", "table", "list", "--json"), 4, "ask an admin")

	internal := fakeDaemon(t, http.StatusInternalServerError, `{"error":"disk on fire","code":"internal"}`, 0)
	fails(t, internal.run(t, "", "get", "t", "k"), 1, "disk on fire; check the cortexd log")

	garbage := fakeDaemon(t, http.StatusBadGateway, `<html>`, 0)
	fails(t, garbage.run(t, "", "node", "status"), 1, "HTTP 502")
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	slow := fakeDaemon(t, http.StatusOK, `{}`, 5*time.Second)
	start := time.Now()
	fails(t, slow.run(t, "", "--timeout", "100ms", "node", "status"), 1, "no answer from cortexd")
	if time.Since(start) > 3*time.Second {
		t.Errorf("--timeout 100ms took %v", time.Since(start))
	}
}

// TestHelp checks that every command has --help with an example, exiting 0.
func TestHelp(t *testing.T) {
	t.Parallel()
	var paths [][]string
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		paths = append(paths, path)
		for _, sub := range c.Commands() {
			walk(sub, append(slices.Clone(path), sub.Name()))
		}
	}
	walk(newRootCmd(newApp(nil, nil, nil, nil, false)), nil)
	if len(paths) != 46 {
		t.Errorf("%d commands, want 46 (root, 8 groups, 37 commands)", len(paths))
	}
	for _, path := range paths {
		r := runEnv(t, nil, "", append(slices.Clone(path), "--help")...)
		if r.code != 0 || r.stderr != "" || !strings.Contains(r.stdout, "Usage:") {
			t.Errorf("cortex %s --help: %v", strings.Join(path, " "), r)
		}
		if !strings.Contains(r.stdout, "Examples:\n  cortex") {
			t.Errorf("cortex %s --help has no example:\n%s", strings.Join(path, " "), r.stdout)
		}
	}
	// help as a command, too.
	if r := runEnv(t, nil, "", "help", "scan"); r.code != 0 || !strings.Contains(r.stdout, "--prefix") {
		t.Errorf("cortex help scan: %v", r)
	}
	if r := runEnv(t, nil, "", "help", "table", "create"); r.code != 0 || !strings.Contains(r.stdout, "--scope") {
		t.Errorf("cortex help table create: %v", r)
	}
	fails(t, runEnv(t, nil, "", "help", "table", "nosuch"), 2, `no command "table nosuch"`)
}

// cortex --version and cortex version print one line on stdout: the
// version, the commit and the Go release; bool flags show without a value.
func TestVersion(t *testing.T) {
	t.Parallel()
	want := cli.Version("cortex") + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}} {
		if r := runEnv(t, nil, "", args...); r.code != 0 || r.stdout != want || r.stderr != "" {
			t.Errorf("cortex %s: %v, want %q", args[0], r, want)
		}
	}
	if !regexp.MustCompile(`^cortex \S+ \(commit \S+, go\S+\)\n$`).MatchString(want) {
		t.Errorf("version line %q", want)
	}
	r := runEnv(t, nil, "", "version", "--json")
	var info cli.BuildInfo
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &info) != nil || info != cli.Build("cortex") {
		t.Errorf("cortex version --json: %v", r)
	}
	if r := runEnv(t, nil, "", "get", "--help"); strings.Contains(r.stdout, "true|false") || !strings.Contains(r.stdout, "      --json ") {
		t.Errorf("get --help shows bool flags with a value:\n%s", r.stdout)
	}
}
