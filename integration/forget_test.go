package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/repair"
)

// expectExit runs the CLI on n and fails unless it exits code with msg in
// its stderr.
func (n *node) expectExit(code int, msg string, args ...string) {
	n.t.Helper()
	r := n.cli(args...)
	if r.code != code || !strings.Contains(r.stderr, msg) {
		n.t.Fatalf("cortex %s: exit %d, stderr %q; want exit %d with %q", strings.Join(args, " "), r.code, r.stderr, code, msg)
	}
}

// A holder that never comes back blocks the purge; `cortex node forget`
// on an admin node unblocks it; the forgotten node, back with its old data
// directory, is refused by every node and nothing of it comes back; wiped,
// it rejoins and gets the table without the deleted keys.
func TestNodeForget(t *testing.T) {
	certs := meshCerts(t, "a+admin", "b", "c")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	c := newMeshNode(t, certs, "c", a.meshAddr)
	c.start()
	a.waitPeers("b", "c")
	b.waitPeers("a", "c")
	c.waitPeers("a", "b")

	// A list scope naming c: the name stays in it across the forget.
	a.must("table", "create", "t", "--scope", "a,b,c", "--tombstone-grace", "1s")
	a.must("put", "t", "anchor", "1")
	const n = 50
	keys := make([]string, n)
	for i := range keys {
		keys[i] = fmt.Sprintf("k%03d", i)
		a.must("put", "t", keys[i], "old")
	}
	c.waitValue("t", keys[n-1], "old")
	b.waitValue("t", keys[n-1], "old")

	// c goes down for good; the keys are deleted meanwhile.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	a.waitPeers("b")
	for _, k := range keys {
		a.must("del", "t", k)
	}
	b.waitValue("t", keys[n-1], "")
	plPoll(t, "the purge blocked by c", func() (bool, string) {
		ts := purgeTable(t, a, "t")
		if ts.Purge == nil {
			return false, "no purge status"
		}
		for _, why := range ts.Purge.Blocked {
			if strings.HasPrefix(why, "c ") && tombstonesOn(ts)["a"] == n {
				return true, ""
			}
		}
		return false, fmt.Sprintf("purge %+v, tombstones %v", ts.Purge, tombstonesOn(ts))
	})

	// The refusals, each changing nothing.
	b.expectExit(4, "b is a member node: forgetting node c needs an admin node", "node", "forget", "c", "--yes")
	a.expectExit(2, "add --yes", "node", "forget", "c")
	a.expectExit(1, "this node cannot forget itself", "node", "forget", "a", "--yes")
	a.expectExit(1, "b is connected to this node now", "node", "forget", "b", "--yes")
	a.expectExit(3, "nobody is not a member of the mesh", "node", "forget", "nobody", "--yes")
	if r, _ := a.replica("t", "c"); !r.Desired {
		t.Fatalf("a refused forget changed something: c is no longer expected: %+v", r)
	}

	out := a.must("node", "forget", "c", "--yes")
	for _, want := range []string{"forget node c (incarnation ", "tables whose purge waits for it, and goes on without it: t",
		"tables whose scope names it (the name stays", "forgot c: it is out of the mesh"} {
		if !strings.Contains(out, want) {
			t.Fatalf("node forget said:\n%s\nwant %q", out, want)
		}
	}
	a.expectExit(3, "c is not a member of the mesh", "node", "forget", "c", "--yes")
	var forgotten []map[string]any
	if err := json.Unmarshal([]byte(b.must("node", "forgotten", "--json")), &forgotten); err != nil || len(forgotten) != 1 {
		// b, a member node, reads the list (it is every node's).
		t.Fatalf("b's forgotten list: %v %v", forgotten, err)
	}
	if forgotten[0]["node"] != "c" || forgotten[0]["by"] != "a" {
		t.Fatalf("forgot record %v", forgotten[0])
	}

	// The purge completes on a and b; sync status no longer waits for c.
	a.waitTombstones("t", 0)
	b.waitTombstones("t", 0)
	a.noneOf("t", keys)
	b.noneOf("t", keys)
	ts := a.waitState("t", repair.InSync)
	if !slices.Equal(ts.Forgotten, []string{"c"}) || slices.Contains(ts.Desired, "c") || len(ts.Purge.Blocked) > 0 {
		t.Fatalf("sync status after the forget: forgotten %v, desired %v, purge %+v", ts.Forgotten, ts.Desired, ts.Purge)
	}
	for _, r := range ts.Replicas {
		if r.Node == "c" {
			t.Fatalf("c is still a replica: %+v", r)
		}
	}
	if out := a.must("sync", "status", "t"); !strings.Contains(out, "forgotten (named in the scope, not expected): c") {
		t.Fatalf("sync status text:\n%s", out)
	}
	for _, p := range a.meshPeers() {
		if p.Node == "c" && (!p.Forgotten || p.Connected) {
			t.Fatalf("a's mesh peers show c as %+v", p)
		}
	}

	// Old c comes back with its old data directory: refused by a and b.
	c.start()
	plPoll(t, "c says it was forgotten", func() (bool, string) {
		st := c.nodeStatus()
		return strings.Contains(st.Forgotten, "node c was forgotten by the mesh at"), st.Forgotten
	})
	if st := c.nodeStatus(); !strings.Contains(st.Forgotten, "wipe its data directory and start it again to rejoin") {
		t.Fatal(st.Forgotten)
	}
	if out := c.must("node", "status"); !strings.Contains(out, "FORGOTTEN") {
		t.Fatalf("node status text:\n%s", out)
	}
	plPoll(t, "c's mesh peers say a and b refused it", func() (bool, string) {
		refused := 0
		for _, p := range c.meshPeers() {
			if (p.Node == "a" || p.Node == "b") && !p.Connected && strings.HasPrefix(p.Refused, "forgotten: ") {
				refused++
			}
		}
		return refused == 2, fmt.Sprintf("%+v", c.meshPeers())
	})
	a.waitLog("refused a node the mesh forgot")
	b.waitLog("refused a node the mesh forgot")
	c.waitLog("a peer refused this node: the mesh forgot it")
	for _, x := range []*node{a, b} {
		if x.connectedPeers()["c"] {
			t.Fatalf("%s is connected to the forgotten c", x.name)
		}
		x.noneOf("t", keys)
		if r, _ := x.replica("t", x.name); r.Keys != 1 || r.Tombstones != 0 {
			t.Fatalf("%s after old c's return: %d keys, %d tombstones", x.name, r.Keys, r.Tombstones)
		}
	}
	if got := c.must("get", "t", keys[0]); !strings.Contains(got, "old") {
		t.Fatalf("old c's own copy: %q", got) // it keeps its data; nobody takes it
	}

	// c wiped and started again: a new incarnation, it rejoins and gets
	// the table by snapshot, without the deleted keys.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}
	c.start()
	c.waitPeers("a", "b")
	c.waitValue("t", "anchor", "1")
	c.waitTombstones("t", 0)
	plPoll(t, "the new c holds only the anchor", func() (bool, string) {
		r, _ := c.replica("t", "c")
		return r.Keys == 1 && !r.Rebuilding, fmt.Sprintf("%+v", r)
	})
	for _, x := range []*node{a, b, c} {
		x.noneOf("t", keys)
	}
	if st := c.nodeStatus(); st.Forgotten != "" {
		t.Fatalf("the wiped c is refused: %s", st.Forgotten)
	}
	ts = a.waitState("t", repair.InSync)
	if len(ts.Forgotten) != 0 || !slices.Contains(ts.Desired, "c") {
		t.Fatalf("sync status with the new c: forgotten %v, desired %v", ts.Forgotten, ts.Desired)
	}
}
