package integration

// Placement scenarios of the mesh-replication spec ("Replication driven by
// node scope", "Node join handling", "System table replication"), one test
// per scenario, against real cortexd processes on 127.0.0.1. Helpers here
// are prefixed pl (the package is shared with other test files).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
)

// plTimeout bounds every wait of these tests.
const plTimeout = 30 * time.Second

// plPoll calls cond until it reports true, failing the test with cond's
// last description after plTimeout.
func plPoll(t testing.TB, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(plTimeout)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, plTimeout, desc)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// plMesh starts the named nodes with certificates from certs: the first
// alone, each other one with the first as its only seed, and waits until
// every node is connected to every other.
func plMesh(t *testing.T, certs string, names ...string) []*node {
	t.Helper()
	var nodes []*node
	for i, name := range names {
		var n *node
		if i == 0 {
			n = newMeshNode(t, certs, name)
		} else {
			n = newMeshNode(t, certs, name, nodes[0].meshAddr)
		}
		n.start()
		nodes = append(nodes, n)
	}
	plWaitFullMesh(nodes...)
	return nodes
}

// plWaitFullMesh waits until each node is connected to all the others.
func plWaitFullMesh(nodes ...*node) {
	for _, n := range nodes {
		var want []string
		for _, o := range nodes {
			if o != n {
				want = append(want, o.name)
			}
		}
		n.waitPeers(want...)
	}
}

// plTables is n's table list by name (over the Go client).
func (n *node) plTables() (map[string]api.TableInfo, error) {
	c := n.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := c.Tables(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]api.TableInfo{}
	for _, ti := range list {
		out[ti.Name] = ti
	}
	return out, nil
}

// plHeldSet is the set of tables n's list says it holds.
func (n *node) plHeldSet() ([]string, error) {
	list, err := n.plTables()
	if err != nil {
		return nil, err
	}
	var out []string
	for name, ti := range list {
		if ti.Held {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out, nil
}

// plCopyNames lists the tables of the copy directories in n's data dir.
func (n *node) plCopyNames() []string {
	dirs, _ := filepath.Glob(filepath.Join(n.dir, "tables", "*"))
	var out []string
	for _, d := range dirs {
		base := filepath.Base(d)
		if i := strings.Index(base, "-"); i > 0 { // NAME-ID; names have no dash
			base = base[:i]
		}
		out = append(out, base)
	}
	slices.Sort(out)
	return out
}

// plWaitNoCopy waits until n has no copy of table on disk and does not list
// it as held or draining: the copy was handed off and deleted.
func (n *node) plWaitNoCopy(table string) {
	n.t.Helper()
	plPoll(n.t, n.name+" drops its copy of "+table, func() (bool, string) {
		list, err := n.plTables()
		ti := list[table]
		dirs := n.copyDirs(table)
		return err == nil && !ti.Held && !ti.Draining && len(dirs) == 0,
			fmt.Sprintf("list: %+v (%v), dirs: %v\n%s", ti, err, dirs, n.logs)
	})
}

// plScan reads every live record of table on n as key -> value.
func (n *node) plScan(table string) (map[string]string, error) {
	c := n.client()
	defer c.Close()
	out := map[string]string{}
	var after []byte
	for page := 0; page < 100; page++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := c.Scan(ctx, api.ScanRequest{Table: table, After: after})
		cancel()
		if err != nil {
			return nil, err
		}
		for _, r := range res.Records {
			out[string(r.Key)] = string(r.Value)
		}
		if !res.More || len(res.Records) == 0 {
			return out, nil
		}
		after = res.Records[len(res.Records)-1].Key
	}
	return nil, errors.New("scan: more than 100 pages")
}

// plMissing describes the keys of want that got lacks or holds with
// another value ("" if none).
func plMissing(got, want map[string]string) string {
	var bad []string
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	slices.Sort(bad)
	return fmt.Sprintf("%d of %d keys missing or wrong, e.g. %v", len(bad), len(want), bad[:min(5, len(bad))])
}

// plWaitContents waits until each node's copy of table holds exactly want.
func plWaitContents(t testing.TB, table string, want map[string]string, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		plPoll(t, n.name+": contents of "+table, func() (bool, string) {
			got, err := n.plScan(table)
			return err == nil && maps.Equal(got, want),
				fmt.Sprintf("%v: got %d keys, want %d: %s\n%s", err, len(got), len(want), plMissing(got, want), n.logs)
		})
	}
}

