package integration

import (
	"context"
	"strings"
	"testing"
	"time"
)

// meshOf3 starts a, b and c; b and c join through a.
func meshOf3(t testing.TB, extra ...string) (a, b, c *node) {
	t.Helper()
	nodes := meshOfN(t, 3, 30*time.Second, extra...)
	return nodes[0], nodes[1], nodes[2]
}

// waitValue polls a node until key holds want ("" = absent).
func (n *node) waitValue(table, key, want string) {
	n.t.Helper()
	c := n.client()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec, err := c.Get(context.Background(), table, []byte(key))
		got := ""
		if err == nil {
			got = string(rec.Value)
		}
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: %s/%s = %q (%v), want %q\n%s", n.name, table, key, got, err, want, n.logs)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// A write on any node is readable on the others; deletes propagate; a table
// created on one node appears on the others through cortex_meta.
func TestReplicationThreeNodes(t *testing.T) {
	a, b, c := meshOf3(t)
	a.must("table", "create", "fruit", "--scope", "all")
	a.must("put", "fruit", "apple", "red")
	b.waitValue("fruit", "apple", "red")
	c.waitValue("fruit", "apple", "red")
	c.must("put", "fruit", "banana", "yellow")
	a.waitValue("fruit", "banana", "yellow")
	b.waitValue("fruit", "banana", "yellow")
	b.must("del", "fruit", "apple")
	a.waitValue("fruit", "apple", "")
	c.waitValue("fruit", "apple", "")
	if out := c.must("table", "list"); !strings.Contains(out, "fruit") {
		t.Fatalf("c does not list fruit: %s", out)
	}
}
