package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// forgeCursors makes a stopped node believe it has applied, of a table,
// every entry of a stopped peer's log up to its end: entries it never got
// will not flow to it. The way to make two copies diverge without a network
// partition.
func (n *node) forgeCursors(table string, peer *node) {
	n.t.Helper()
	info, err := peer.walInfo(table)
	if err != nil {
		n.t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]tables.Cursor{peer.name: {LogID: info.ID, Offset: info.Last}})
	if err := os.WriteFile(filepath.Join(n.copyDir(table), "cursors"), b, 0o600); err != nil {
		n.t.Fatal(err)
	}
}

func (n *node) copyDir(table string) string {
	n.t.Helper()
	dirs := n.copyDirs(table)
	if len(dirs) != 1 {
		n.t.Fatalf("%s: copies of %s: %v", n.name, table, dirs)
	}
	return dirs[0]
}

// walInfo reads a stopped node's log of a table, read-only.
func (n *node) walInfo(table string) (*wal.LogInfo, error) {
	r, err := wal.OpenReader(filepath.Join(n.copyDir(table), "wal"))
	if err != nil {
		return nil, err
	}
	return r.Inspect()
}

// Two nodes each hold writes the other lacks and replication will not
// bring them (diverged); repair keeps both sets; --dry-run changes nothing.
func TestRepairKeepsBothSides(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	a.waitPeers("b")
	a.must("table", "create", "t", "--scope", "all")
	a.must("put", "t", "shared", "1")
	b.waitValue("t", "shared", "1")
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		a.must("put", "t", fmt.Sprintf("a-%02d", i), "from a")
	}
	a.must("put", "t", "shared", "2") // b deletes it later: the delete wins
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	b.start() // alone: a is down
	for i := range 30 {
		b.must("put", "t", fmt.Sprintf("b-%02d", i), "from b")
	}
	b.must("del", "t", "shared")
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	a.forgeCursors("t", b)
	b.forgeCursors("t", a)
	a.start()
	b.start()
	a.waitPeers("b")
	ts := a.waitState("t", repair.Diverged)
	if ts.InSync {
		t.Fatalf("diverged but in_sync: %+v", ts)
	}

	var dry repair.Report
	if err := json.Unmarshal([]byte(a.must("sync", "repair", "t", "--dry-run", "--json")), &dry); err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || dry.InSync || len(dry.Moved) == 0 {
		t.Fatalf("dry run: %+v", dry)
	}
	if got := a.waitState("t", repair.Diverged); got.Replicas[0].Digest != ts.Replicas[0].Digest {
		t.Fatalf("--dry-run changed a copy: %+v -> %+v", ts, got)
	}

	var rep repair.Report
	if err := json.Unmarshal([]byte(a.must("sync", "repair", "t", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.InSync || len(rep.Holders) != 2 {
		t.Fatalf("repair: %+v", rep)
	}
	moved := map[string]int{}
	for _, m := range rep.Moved {
		moved[m.Node] = m.Keys
	}
	if moved["a"] != 31 || moved["b"] != 50 { // b's 30 keys + its delete; a's 50 keys
		t.Fatalf("moved %v, want a:31 b:50", moved)
	}
	a.waitState("t", repair.InSync)
	for _, n := range []*node{a, b} {
		n.waitValue("t", "a-49", "from a")
		n.waitValue("t", "b-29", "from b")
		n.waitValue("t", "shared", "") // b's delete is the later write
	}
	if out := b.must("sync", "repair", "t"); !strings.Contains(out, "in sync") {
		t.Fatalf("second repair: %s", out)
	}
}

// A holder whose copy was deleted while it was stopped rebuilds it on its
// own at start (snapshot from a holder); repair then finds it in sync.
func TestLostCopyIsRebuilt(t *testing.T) {
	a, b, c := meshOf3(t)
	a.must("table", "create", "t", "--scope", "all")
	for i := range 100 {
		a.must("put", "t", fmt.Sprintf("k%03d", i), "v")
	}
	b.waitValue("t", "k099", "v")
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(b.copyDirs("t")[0]); err != nil {
		t.Fatal(err)
	}
	b.start()
	b.waitValue("t", "k099", "v")
	b.waitValue("t", "k000", "v")
	c.waitState("t", repair.InSync)
	var rep repair.Report
	if err := json.Unmarshal([]byte(b.must("sync", "repair", "t", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if !rep.InSync || len(rep.Holders) != 3 {
		t.Fatalf("repair after rebuild: %+v", rep)
	}
}