// plPuts writes every key of kv on n and returns kv.
func (n *node) plPuts(table string, kv map[string]string) map[string]string {
	n.t.Helper()
	for _, k := range slices.Sorted(maps.Keys(kv)) {
		n.must("put", table, k, kv[k])
	}
	return kv
}

// plExpectNotHeld checks that n lists table, does not hold it, has no copy
// of it on disk, and refuses a read with exit 1 and a message naming where
// the table is held.
func (n *node) plExpectNotHeld(table, where string) {
	n.t.Helper()
	held, listed := n.held(table)
	if !listed || held {
		n.t.Errorf("%s: table %s listed=%v held=%v, want listed and not held", n.name, table, listed, held)
	}
	if dirs := n.copyDirs(table); len(dirs) != 0 {
		n.t.Errorf("%s has a copy of %s on disk: %v", n.name, table, dirs)
	}
	r := n.cli("get", table, "k1")
	if r.code != 1 || !strings.Contains(r.stderr, table+" is held on "+where) {
		n.t.Errorf("%s: get %s k1: exit %d, stderr %q; want exit 1 naming where it is held (%s)", n.name, table, r.code, r.stderr, where)
	}
}

// plReplStats returns what n's replication counted for table since its
// start (node status --json).
func (n *node) plReplStats(table string) repl.Stats {
	n.t.Helper()
	var st api.NodeStatus
	if err := json.Unmarshal([]byte(n.must("node", "status", "--json")), &st); err != nil {
		n.t.Fatal(err)
	}
	return st.Replication[table]
}

// plSubscribedTo reports whether n ever subscribed to a peer for table.
func (n *node) plSubscribedTo(table string) bool { return n.plReplStats(table).Subscribed > 0 }

// plRefusedFor reports whether n ever refused a subscriber for table.
func (n *node) plRefusedFor(table string) bool { return n.plReplStats(table).Refused > 0 }

func plRemote(t *testing.T, addr, certs, client string, args ...string) result {
	t.Helper()
	crt, key := pki.ClientCertFiles(certs, client)
	flags := []string{"--addr", addr, "--ca", filepath.Join(certs, "ca.crt"), "--cert", crt, "--key", key}
	return cortex(t, nil, append(flags, args...)...)
}

// --- Requirement: Replication driven by node scope ---

