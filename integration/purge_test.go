package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/repair"
)

// replica returns n's view of one node's copy of table in sync status.
func (n *node) replica(table, of string) (repair.Replica, *repair.PurgeStatus) {
	n.t.Helper()
	st := n.syncStatusAny(table)
	for _, ts := range st.Tables {
		for _, r := range ts.Replicas {
			if r.Node == of {
				return r, ts.Purge
			}
		}
	}
	return repair.Replica{}, nil
}

// syncStatusAny is sync status --json whatever its exit code.
func (n *node) syncStatusAny(table string) repair.Status {
	n.t.Helper()
	r := n.cli("sync", "status", "--json", table)
	var st repair.Status
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		n.t.Fatalf("%s: sync status: %v\n%s%s", n.name, err, r.stdout, r.stderr)
	}
	return st
}

// waitTombstones polls until n's copy of table holds want tombstones.
func (n *node) waitTombstones(table string, want int64) {
	n.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, p := n.replica(table, n.name)
		if r.HasCopy && r.Tombstones == want && !r.Rebuilding {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: %d tombstones (rebuilding %v), want %d; purge %+v\n%s", n.name, r.Tombstones, r.Rebuilding, want, p, n.logs)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// noneOf fails if any of keys has a value on n.
func (n *node) noneOf(table string, keys []string) {
	n.t.Helper()
	c := n.client()
	defer c.Close()
	for _, k := range keys {
		rec, err := c.Get(context.Background(), table, []byte(k))
		var ae *api.Error
		if err == nil {
			n.t.Fatalf("%s: deleted key %s came back with %q", n.name, k, rec.Value)
		}
		if !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
			n.t.Fatalf("%s: get %s: %v", n.name, k, err)
		}
	}
}

// Deleted keys are purged on every node once every holder acknowledged
// them and the grace passed, and none comes back: from a node that was
// down across the purge, from one restored from a backup made before the
// deletes, or through a repair.
func TestPurgeNeverResurrects(t *testing.T) {
	a, b, c := meshOf3(t)
	a.must("table", "create", "t", "--scope", "all", "--tombstone-grace", "1s")
	a.must("put", "t", "anchor", "1")
	c.waitValue("t", "anchor", "1")
	b.waitValue("t", "anchor", "1")

	const n = 2000
	keys := make([]string, n)
	cl := a.client()
	defer cl.Close()
	ctx := context.Background()
	for i := range keys {
		keys[i] = fmt.Sprintf("k%05d", i)
		if _, err := cl.Put(ctx, "t", []byte(keys[i]), []byte("value")); err != nil {
			t.Fatal(err)
		}
	}
	c.waitValue("t", keys[n-1], "value")
	// A backup of c's data directory (a file-level copy taken while it is
	// stopped) after the puts, before the deletes.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	withKeys := filepath.Join(t.TempDir(), "c-with-keys")
	if out, err := exec.Command("cp", "-a", c.dir, withKeys).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c.start()
	c.waitPeers("a", "b")
	for _, k := range keys {
		if _, err := cl.Delete(ctx, "t", []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	c.waitValue("t", keys[n-1], "")
	b.waitValue("t", keys[n-1], "")
	// Wait until c has acknowledged every delete to a and b (the horizon is
	// held only by the grace), then stop it: it is down across the purge.
	a.waitState("t", repair.InSync)
	deadline := time.Now().Add(30 * time.Second)
	for since := time.Now(); ; {
		_, p := a.replica("t", "c")
		if p != nil && p.LimitedBy == "the tombstone grace" && len(p.Blocked) == 0 && time.Since(since) > 1500*time.Millisecond {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c's acknowledgements never covered the deletes: %+v", p)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	a.waitTombstones("t", 0)
	b.waitTombstones("t", 0)
	a.noneOf("t", keys)
	b.noneOf("t", keys)

	// c comes back (it had every tombstone): it purges too.
	c.start()
	c.waitTombstones("t", 0)
	for _, x := range []*node{a, b, c} {
		x.noneOf("t", keys)
	}

	// c restored from the backup made before the deletes (it holds every
	// key): it is rebuilt, nothing comes back anywhere.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", withKeys, c.dir).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	c.start()
	c.waitTombstones("t", 0)
	c.waitValue("t", "anchor", "1")
	deadline = time.Now().Add(30 * time.Second)
	for {
		r, _ := c.replica("t", "c")
		if r.Keys == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("c keeps %d keys after its restore, want 1 (anchor): %+v\n%s", r.Keys, r, c.logs)
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
	for _, x := range []*node{a, b, c} {
		x.noneOf("t", keys)
	}

	// A full repair moves nothing back.
	a.must("sync", "repair", "t")
	for _, x := range []*node{a, b, c} {
		x.noneOf("t", keys)
		r, _ := x.replica("t", x.name)
		if r.Tombstones != 0 || r.Keys != 1 {
			t.Fatalf("%s after repair: %d keys, %d tombstones", x.name, r.Keys, r.Tombstones)
		}
	}
}
