package repl

import (
	"context"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
)

// subUp reports whether n has a subscription to peer for table, and
// whether its stream is up.
func subUp(n *tnode, table, peer string) (exists, up bool) {
	for _, s := range n.repl.SubscriptionStates() {
		if s.Table.Name == table && s.Peer == peer {
			return true, s.Up
		}
	}
	return false, false
}

// A new holder gets a table by snapshot: the publisher counts one sent, the
// subscriber one received; the subscription is up while the link is, down
// (still wanted) while it is cut, and up again once it heals.
func TestSnapshotCountsAndSubscriptionStates(t *testing.T) {
	cl := newCluster(t, "memnet")
	a, b := cl.add("a", true), cl.add("b", true)
	cl.waitReady()
	if _, err := a.store.CreateTable(context.Background(), "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	a.put(t, "t", "k", 10)
	waitSame(t, "t", a, b)
	waitFor(t, "b's subscription to a for t to be up", func() bool { _, up := subUp(b, "t", "a"); return up })
	// The snapshot's records are applied before its end frame is read, and
	// a counts its snapshot after sending it: both counters can lag the
	// copy by a moment, so wait for them, then check there was one.
	waitFor(t, "b to count a's snapshot and a to count sending it", func() bool {
		return b.repl.Stats()["t"].SnapshotsReceived > 0 && a.repl.Stats()["t"].SnapshotsSent > 0
	})
	if got := b.repl.Stats()["t"].SnapshotsReceived; got != 1 {
		t.Fatalf("b received %d snapshots of t, want 1", got)
	}
	if got := a.repl.Stats()["t"].SnapshotsSent; got != 1 {
		t.Fatalf("a sent %d snapshots of t, want 1", got)
	}
	// a follows b too, from no cursor: it gets b's copy as a snapshot.
	waitFor(t, "a to receive b's snapshot of t", func() bool { return a.repl.Stats()["t"].SnapshotsReceived == 1 })
	cl.mem.Cut("a", "b")
	waitFor(t, "b's subscription to a to be gone or down", func() bool { _, up := subUp(b, "t", "a"); return !up })
	cl.mem.HealAll()
	waitFor(t, "b's subscription to a to be up again", func() bool { _, up := subUp(b, "t", "a"); return up })
	// Resumed from b's cursor: no second snapshot.
	if got := b.repl.Stats()["t"].SnapshotsReceived; got != 1 {
		t.Fatalf("b received %d snapshots of t after the heal, want still 1", got)
	}
}