// A table of scope all gets a copy on every connected node, and writes on
// any node reach all of them.
func TestScopeAllReplicatesEverywhere(t *testing.T) {
	nodes := plMesh(t, meshCerts(t, "a", "b", "c"), "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	b.must("table", "create", "everywhere", "--scope", "all")
	want := map[string]string{}
	for _, n := range nodes {
		n.waitTableHeld("everywhere", true)
		maps.Copy(want, n.plPuts("everywhere", map[string]string{"k-" + n.name: "from " + n.name}))
	}
	plWaitContents(t, "everywhere", want, a, b, c)
	for _, n := range nodes {
		if dirs := n.copyDirs("everywhere"); len(dirs) != 1 {
			t.Errorf("%s: copies of everywhere on disk: %v, want 1", n.name, dirs)
		}
	}
}

// A local table stays on its home: the others list it as not held, refuse
// reads naming the home, have no copy on disk, and never subscribe to it.
func TestScopeLocalHasNoReplicas(t *testing.T) {
	nodes := plMesh(t, meshCerts(t, "a", "b", "c"), "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "loc", "--scope", "local")
	a.must("table", "create", "marker", "--scope", "all")
	for _, n := range []*node{b, c} {
		n.waitTableHeld("marker", true)
		n.waitTableHeld("loc", false) // listed (the catalog replicated), not held
	}
	want := a.plPuts("loc", map[string]string{"k1": "v1", "k2": "v2", "k3": "v3"})
	// The marker, written after the data, has reached b and c: they are
	// caught up with a, and have still not received a byte of loc.
	a.must("put", "marker", "after", "loc")
	b.waitValue("marker", "after", "loc")
	c.waitValue("marker", "after", "loc")
	plWaitContents(t, "loc", want, a)
	for _, n := range []*node{b, c} {
		n.plExpectNotHeld("loc", "a")
		if r := n.cli("scan", "loc"); r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "loc is held on a") {
			t.Errorf("%s: scan loc: exit %d, stdout %q, stderr %q; want exit 1 naming a", n.name, r.code, r.stdout, r.stderr)
		}
		if n.plSubscribedTo("loc") {
			t.Errorf("%s subscribed to loc:\n%s", n.name, n.logs)
		}
	}
	if a.plRefusedFor("loc") {
		t.Errorf("a was asked for loc by a node outside its scope:\n%s", a.logs)
	}
	if held, _ := a.held("loc"); !held || len(a.copyDirs("loc")) != 1 {
		t.Errorf("a, the home: held=%v, copies %v", held, a.copyDirs("loc"))
	}
}

// A list scope puts copies on exactly the listed nodes (not on the node
// that created the table, when it is not listed); when the list changes,
// the copy of a node no longer listed is removed once handed off, and its
// last writes are not lost.
func TestScopeListReplicatesToListedNodes(t *testing.T) {
	nodes := plMesh(t, meshCerts(t, "a", "b", "c"), "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	c.must("table", "create", "pair", "--scope", "a,b")
	a.waitTableHeld("pair", true)
	b.waitTableHeld("pair", true)
	want := a.plPuts("pair", map[string]string{"k1": "a1", "k2": "a2"})
	maps.Copy(want, b.plPuts("pair", map[string]string{"k3": "b3"}))
	plWaitContents(t, "pair", want, a, b)
	c.plExpectNotHeld("pair", "a,b")
	if c.plSubscribedTo("pair") {
		t.Errorf("c subscribed to pair:\n%s", c.logs)
	}

	// A last write on a, then the list drops a (changed on c): a's copy
	// goes, b keeps everything, c still has nothing.
	maps.Copy(want, a.plPuts("pair", map[string]string{"k4": "a4 last"}))
	c.must("table", "scope", "pair", "b", "--yes")
	a.plWaitNoCopy("pair")
	plWaitContents(t, "pair", want, b)
	a.plExpectNotHeld("pair", "b")
	c.plExpectNotHeld("pair", "b")
	if held, _ := b.held("pair"); !held || len(b.copyDirs("pair")) != 1 {
		t.Errorf("b: held=%v, copies %v", held, b.copyDirs("pair"))
	}
}

// local -> all: every node gets a copy with the data; all -> local: every
// copy but the home's is removed, after handing its writes to the home.
func TestScopeChangeTriggersReplicationUpdate(t *testing.T) {
	nodes := plMesh(t, meshCerts(t, "a", "b", "c"), "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "grow", "--scope", "local")
	want := a.plPuts("grow", map[string]string{"k1": "v1", "k2": "v2", "k3": "v3"})
	b.waitTableHeld("grow", false)
	c.waitTableHeld("grow", false)
	b.plExpectNotHeld("grow", "a")

	a.must("table", "scope", "grow", "all")
	b.waitTableHeld("grow", true)
	c.waitTableHeld("grow", true)
	plWaitContents(t, "grow", want, a, b, c)

	// Writes on b and c, acknowledged; at once the scope goes back to
	// local: the home must end up with them, the others with no copy.
	maps.Copy(want, b.plPuts("grow", map[string]string{"kb": "from b"}))
	maps.Copy(want, c.plPuts("grow", map[string]string{"kc": "from c"}))
	a.must("table", "scope", "grow", "local", "--yes")
	b.plWaitNoCopy("grow")
	c.plWaitNoCopy("grow")
	plWaitContents(t, "grow", want, a)
	b.plExpectNotHeld("grow", "a")
	c.plExpectNotHeld("grow", "a")
	if held, _ := a.held("grow"); !held || len(a.copyDirs("grow")) != 1 {
		t.Errorf("a, the home: held=%v, copies %v", held, a.copyDirs("grow"))
	}
}

// --- Requirement: Node join handling ---

// plJoin starts node name (its certificate in certs) with seed as its only
// peer and waits until the whole mesh, others and the new node, is
// connected.
func plJoin(t *testing.T, certs, name string, seed *node, others ...*node) *node {
	t.Helper()
	n := newMeshNode(t, certs, name, seed.meshAddr)
	n.start()
	plWaitFullMesh(append(others, n)...)
	return n
}

// A node that joins later gets a copy of every table of scope all, with
// the writes made on every node before it joined, and its writes reach
// the others.
func TestNewNodeReceivesAllTables(t *testing.T) {
	certs := meshCerts(t, "a", "b", "c", "d")
	nodes := plMesh(t, certs, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "everyone", "--scope", "all")
	a.must("table", "create", "also", "--scope", "all")
	want := map[string]string{}
	for _, n := range nodes {
		n.waitTableHeld("everyone", true)
		maps.Copy(want, n.plPuts("everyone", map[string]string{"k-" + n.name: "from " + n.name}))
	}
	alsoWant := b.plPuts("also", map[string]string{"x": "1"})
	plWaitContents(t, "everyone", want, a, b, c)

	d := plJoin(t, certs, "d", c, a, b, c)
	d.waitTableHeld("everyone", true)
	d.waitTableHeld("also", true)
	plWaitContents(t, "everyone", want, d)
	plWaitContents(t, "also", alsoWant, d)
	for _, tb := range []string{"everyone", "also"} {
		if dirs := d.copyDirs(tb); len(dirs) != 1 {
			t.Errorf("d: copies of %s: %v", tb, dirs)
		}
	}
	maps.Copy(want, d.plPuts("everyone", map[string]string{"k-d": "from d"}))
	plWaitContents(t, "everyone", want, a, b, c, d)
}

// A table whose list names a node that does not exist yet is replicated
// to that node, with its data, when it joins (through another peer); the
// nodes not listed still have no copy.
func TestNewNodeReceivesTablesListingIt(t *testing.T) {
	certs := meshCerts(t, "a", "b", "c", "d")
	nodes := plMesh(t, certs, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "office", "--scope", "a,d", "--allow-unknown")
	want := a.plPuts("office", map[string]string{"k1": "v1", "k2": "v2", "k3": "v3"})
	b.waitTableHeld("office", false)
	c.waitTableHeld("office", false)

	d := plJoin(t, certs, "d", b, a, b, c)
	d.waitTableHeld("office", true)
	plWaitContents(t, "office", want, a, d)
	if dirs := d.copyDirs("office"); len(dirs) != 1 {
		t.Errorf("d: copies of office: %v", dirs)
	}
	maps.Copy(want, d.plPuts("office", map[string]string{"kd": "from d"}))
	plWaitContents(t, "office", want, a, d)
	b.plExpectNotHeld("office", "a,d")
	c.plExpectNotHeld("office", "a,d")
}

// A node that joins later gets no copy of the local tables of the others:
// listed, not held, nothing on disk, never subscribed to.
func TestNewNodeDoesNotReceiveLocalTables(t *testing.T) {
	certs := meshCerts(t, "a", "b", "c", "d")
	nodes := plMesh(t, certs, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "priv_a", "--scope", "local")
	b.must("table", "create", "priv_b", "--scope", "local")
	a.must("table", "create", "pub", "--scope", "all")
	a.plPuts("priv_a", map[string]string{"k1": "a"})
	b.plPuts("priv_b", map[string]string{"k1": "b"})
	c.waitTableHeld("pub", true)
	pubWant := c.plPuts("pub", map[string]string{"k1": "pub"})

	d := plJoin(t, certs, "d", a, a, b, c)
	// d has caught up on the catalog and on pub, a table it holds.
	d.waitTableHeld("pub", true)
	plWaitContents(t, "pub", pubWant, d)
	d.waitTableHeld("priv_a", false)
	d.waitTableHeld("priv_b", false)
	d.plExpectNotHeld("priv_a", "a")
	d.plExpectNotHeld("priv_b", "b")
	for _, tb := range []string{"priv_a", "priv_b"} {
		if d.plSubscribedTo(tb) {
			t.Errorf("d subscribed to %s:\n%s", tb, d.logs)
		}
	}
	if a.plRefusedFor("priv_a") || b.plRefusedFor("priv_b") {
		t.Errorf("a home was asked for its local table:\na:\n%s\nb:\n%s", a.logs, b.logs)
	}
}

// --- Requirement: System table replication ---

// Every node holds the three system tables, follows every peer for each,
// and what is written to them on one node is seen on the others.
func TestSystemTablesReplicateOnMeshSetup(t *testing.T) {
	nodes := plMesh(t, meshCerts(t, "a+admin", "b", "c+admin"), "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	for _, n := range nodes {
		list, err := n.plTables()
		if err != nil {
			t.Fatal(err)
		}
		for _, st := range scope.SystemTables {
			if ti := list[st]; !ti.System || !ti.Held {
				t.Errorf("%s: %s listed as %+v, want a held system table", n.name, st, ti)
			}
			if dirs := n.copyDirs(st); len(dirs) != 1 {
				t.Errorf("%s: copies of %s on disk: %v", n.name, st, dirs)
			}
		}
	}
	// Replicated, not merely present: each node follows each peer's log of
	// each system table.
	for _, n := range nodes {
		for _, st := range scope.SystemTables {
			for _, p := range nodes {
				if p == n {
					continue
				}
				plPoll(t, fmt.Sprintf("%s follows %s for %s", n.name, p.name, st), func() (bool, string) {
					re := regexp.MustCompile(`msg="repl: subscribed" table=` + st + ` peer=` + p.name + ` `)
					return re.MatchString(n.logs.String()), n.logs.String()
				})
			}
		}
	}
	// cortex_identities: added on a, listed on b and c; added on c, on a
	// (admin nodes both); b, a member, may not.
	a.must("identity", "add", "alice")
	c.must("identity", "add", "carol")
	if r := b.cli("identity", "add", "bob"); r.code != 4 || !strings.Contains(r.stderr, "b is a member node: changing identities needs an admin node") {
		t.Errorf("identity add on member b: %+v", r)
	}
	for _, n := range nodes {
		plPoll(t, n.name+" lists alice and carol", func() (bool, string) {
			var ids []store.Identity
			out := n.must("identity", "list", "--json")
			if err := json.Unmarshal([]byte(out), &ids); err != nil {
				return false, err.Error()
			}
			var names []string
			for _, id := range ids {
				names = append(names, id.Name)
			}
			return slices.Contains(names, "alice") && slices.Contains(names, "carol"), out
		})
	}
	// cortex_meta: a table created on b is in the catalog of a and c.
	b.must("table", "create", "cat", "--scope", "local")
	a.waitTableHeld("cat", false)
	c.waitTableHeld("cat", false)
	// cortex_acls: see TestACLChangesPropagateAcrossMesh.
}

// An ACL granted on a is listed on every other node and enforced by their
// mTLS listeners; a revoke on a is enforced there too.
func TestACLChangesPropagateAcrossMesh(t *testing.T) {
	certs := meshCerts(t, "a+admin", "b", "c")
	if err := pki.CreateClientCert(certs, "alice", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	rpc := map[string]string{}
	var nodes []*node
	for _, name := range []string{"a", "b", "c"} {
		var n *node
		if len(nodes) == 0 {
			n = newMeshNode(t, certs, name)
		} else {
			n = newMeshNode(t, certs, name, nodes[0].meshAddr)
		}
		rpc[name] = freeAddr(t)
		n.args = append(n.args, "--rpc-listen", rpc[name])
		n.start()
		n.waitLog(`msg="rpc listening"`)
		nodes = append(nodes, n)
	}
	plWaitFullMesh(nodes...)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "shared", "--scope", "all")
	a.must("put", "shared", "k", "v")
	b.waitValue("shared", "k", "v")
	c.waitValue("shared", "k", "v")

	// Registered on a, no grant yet: b refuses alice for want of a grant
	// (not for want of an identity: that replicated).
	a.must("identity", "add", "alice")
	plPoll(t, "b knows alice but denies her a read", func() (bool, string) {
		r := plRemote(t, rpc["b"], certs, "alice", "get", "shared", "k")
		return r.code == 4 && strings.Contains(r.stderr, "alice may not read table shared"), fmt.Sprintf("%+v", r)
	})

	a.must("acl", "grant", "alice", "shared", "read")
	for _, n := range []*node{b, c} {
		plPoll(t, n.name+" lists alice's grant", func() (bool, string) {
			out := n.must("acl", "list", "--json")
			var grants []store.Grant
			if err := json.Unmarshal([]byte(out), &grants); err != nil {
				return false, err.Error()
			}
			return slices.Contains(grants, store.Grant{Identity: "alice", Table: "shared", Perm: "read"}), out
		})
		plPoll(t, n.name+"'s listener lets alice read", func() (bool, string) {
			r := plRemote(t, rpc[n.name], certs, "alice", "get", "shared", "k")
			return r.code == 0 && r.stdout == "v", fmt.Sprintf("%+v", r)
		})
		// read, not write.
		if r := plRemote(t, rpc[n.name], certs, "alice", "put", "shared", "k", "w"); r.code != 4 {
			t.Errorf("%s: put with a read grant: %+v", n.name, r)
		}
	}

	a.must("acl", "revoke", "alice", "shared")
	for _, n := range []*node{b, c} {
		plPoll(t, n.name+"'s listener denies alice after the revoke", func() (bool, string) {
			r := plRemote(t, rpc[n.name], certs, "alice", "get", "shared", "k")
			return r.code == 4 && strings.Contains(r.stderr, "alice may not read table shared"), fmt.Sprintf("%+v", r)
		})
		if out := n.must("acl", "list", "--json"); strings.Contains(out, `"alice"`) {
			t.Errorf("%s still lists a grant of alice: %s", n.name, out)
		}
	}
}

// --- A fourth node joining a mesh with tables of every kind of scope ---

// d joins a 3-node mesh knowing only b and ends up with exactly the tables
// whose scope selects it (all, "d", "c,d"), each with its data, and none of
// the others (local on a, "a,b"). The "d" table's data was written while
// its scope was "a": a kept its copy as a hand-off until d, the first
// holder, had all of it, then deleted it.
func TestLateJoiningFourthNodeGetsTheRightTables(t *testing.T) {
	certs := meshCerts(t, "a", "b", "c", "d")
	nodes := plMesh(t, certs, "a", "b", "c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "t_all", "--scope", "all")
	a.must("table", "create", "t_local", "--scope", "local")
	a.must("table", "create", "t_ab", "--scope", "a,b")
	a.must("table", "create", "t_d", "--scope", "a")
	a.must("table", "create", "t_cd", "--scope", "c,d", "--allow-unknown")
	want := map[string]map[string]string{
		"t_all":   a.plPuts("t_all", map[string]string{"ka": "a"}),
		"t_local": a.plPuts("t_local", map[string]string{"k": "local"}),
		"t_ab":    a.plPuts("t_ab", map[string]string{"k": "ab"}),
		"t_d":     a.plPuts("t_d", map[string]string{"k1": "d1", "k2": "d2"}),
	}
	b.waitTableHeld("t_all", true)
	maps.Copy(want["t_all"], b.plPuts("t_all", map[string]string{"kb": "b"}))
	c.waitTableHeld("t_cd", true)
	want["t_cd"] = c.plPuts("t_cd", map[string]string{"k": "cd"})
	plWaitContents(t, "t_all", want["t_all"], a, b, c)
	// t_d now belongs to d alone, which does not exist yet: a keeps its copy,
	// draining, since no holder has it.
	a.must("table", "scope", "t_d", "d", "--allow-unknown", "--yes")
	plPoll(t, "a keeps t_d draining", func() (bool, string) {
		list, err := a.plTables()
		ti := list["t_d"]
		return err == nil && ti.Draining && !ti.Held && ti.Keys == 2, fmt.Sprintf("%+v %v", ti, err)
	})

	d := plJoin(t, certs, "d", b, a, b, c)
	wantHeld := append(slices.Clone(scope.SystemTables), "t_all", "t_cd", "t_d")
	slices.Sort(wantHeld)
	plPoll(t, "d holds exactly the tables of its scope", func() (bool, string) {
		got, err := d.plHeldSet()
		return err == nil && slices.Equal(got, wantHeld), fmt.Sprintf("%v %v, want %v", got, err, wantHeld)
	})
	for _, tb := range []string{"t_all", "t_cd", "t_d"} {
		plWaitContents(t, tb, want[tb], d)
	}
	// The hand-off is complete: a deleted its t_d copy.
	a.plWaitNoCopy("t_d")
	// Still exactly those, in the list and on disk.
	if got, err := d.plHeldSet(); err != nil || !slices.Equal(got, wantHeld) {
		t.Errorf("d holds %v (%v), want %v", got, err, wantHeld)
	}
	if got := d.plCopyNames(); !slices.Equal(got, wantHeld) {
		t.Errorf("d's copies on disk: %v, want %v", got, wantHeld)
	}
	d.plExpectNotHeld("t_local", "a")
	d.plExpectNotHeld("t_ab", "a,b")
	for _, tb := range []string{"t_local", "t_ab"} {
		if d.plSubscribedTo(tb) {
			t.Errorf("d subscribed to %s:\n%s", tb, d.logs)
		}
	}
	// The others are unchanged.
	for _, n := range []*node{a, b, c} {
		if slices.Contains(n.plCopyNames(), "t_d") {
			t.Errorf("%s has a copy of t_d: %v", n.name, n.plCopyNames())
		}
	}
	plWaitContents(t, "t_local", want["t_local"], a)
	plWaitContents(t, "t_ab", want["t_ab"], a, b)
	plWaitContents(t, "t_cd", want["t_cd"], c)
}

// --- Scope changes under load ---

// plWriter is a bounded set of writers on one node: each goroutine puts
// its own keys until it made max writes, the time is up, stop is called,
// or a put fails. acked holds every write the node acknowledged.
type plWriter struct {
	n      *node
	stopCh chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
	count  atomic.Int64
	ended  atomic.Bool // every goroutine returned

	mu      sync.Mutex
	acked   map[string]string
	errs    []error
	notHeld bool // a put was refused because the node no longer holds the table
}

func plStartWriters(n *node, table, prefix string, workers, max int, limit time.Duration) *plWriter {
	w := &plWriter{n: n, stopCh: make(chan struct{}), acked: map[string]string{}}
	c := n.client()
	deadline := time.Now().Add(limit)
	for g := range workers {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; i < max && time.Now().Before(deadline); i++ {
				select {
				case <-w.stopCh:
					return
				default:
				}
				k, v := fmt.Sprintf("%s%d-%05d", prefix, g, i), fmt.Sprintf("v%d-%d", g, i)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Put(ctx, table, []byte(k), []byte(v))
				cancel()
				w.mu.Lock()
				var ae *api.Error
				switch {
				case err == nil:
					w.acked[k] = v
				case errors.As(err, &ae) && ae.Code == api.CodeNotHeld:
					w.notHeld = true
				default:
					w.errs = append(w.errs, fmt.Errorf("put %s on %s: %w", k, n.name, err))
				}
				w.mu.Unlock()
				if err != nil {
					return
				}
				w.count.Add(1)
			}
		}()
	}
	go func() { w.wg.Wait(); w.ended.Store(true); c.Close() }()
	return w
}

// stop ends the writers and waits for them.
func (w *plWriter) stop() {
	w.once.Do(func() { close(w.stopCh) })
	w.wg.Wait()
}

// waitCount waits until the writers made at least want writes.
func (w *plWriter) waitCount(t testing.TB, what string, want int64) {
	t.Helper()
	plPoll(t, what, func() (bool, string) {
		if ended := w.ended.Load(); w.count.Load() < want && ended {
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("%s: the writers on %s ended (limit reached or refused) after %d writes: errors %v, refused as not held: %v",
				what, w.n.name, w.count.Load(), w.errs, w.notHeld)
		}
		return w.count.Load() >= want, fmt.Sprintf("%d writes acknowledged on %s", w.count.Load(), w.n.name)
	})
}

// Writers on b, which keeps the table throughout, while the scope changes
// "a,b" -> "b,c" -> "a,b,c"; and a writer on a until a stops holding it.
// Every write either node acknowledged ends up on every node holding the
// table at the end.
func TestScopeChangeUnderWritesLosesNothing(t *testing.T) {
	nodes := plMesh(t, meshCerts(t, "a", "b+admin", "c"), "a", "b", "c") // b, an admin, changes a's table
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.must("table", "create", "hot", "--scope", "a,b")
	b.waitTableHeld("hot", true)
	onB := plStartWriters(b, "hot", "b", 3, 3000, 20*time.Second)
	onA := plStartWriters(a, "hot", "a", 1, 3000, 20*time.Second)
	defer onB.stop()
	defer onA.stop()
	onB.waitCount(t, "writes on b before the first scope change", 100)
	onA.waitCount(t, "writes on a before the first scope change", 20)

	a.must("table", "scope", "hot", "b,c")
	before := onB.count.Load()
	c.waitTableHeld("hot", true)
	a.plWaitNoCopy("hot") // handed off to b or c, then deleted
	onB.waitCount(t, "writes on b during the move to b,c", before+100)
	onA.stop()
	if !onA.notHeld {
		t.Errorf("the writer on a was not refused after the scope change: %d acked, errs %v", len(onA.acked), onA.errs)
	}

	b.must("table", "scope", "hot", "a,b,c")
	before = onB.count.Load()
	a.waitTableHeld("hot", true)
	onB.waitCount(t, "writes on b during the move to a,b,c", before+100)
	onB.stop()
	for _, w := range []*plWriter{onA, onB} {
		if len(w.errs) > 0 {
			t.Fatalf("writes refused on %s: %d, first: %v", w.n.name, len(w.errs), w.errs[0])
		}
	}

	want := maps.Clone(onB.acked)
	maps.Copy(want, onA.acked)
	t.Logf("%d writes acknowledged on b, %d on a", len(onB.acked), len(onA.acked))
	for _, n := range nodes {
		plPoll(t, n.name+" has every acknowledged write", func() (bool, string) {
			got, err := n.plScan("hot")
			missing := plMissing(got, want)
			return err == nil && missing == "", fmt.Sprintf("%v %s\n%s", err, missing, n.logs)
		})
	}
	for _, n := range nodes {
		if dirs := n.copyDirs("hot"); len(dirs) != 1 {
			t.Errorf("%s: copies of hot: %v", n.name, dirs)
		}
	}
}
