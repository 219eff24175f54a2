package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// checkBenchJSON checks the one object bench prints with --json and
// returns it.
func checkBenchJSON(t *testing.T, stdout string, ops int) map[string]float64 {
	t.Helper()
	m := decode[map[string]any](t, stdout)
	if want := []string{"max_us", "ops", "ops_per_s", "p50_us", "p99_us"}; !slices.Equal(keysOf(m), want) {
		t.Fatalf("bench --json keys %v, want %v: %s", keysOf(m), want, stdout)
	}
	out := map[string]float64{}
	for k, v := range m {
		f, err := v.(json.Number).Float64()
		if err != nil {
			t.Fatalf("%s is not a number: %s", k, stdout)
		}
		out[k] = f
	}
	if out["ops"] != float64(ops) {
		t.Errorf("ops %v, want %d: %s", out["ops"], ops, stdout)
	}
	if out["ops_per_s"] <= 0 || out["p50_us"] < 0 || out["p50_us"] > out["p99_us"] || out["p99_us"] > out["max_us"] {
		t.Errorf("implausible numbers: %s", stdout)
	}
	return out
}

// heldKeys returns how many keys the daemon's copy of table holds.
func heldKeys(t *testing.T, d *daemon, table string) (keys int64, scope string) {
	t.Helper()
	for _, tb := range decode[[]map[string]any](t, d.ok(t, "table", "list", "--json")) {
		if tb["name"] == table {
			n, _ := tb["keys"].(json.Number).Int64()
			s, _ := json.Marshal(tb["scope"])
			return n, string(s)
		}
	}
	t.Fatalf("no table %s", table)
	return 0, ""
}

func TestBenchWrite(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	checkBenchJSON(t, d.ok(t, "bench", "write", "--n", "200", "--concurrency", "8", "--json"), 200)
	if keys, scope := heldKeys(t, d, "bench"); keys != 200 || scope != `"local"` {
		t.Errorf("after bench write: table bench has %d keys, scope %s; want 200, local", keys, scope)
	}
	// A second run writes new keys; more workers than writes is fine.
	human := d.ok(t, "bench", "write", "--n", "10", "--concurrency", "64", "--value-size", "0")
	for _, want := range []string{"bench write: 10 writes of 0-byte values to table bench on " + d.socket + ", 10 concurrent\n",
		"  throughput  ", " writes/s (10 in ", "  latency     p50 ", "ms  p99 ", "ms  max "} {
		if !strings.Contains(human, want) {
			t.Errorf("bench write output lacks %q:\n%s", want, human)
		}
	}
	if keys, _ := heldKeys(t, d, "bench"); keys != 210 {
		t.Errorf("after two runs: %d keys, want 210", keys)
	}
	// An existing table is used as it is, scope and all.
	d.ok(t, "table", "create", "wide", "--scope", "all")
	checkBenchJSON(t, d.ok(t, "--json", "bench", "write", "--table", "wide", "--n", "5", "--value-size", "4096"), 5)
	if keys, scope := heldKeys(t, d, "wide"); keys != 5 || scope != `"all"` {
		t.Errorf("table wide: %d keys, scope %s", keys, scope)
	}
	tb, err := d.store.Table("wide")
	if err != nil {
		t.Fatal(err)
	}
	recs, err := tb.Scan(nil, nil, 0)
	if err != nil || len(recs) != 5 || len(recs[0].Value) != 4096 || !strings.HasPrefix(string(recs[0].Key), "b") {
		t.Errorf("records written: %d (%v)", len(recs), err)
	}
}

