package integration

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/repair"
)

// meshNames are the node names of meshOfN, in order: a, b, c, ...
const meshNames = "abcdefghijklmnopqrstuvwxyz"

// meshOfN starts n nodes named a, b, c, ...: a alone, every other one with
// a as its only --peer (they find each other through the membership records
// a hands them). extra is added to every node's arguments. It waits up to
// limit until every node is connected to every other.
func meshOfN(t testing.TB, n int, limit time.Duration, extra ...string) []*node {
	t.Helper()
	if n < 1 || n > len(meshNames) {
		t.Fatalf("meshOfN: %d nodes, want 1 to %d", n, len(meshNames))
	}
	names := strings.Split(meshNames[:n], "")
	certs := meshCerts(t, names...)
	nodes := make([]*node, 0, n)
	for i, name := range names {
		var nd *node
		if i == 0 {
			nd = newMeshNode(t, certs, name)
		} else {
			nd = newMeshNode(t, certs, name, nodes[0].meshAddr)
		}
		nd.args = append(nd.args, extra...)
		nd.start()
		nodes = append(nodes, nd)
	}
	waitFullMesh(t, limit, nodes...)
	return nodes
}

// pollUntil calls cond until it reports true, failing the test with cond's
// last description after limit.
func pollUntil(t testing.TB, limit time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		ok, desc := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s: %s", what, limit, desc)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// missingPeers names the nodes of want, other than self, that peers does
// not show as connected ("" if none).
func missingPeers(self string, peers map[string]bool, want []string) string {
	var miss []string
	for _, w := range want {
		if w != self && !peers[w] {
			miss = append(miss, w)
		}
	}
	return strings.Join(miss, ",")
}

// waitFullMesh waits up to limit until each node is connected to every
// other (mesh peers over the Go client).
func waitFullMesh(t testing.TB, limit time.Duration, nodes ...*node) {
	t.Helper()
	var names []string
	for _, n := range nodes {
		names = append(names, n.name)
	}
	pollUntil(t, limit, fmt.Sprintf("a full mesh of %d nodes", len(nodes)), func() (bool, string) {
		var lacking []string
		for _, n := range nodes {
			peers, err := n.peerSet()
			if err != nil {
				lacking = append(lacking, fmt.Sprintf("%s: %v", n.name, err))
				continue
			}
			if miss := missingPeers(n.name, peers, names); miss != "" {
				lacking = append(lacking, n.name+" lacks "+miss)
			}
		}
		return len(lacking) == 0, strings.Join(lacking, "; ")
	})
}

// peerSet is the set of peers n shows as connected.
func (n *node) peerSet() (map[string]bool, error) {
	c := n.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	peers, err := c.MeshPeers(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range peers {
		if p.Connected {
			out[p.Node] = true
		}
	}
	return out, nil
}

// inSyncEverywhere reports whether n's sync status of table says in sync
// with every node of want holding an equal copy, and else what it shows.
func inSyncEverywhere(n *node, table string, want []string) (bool, string) {
	c := n.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := c.SyncStatus(ctx, table)
	if err != nil {
		return false, err.Error()
	}
	if len(st.Tables) != 1 {
		return false, fmt.Sprintf("%d tables in the status", len(st.Tables))
	}
	ts := st.Tables[0]
	holders := map[string]string{}
	for _, r := range ts.Replicas {
		if r.HasCopy && r.Reachable {
			holders[r.Node] = r.Digest
		}
	}
	digests := slices.Compact(slices.Sorted(maps.Values(holders)))
	ok := ts.State == repair.InSync && ts.InSync && len(holders) == len(want) && len(digests) == 1
	for _, w := range want {
		_, has := holders[w]
		ok = ok && has
	}
	return ok, fmt.Sprintf("state %s, %d holders reached of %d, %d distinct digests", ts.State, len(holders), len(want), len(digests))
}

// The acceptance test for larger meshes: 16 real cortexd processes
// (built with -race under go test -race) start and form a full mesh; a
// table of scope all written on four of them converges on all 16 (the same
// scan everywhere, sync status in sync); a node stopped while writes go on
// catches up after its restart and the mesh is in sync again.
func TestSixteenNodeMesh(t *testing.T) {
	const (
		size    = 16
		perNode = 25
		limit   = 2 * time.Minute
	)
	start := time.Now()
	nodes := meshOfN(t, size, limit)
	names := make([]string, size)
	for i, n := range nodes {
		names[i] = n.name
	}
	t.Logf("%d nodes started and fully connected in %s", size, time.Since(start).Round(time.Millisecond))

	const table = "sixteen"
	nodes[0].must("table", "create", table, "--scope", "all")
	for _, n := range nodes {
		pollUntil(t, limit, n.name+" holds "+table, func() (bool, string) {
			list, err := n.plTables()
			return err == nil && list[table].Held, fmt.Sprintf("%+v (%v)", list[table], err)
		})
	}
	want := map[string]string{}
	put := func(n *node, round int) {
		t.Helper()
		c := n.client()
		defer c.Close()
		for i := range perNode {
			k, v := fmt.Sprintf("r%d-%s-%02d", round, n.name, i), fmt.Sprintf("from %s, round %d", n.name, round)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.Put(ctx, table, []byte(k), []byte(v))
			cancel()
			if err != nil {
				t.Fatalf("put %s on %s: %v", k, n.name, err)
			}
			want[k] = v
		}
	}
	converged := func(what string, nodes ...*node) {
		t.Helper()
		for _, n := range nodes {
			pollUntil(t, limit, n.name+": "+what, func() (bool, string) {
				got, err := n.plScan(table)
				return err == nil && maps.Equal(got, want),
					fmt.Sprintf("%v: %d keys of %d: %s", err, len(got), len(want), plMissing(got, want))
			})
		}
		pollUntil(t, limit, "sync status in sync: "+what, func() (bool, string) { return inSyncEverywhere(nodes[0], table, names) })
	}

	writers := []*node{nodes[0], nodes[5], nodes[10], nodes[15]}
	for _, n := range writers {
		put(n, 1)
	}
	converged("round 1", nodes...)
	t.Logf("round 1 (%d keys from %d writers) converged on all %d after %s", len(want), len(writers), size, time.Since(start).Round(time.Millisecond))

	// h misses writes while it is down, and finds the mesh from its
	// membership records when it comes back.
	h := nodes[7]
	if err := h.stop(); err != nil {
		t.Fatalf("stop %s: %v\n%s", h.name, err, h.logs)
	}
	h.args = removePeers(h.args)
	for _, n := range []*node{nodes[3], nodes[12]} {
		put(n, 2)
	}
	others := slices.Delete(slices.Clone(nodes), 7, 8)
	for _, n := range others {
		pollUntil(t, limit, n.name+": round 2 without "+h.name, func() (bool, string) {
			got, err := n.plScan(table)
			return err == nil && maps.Equal(got, want), fmt.Sprintf("%v: %d keys of %d", err, len(got), len(want))
		})
	}
	h.start()
	waitFullMesh(t, limit, nodes...)
	converged("after "+h.name+" restarted", nodes...)
	// And it stays so: a last write from the restarted node reaches all.
	put(h, 3)
	converged("round 3 from "+h.name, nodes...)
	t.Logf("%d keys the same on all %d nodes after the restart of %s; %s in all", len(want), size, h.name, time.Since(start).Round(time.Millisecond))
}
