package integration

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/repair"
)

// copyDir copies a stopped node's data directory as an operator would
// (cp -a: modes, times, every file).
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v: %s", from, to, err, out)
	}
}

// values is a table's live keys and values on n.
func (n *node) values(table string) map[string]string {
	n.t.Helper()
	_, recs := n.scanJSON(table)
	out := make(map[string]string, len(recs))
	for k, r := range recs {
		out[k] = r.Value
	}
	return out
}

// waitValues polls until every node holds exactly want in table.
func waitValues(t *testing.T, what, table string, want map[string]string, nodes ...*node) {
	t.Helper()
	plPoll(t, what, func() (bool, string) {
		var diffs []string
		for _, n := range nodes {
			got := n.values(table)
			if !maps.Equal(got, want) {
				var d []string
				for k, v := range want {
					if got[k] != v {
						d = append(d, fmt.Sprintf("%s=%q (want %q)", k, got[k], v))
					}
				}
				for k := range got {
					if _, ok := want[k]; !ok {
						d = append(d, k+" is back")
					}
				}
				if len(d) > 6 {
					d = append(d[:6], fmt.Sprintf("... %d more", len(d)-6))
				}
				diffs = append(diffs, fmt.Sprintf("%s: %d keys, want %d: %s", n.name, len(got), len(want), strings.Join(d, ", ")))
			}
		}
		return len(diffs) == 0, strings.Join(diffs, "; ")
	})
}

// A node's data directory is copied while it is stopped; the node runs on,
// writes and deletes (its peers acknowledge all of it, and the deletes are
// purged); then it is stopped and the old copy put back, and it writes new
// keys while its peers are down, so that its log grows past what they had
// acknowledged of it. When they come back it finds out from their cursors
// that the copy is behind what they acknowledged and gives its log a new
// id: every peer gets the writes made after the restore (with the old id
// they would have skipped the offsets they had acknowledged), the node gets
// back the acknowledged writes the restore took from it, and no deleted key
// comes back, nor after a repair.
func TestRestoredByCopyingFiles(t *testing.T) {
	a, b, c := meshOf3(t)
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range []*node{a, b, c} {
				t.Logf("%s's log:\n%s", n.name, n.logs)
			}
		}
	})
	a.must("table", "create", "t", "--scope", "all", "--tombstone-grace", "1s")
	want := map[string]string{}
	for i := range 20 {
		k := fmt.Sprintf("base-%02d", i)
		want[k] = "base"
		a.must("put", "t", k, "base")
	}
	for i := range 10 {
		a.must("put", "t", fmt.Sprintf("del-%02d", i), "old")
	}
	b.waitValue("t", "del-09", "old")
	c.waitValue("t", "del-09", "old")

	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	saved := a.dir + ".copy"
	copyDir(t, a.dir, saved)
	t.Cleanup(func() { os.RemoveAll(saved) })
	a.start()
	a.waitPeers("b", "c")

	// Written after the copy: the peers acknowledge it, the deletes purge.
	for i := range 30 {
		k := fmt.Sprintf("after-%02d", i)
		want[k] = "after"
		a.must("put", "t", k, "after")
	}
	a.must("put", "t", "base-00", "changed")
	want["base-00"] = "changed"
	for i := range 10 {
		a.must("del", "t", fmt.Sprintf("del-%02d", i))
	}
	waitValues(t, "the writes after the copy on every node", "t", want, a, b, c)
	plPoll(t, "the deletes purged on every node", func() (bool, string) {
		tombs := tombstonesOn(purgeTable(t, a, "t"))
		return len(tombs) == 3 && tombs["a"]+tombs["b"]+tombs["c"] == 0, fmt.Sprintf("%v", tombs)
	})

	// The peers go down, the old copy goes back, and a writes before they
	// return: its log grows past the offsets they acknowledged.
	for _, n := range []*node{b, c, a} {
		if err := n.stop(); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.RemoveAll(a.dir); err != nil {
		t.Fatal(err)
	}
	copyDir(t, saved, a.dir)
	a.start()
	for i := range 60 {
		k := fmt.Sprintf("new-%02d", i)
		want[k] = "new"
		a.must("put", "t", k, "new")
	}
	b.start()
	c.start()
	waitValues(t, "every node has the writes made after the restore, the acknowledged ones the restore took, no deleted key", "t", want, a, b, c)
	a.waitLog(`this copy of t is behind what [bc] acknowledged \(offset \d+ > last \d+\): the data directory was restored from a copy; new log id [0-9a-f]{32}`)
	a.waitState("t", repair.InSync)

	a.must("sync", "repair", "t")
	a.waitState("t", repair.InSync)
	waitValues(t, "the same after a repair", "t", want, a, b, c)
	for _, n := range []*node{a, b, c} {
		if r := n.cli("get", "t", "del-03"); r.code != 3 {
			t.Fatalf("%s: a deleted key is back: %+v", n.name, r)
		}
	}
}