func TestBenchUsageErrors(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "missing command: cortex bench needs one of replication, write"},
		{[]string{"bench", "wirte"}, `did you mean "write"?`},
		{[]string{"bench", "write", "extra"}, `unexpected argument "extra"`},
		{[]string{"bench", "write", "--n", "0"}, "--n 0 is out of range: give 1 to 10000000"},
		{[]string{"bench", "write", "--n", "-5"}, "--n -5 is out of range"},
		{[]string{"bench", "write", "--n", "10000001"}, "--n 10000001 is out of range"},
		{[]string{"bench", "write", "--n", "many"}, `invalid argument "many" for "--n"`},
		{[]string{"bench", "write", "--concurrency", "0"}, "--concurrency 0 is out of range: give 1 to 1024"},
		{[]string{"bench", "write", "--concurrency", "1025"}, "--concurrency 1025 is out of range"},
		{[]string{"bench", "write", "--value-size", "-1"}, "--value-size -1 is out of range: give 0 to 1048576"},
		{[]string{"bench", "write", "--value-size", "1048577"}, "--value-size 1048577 is out of range"},
		{[]string{"bench", "write", "--table", "Bad"}, `--table: `},
		{[]string{"bench", "write", "--table", "cortex_meta"}, "reserved for system tables"},
		{[]string{"bench", "write", "--to", "x"}, "unknown flag: --to"},
		{[]string{"bench", "replication"}, "missing --to SOCKET"},
		{[]string{"bench", "replication", "--to", d.socket, "extra"}, `unexpected argument "extra": usage: cortex bench replication --to SOCKET [flags]`},
		{[]string{"bench", "replication", "--to", d.socket, "--rate", "0"}, "--rate 0 is out of range: give 1 to 100000"},
		{[]string{"bench", "replication", "--to", d.socket, "--n", "0"}, "--n 0 is out of range"},
		{[]string{"bench", "replication", "--to", d.socket, "--wait", "0s"}, "--wait 0s is not positive"},
		{[]string{"bench", "replication", "--to", d.socket, "--concurrency", "2"}, "unknown flag: --concurrency"},
		// The --to node is this node.
		{[]string{"bench", "replication", "--to", d.socket}, "--to " + d.socket + " is node home itself"},
	} {
		r := d.run(t, "", c.args...)
		fails(t, r, 2, c.want)
		if !strings.Contains(r.stderr, "--help") {
			t.Errorf("%v: usage error does not point at --help: %q", c.args, r.stderr)
		}
	}
	// Nothing was written by any of them.
	if out := d.ok(t, "table", "list"); strings.Contains(out, "bench") {
		t.Errorf("a failed bench made a table:\n%s", out)
	}
}

func TestBenchErrors(t *testing.T) {
	t.Parallel()
	d := startDaemon(t)
	dead := filepath.Join(shortDir(t), "none.sock")
	fails(t, runEnv(t, nil, "", "--socket", dead, "bench", "write"), 5, "cannot reach cortexd at "+dead)
	fails(t, runEnv(t, nil, "", "--socket", dead, "bench", "replication", "--to", d.socket), 5, "cannot reach cortexd at "+dead)
	fails(t, d.run(t, "", "bench", "replication", "--to", dead), 5, "the --to node: cannot reach cortexd at "+dead)

	// A table this node does not hold.
	d.ok(t, "table", "create", "elsewhere", "--scope", "n2", "--allow-unknown", "--yes")
	fails(t, d.run(t, "", "bench", "write", "--table", "elsewhere"), 1, "table elsewhere is not held on "+d.socket+" (scope n2, home home)")

	// Replication needs two nodes of a mesh.
	fails(t, d.run(t, "", "bench", "replication", "--to", startNamed(t, "b").socket), 1,
		"node home is standalone (not in mesh mode), so nothing replicates between home and b")

	// A call that fails stops the run with its error and exit code.
	full := fakeDaemon(t, 413, `{"error":"value too large","code":"too_large"}`, 0)
	fails(t, full.run(t, "", "bench", "write", "--table", "t"), 1, "value too large")
	denied := fakeDaemon(t, 403, `{"error":"bob may not write table bench","code":"denied"}`, 0)
	fails(t, denied.run(t, "", "bench", "write"), 4, "bob may not write table bench")

	// --timeout bounds each call.
	slow := fakeDaemon(t, 200, `[]`, 5*time.Second)
	start := time.Now()
	fails(t, slow.run(t, "", "--timeout", "100ms", "bench", "write"), 1, "no answer from cortexd")
	if time.Since(start) > 3*time.Second {
		t.Errorf("--timeout 100ms took %v", time.Since(start))
	}
}

// startNamed is startDaemon with another node name.
func startNamed(t *testing.T, name string) *daemon {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: name, Logger: quiet, Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, api.NewServer(st, tables.Limits{}, quiet), st)
}

