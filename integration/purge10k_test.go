package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/repair"
)

// purgeKeys writes (or deletes, value nil) keys prefix0..prefixN-1 through
// n's socket with a few workers, bounded by a deadline.
func purgeKeys(t *testing.T, n *node, table, prefix string, count int, del bool) {
	t.Helper()
	purgeRange(t, n, table, prefix, 0, count, del)
}

// purgeRange writes (or deletes) keys prefix%05d for from <= i < to.
func purgeRange(t *testing.T, n *node, table, prefix string, from, to int, del bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := n.client()
	defer c.Close()
	const workers = 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + w; i < to; i += workers {
				k := []byte(fmt.Sprintf("%s%05d", prefix, i))
				var err error
				if del {
					_, err = c.Delete(ctx, table, k)
				} else {
					_, err = c.Put(ctx, table, k, []byte("value-of-a-key-that-will-be-deleted"))
				}
				if err != nil {
					errs <- fmt.Errorf("%s %s: %w", n.name, k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// scanCount counts the live keys of table on n (every page).
func scanCount(t *testing.T, n *node, table string) int {
	t.Helper()
	c := n.client()
	defer c.Close()
	total := 0
	var after []byte
	for range 10_000 { // bounded: pages of 1000 over at most 10M keys
		r, err := c.Scan(context.Background(), api.ScanRequest{Table: table, After: after, Limit: 1000})
		if err != nil {
			t.Fatalf("%s: scan %s: %v", n.name, table, err)
		}
		total += len(r.Records)
		if !r.More || len(r.Records) == 0 {
			return total
		}
		after = r.Records[len(r.Records)-1].Key
	}
	t.Fatalf("%s: scan %s does not end", n.name, table)
	return 0
}

// purgeTable is table's line in sync status on from.
func purgeTable(t *testing.T, from *node, table string) repair.TableStatus {
	t.Helper()
	st := from.syncStatus(table)
	if len(st.Tables) != 1 {
		t.Fatalf("%s: sync status %s: %+v", from.name, table, st)
	}
	return st.Tables[0]
}

// tombstonesOn reports every holder's tombstone count as from sees it.
func tombstonesOn(ts repair.TableStatus) map[string]int64 {
	out := map[string]int64{}
	for _, r := range ts.Replicas {
		if r.HasCopy {
			out[r.Node] = r.Tombstones
		}
	}
	return out
}

// checkpointSize is the size of the newest checkpoint of table's copy on n.
func checkpointSize(t *testing.T, n *node, table string) int64 {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(n.dir, "tables", table+"*", "checkpoint-*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no checkpoint of %s (%v)", n.name, table, err)
	}
	fi, err := os.Stat(files[len(files)-1])
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// waitPurged polls until every node of nodes reports 0 tombstones and 0 keys
// for table, and every live key scan on each node is empty.
func waitPurged(t *testing.T, table string, nodes ...*node) {
	t.Helper()
	plPoll(t, "tombstones purged on every node", func() (bool, string) {
		ts := purgeTable(t, nodes[0], table)
		tombs := tombstonesOn(ts)
		if len(tombs) != len(nodes) {
			return false, fmt.Sprintf("copies %v, purge %+v", tombs, ts.Purge)
		}
		for _, v := range tombs {
			if v != 0 {
				return false, fmt.Sprintf("tombstones %v, purge %+v", tombs, ts.Purge)
			}
		}
		for _, r := range ts.Replicas {
			if r.Keys != 0 {
				return false, fmt.Sprintf("%s has %d keys", r.Node, r.Keys)
			}
		}
		return true, ""
	})
}

// TestPurge10kDeletes deletes 10,000 keys on a 3-node table with a 1 s
// grace: a node down during the deletes blocks the purge (the others keep
// their tombstones and sync status names it); once it is back every copy
// purges to 0 tombstones and an empty checkpoint, and no deleted key
// reappears anywhere, nor after a full `cortex sync repair`. (A node down
// across a purge and a restored backup: TestPurgeNeverResurrects.)
func TestPurge10kDeletes(t *testing.T) {
	a, b, c := meshOf3(t)
	a.must("table", "create", "gone", "--scope", "all", "--tombstone-grace", "1s")
	const n = 10_000
	purgeKeys(t, a, "gone", "k", n, false)
	b.waitState("gone", repair.InSync)

	// Round 1: c is down while the keys are deleted.
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
	purgeKeys(t, a, "gone", "k", n, true)
	deleted := time.Now()
	// a made the deletes: it holds all n tombstones at once. b may still
	// be receiving them (its count only rises, unless something purges).
	var bSeen int64
	plPoll(t, "purge blocked by c once the grace has passed", func() (bool, string) {
		ts := purgeTable(t, a, "gone")
		tombs := tombstonesOn(ts)
		if tombs["a"] != n || tombs["b"] < bSeen {
			t.Fatalf("tombstones purged while c had not seen the deletes: %v (b had %d)", tombs, bSeen)
		}
		bSeen = tombs["b"]
		p := ts.Purge
		if p == nil {
			return false, "no purge status"
		}
		why := p.LimitedBy + strings.Join(p.Blocked, "; ")
		// The grace (1 s) is past the deletes, so only c holds it back.
		return bSeen == n && strings.Contains(why, "c") && p.GraceS == 1 && time.Since(deleted) > 2*time.Second, why
	})
	if tombs := tombstonesOn(purgeTable(t, b, "gone")); tombs["a"] != n || tombs["b"] != n {
		t.Fatalf("tombstones purged while c was down: %v", tombs)
	}
	c.start()
	waitPurged(t, "gone", a, b, c)
	for _, x := range []*node{a, b, c} {
		if k := scanCount(t, x, "gone"); k != 0 {
			t.Fatalf("%s: %d deleted keys came back", x.name, k)
		}
	}
	// A purge checkpoints: the newest checkpoint holds no record. 10,000
	// tombstones take at least 10,000 × (a 6-byte key + a 12-byte version)
	// = 180 kB; an empty view a few hundred bytes.
	for _, x := range []*node{a, b, c} {
		if s := checkpointSize(t, x, "gone"); s > 18*n/10 {
			t.Fatalf("%s: checkpoint after the purge is %d bytes", x.name, s)
		}
	}

	a.must("sync", "repair", "gone")
	a.waitState("gone", repair.InSync)
	for _, x := range []*node{a, b, c} {
		if k := scanCount(t, x, "gone"); k != 0 {
			t.Fatalf("%s: %d deleted keys came back after the repair", x.name, k)
		}
		if v := x.cli("get", "gone", "k00042"); v.code != 3 {
			t.Fatalf("%s: get of a purged key: exit %d %s", x.name, v.code, v.stdout)
		}
	}
	if tombs := tombstonesOn(purgeTable(t, c, "gone")); tombs["a"]+tombs["b"]+tombs["c"] != 0 {
		t.Fatalf("tombstones after the repair: %v", tombs)
	}
}
