package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// held reports whether `cortex table list` on n says it holds table.
func (n *node) held(table string) (held, listed bool) {
	n.t.Helper()
	var list []struct {
		Name string `json:"name"`
		Held bool   `json:"held"`
	}
	if err := json.Unmarshal([]byte(n.must("table", "list", "--json")), &list); err != nil {
		n.t.Fatal(err)
	}
	for _, ti := range list {
		if ti.Name == table {
			return ti.Held, true
		}
	}
	return false, false
}

func (n *node) waitTableHeld(table string, want bool) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		held, listed := n.held(table)
		if listed && held == want {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: table %s held=%v listed=%v, want held=%v\n%s", n.name, table, held, listed, want, n.logs)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// copyDirs lists the directories of a table's copies in a node's data dir.
func (n *node) copyDirs(table string) []string {
	m, _ := filepath.Glob(filepath.Join(n.dir, "tables", table+"-*"))
	return m
}

// Scope change [a,b] -> [b,c]: c gets a copy with every key, a hands its
// copy off and deletes it only once a holder has all of it; no write is lost.
func TestScopeChangeMovesCopies(t *testing.T) {
	a, b, c := meshOf3(t)
	a.must("table", "create", "t", "--scope", "a,b")
	b.waitTableHeld("t", true)
	c.waitTableHeld("t", false)
	for _, k := range []string{"k1", "k2", "k3"} {
		a.must("put", "t", k, "v-"+k)
	}
	b.waitValue("t", "k3", "v-k3")
	if r := c.cli("get", "t", "k1"); r.code == 0 {
		t.Fatalf("c, outside the scope, answered a read: %+v", r)
	}

	a.must("table", "scope", "t", "b,c")
	c.waitTableHeld("t", true)
	for _, k := range []string{"k1", "k2", "k3"} {
		c.waitValue("t", k, "v-"+k)
	}
	a.waitTableHeld("t", false)
	deadline := time.Now().Add(30 * time.Second)
	for len(a.copyDirs("t")) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("a still has its copy after the hand-off: %v\n%s", a.copyDirs("t"), a.logs)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	if len(c.copyDirs("t")) != 1 {
		t.Fatalf("c copy dirs: %v", c.copyDirs("t"))
	}
	if _, err := os.Stat(b.dir); err != nil {
		t.Fatal(err)
	}
}