// meshDaemon is a daemon in mesh mode: a store, its p2p node and the API.
type meshDaemon struct {
	*daemon
	node *mesh.Node
}

// startMeshPair starts nodes a and b in one mesh, in-process, and waits
// until they are connected.
func startMeshPair(t *testing.T) (a, b *meshDaemon) {
	t.Helper()
	certs := t.TempDir()
	now := time.Now()
	if err := pki.CreateCA(certs, false, now); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	start := func(name string, peers ...string) *meshDaemon {
		if err := pki.CreateNodeCert(certs, name, pki.RoleMember, []string{"127.0.0.1"}, false, now); err != nil {
			t.Fatal(err)
		}
		crt, key := pki.NodeCertFiles(certs, name)
		ident, err := pki.LoadIdentity(crt, key, pki.KindNode)
		if err != nil {
			t.Fatal(err)
		}
		ca, err := pki.LoadCA(filepath.Join(certs, "ca.crt"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(store.Options{Dir: t.TempDir(), Node: name, Logger: quiet, Table: tables.Options{NoSync: true}, Identity: ident, CA: ca})
		if err != nil {
			t.Fatal(err)
		}
		node, err := mesh.Start(context.Background(), mesh.Config{Identity: ident, CAFile: filepath.Join(certs, "ca.crt"),
			Listen: "127.0.0.1:0", Peers: peers, Store: st, Logger: quiet})
		if err != nil {
			st.Close()
			t.Fatal(err)
		}
		r := repl.Start(node, st, quiet)
		srv := api.NewServer(st, tables.Limits{}, quiet)
		srv.SetMesh(node, repair.NewPeers(node, st, quiet), r)
		d := serve(t, srv, st)
		t.Cleanup(func() { r.Close(); node.Close() }) // before the store closes (cleanups run last first)
		return &meshDaemon{d, node}
	}
	a = start("a")
	b = start("b", a.node.ListenAddrs()[0])
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range []*meshDaemon{a, b} {
		for !slices.ContainsFunc(n.node.Peers(), func(p mesh.PeerStatus) bool { return p.Connected && p.Node != "" }) {
			if time.Now().After(deadline) {
				t.Fatalf("%s did not connect", n.node.Name())
			}
			time.Sleep(20 * time.Millisecond) // poll interval
		}
	}
	return a, b
}

func TestBenchReplication(t *testing.T) {
	t.Parallel()
	a, b := startMeshPair(t)
	res := checkBenchJSON(t, a.ok(t, "bench", "replication", "--to", b.socket, "--n", "100", "--rate", "2000", "--json"), 100)
	if res["ops_per_s"] > 2200 {
		t.Errorf("%v writes/s, paced at 2000", res["ops_per_s"])
	}
	// The table was made with scope all; b holds every write, and the warm-up write.
	if keys, scope := heldKeys(t, b.daemon, "bench"); keys != 101 || scope != `"all"` {
		t.Errorf("b: table bench has %d keys, scope %s; want 101, all", keys, scope)
	}
	human := a.ok(t, "bench", "replication", "--to", b.socket, "--n", "20", "--rate", "500", "--value-size", "10")
	for _, want := range []string{"bench replication: 20 writes of 10-byte values to table bench on a at 500/s, read back on b\n",
		"  throughput  ", " writes/s (20 in ", "  lag         p50 ", "ms (acknowledged on a to readable on b)\n"} {
		if !strings.Contains(human, want) {
			t.Errorf("bench replication output lacks %q:\n%s", want, human)
		}
	}
	// The other way round works too.
	checkBenchJSON(t, b.ok(t, "bench", "replication", "--to", a.socket, "--n", "10", "--json"), 10)

	// A table that does not replicate to --to.
	a.ok(t, "table", "create", "mine")
	fails(t, a.run(t, "", "bench", "replication", "--to", b.socket, "--table", "mine"), 1,
		"table mine does not replicate to b (scope local, home a): give another --table, or widen its scope (cortex table scope mine all)")
	// A standalone --to node.
	fails(t, a.run(t, "", "bench", "replication", "--to", startDaemon(t).socket), 1, "node home is standalone")
}
