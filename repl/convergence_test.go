package repl

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
)

// put writes n keys prefix-0..n-1 on node n's copy of table.
func (n *tnode) put(t *testing.T, table, prefix string, count int) {
	t.Helper()
	tb, err := n.store.Table(table)
	if err != nil {
		t.Fatal(err)
	}
	for i := range count {
		if _, err := tb.Put(context.Background(), []byte(fmt.Sprintf("%s-%03d", prefix, i)), []byte(n.name)); err != nil {
			t.Fatal(err)
		}
	}
}

// waitSame waits until every node holds the same contents of table, and
// returns them.
func waitSame(t *testing.T, table string, nodes ...*tnode) string {
	t.Helper()
	var got string
	waitFor(t, "the copies of "+table+" to converge", func() bool {
		got = nodes[0].contents(table)
		for _, n := range nodes[1:] {
			if n.contents(table) != got {
				return false
			}
		}
		return got != ""
	})
	return got
}

// Three nodes in memory: the link a-c is cut while all three write; the
// copies converge once it heals, every write present (each key was written
// on one node only, so none replaces another).
func TestConvergeAfterACutLinkHeals(t *testing.T) {
	cl := newCluster(t, "memnet")
	a, b, c := cl.add("a", true), cl.add("b", true), cl.add("c", true)
	cl.waitReady()
	if _, err := a.store.CreateTable(context.Background(), "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to hold t", func() bool { _, err := c.store.Table("t"); return err == nil })
	cl.mem.Cut("a", "c")
	cl.mem.Isolate("b") // a and c are now apart in every way
	a.put(t, "t", "a", 50)
	c.put(t, "t", "c", 50)
	b.put(t, "t", "b", 50)
	if a.contents("t") == c.contents("t") {
		t.Fatal("a and c agree while apart")
	}
	cl.mem.HealAll()
	got := waitSame(t, "t", a, b, c)
	for _, prefix := range []string{"a", "b", "c"} {
		for i := range 50 {
			if want := fmt.Sprintf("%s-%03d=%s@", prefix, i, prefix); !strings.Contains(got, want) {
				t.Fatalf("%s missing after the heal", want)
			}
		}
	}
}

// A chain a-b-c without an a-c link: a's writes reach c through b (b logs
// what it adopts and publishes it on), and c's reach a.
func TestChainWithoutADirectLink(t *testing.T) {
	cl := newCluster(t, "memnet")
	a, b, c := cl.add("a", true), cl.add("b", true), cl.add("c", true)
	cl.mem.Cut("a", "c")
	if _, err := a.store.CreateTable(context.Background(), "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to hold t", func() bool { _, err := c.store.Table("t"); return err == nil })
	a.put(t, "t", "a", 20)
	c.put(t, "t", "c", 20)
	got := waitSame(t, "t", a, b, c)
	if !strings.Contains(got, "a-019=a@") || !strings.Contains(got, "c-019=c@") {
		t.Fatalf("the chain did not carry both ends' writes: %s", got)
	}
	for _, n := range []*tnode{a, c} {
		for _, s := range n.repl.Subscriptions() {
			if s.Peer != "b" {
				t.Errorf("%s follows %s without a link to it", n.name, s.Peer)
			}
		}
	}
}
