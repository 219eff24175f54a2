package repl

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
)

// sent sums the log entries every node sent of table, and the skipped.
func (c *cluster) sent(table string) (sent, skipped int) {
	for _, n := range c.nodes {
		st := n.repl.Stats()[table]
		sent += st.EntriesSent
		skipped += st.EntriesSkipped
	}
	return sent, skipped
}

// meshWithTable starts n nodes (a, b, ...) on memnet with a table t of
// scope all, every subscription of it up.
func meshWithTable(t *testing.T, count int) (*cluster, []*tnode) {
	t.Helper()
	cl := newCluster(t, "memnet")
	var nodes []*tnode
	for i := range count {
		nodes = append(nodes, cl.add(string(rune('a'+i)), true))
	}
	cl.waitReady()
	if _, err := nodes[0].store.CreateTable(context.Background(), "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, n.name+" to follow every peer's t", func() bool {
			up := 0
			for _, s := range n.repl.SubscriptionStates() {
				if s.Table.Name == "t" && s.Up {
					up++
				}
			}
			return up == count-1
		})
	}
	return cl, nodes
}

// has reports whether n's copy of t holds key with the value.
func (n *tnode) has(key, value string) bool {
	tb, err := n.store.Table("t")
	if err != nil {
		return false
	}
	r, err := tb.Get([]byte(key))
	return err == nil && string(r.Value) == value
}

// One write at a time on a full mesh of 3 and of 8 nodes: each is sent
// about n-1 times, not n(n-1). The bound is 2(n-1): the origin sends it to
// the n-1 others (eager push), and each of them sends it back to the
// origin, which never claims its own writes (a node restored from an older
// copy of its data cannot know which it lost); a third node is not sent it
// again, since it claims it from the origin's own stream first (the
// publisher holds the relay until that claim arrives).
func TestFullMeshSendsEachWriteAboutOnce(t *testing.T) {
	for _, n := range []int{3, 8} {
		t.Run(fmt.Sprintf("%d nodes", n), func(t *testing.T) {
			cl, nodes := meshWithTable(t, n)
			// Each relay waits for the subscriber's claim, however slow
			// the machine: the count is then the protocol's, not the
			// scheduler's (the claims come, every link being up).
			for _, x := range nodes {
				x.repl.hold.Store(int64(time.Minute))
			}
			const writes = 24
			// Warm up: one write from each node, so every claim exists.
			for _, w := range nodes {
				w.put(t, "t", "warm-"+w.name, 1)
			}
			waitSame(t, "t", nodes...)
			// Each entry is in every node's log once, and each log decides
			// it for n-1 subscribers.
			waitFor(t, "every warm-up entry to be sent or skipped on every link", func() bool { s, k := cl.sent("t"); return s+k >= n*n*(n-1) })
			before, skippedBefore := cl.sent("t")
			for i := range writes {
				w := nodes[i%n]
				w.put(t, "t", fmt.Sprintf("w%02d", i), 1)
				key := fmt.Sprintf("w%02d-000", i)
				for _, o := range nodes {
					waitFor(t, key+" on "+o.name, func() bool { return o.has(key, w.name) })
				}
			}
			// Every relay has been decided once every entry is reported
			// (sent or skipped) to every subscriber.
			total := func() int { s, k := cl.sent("t"); return s + k - before - skippedBefore }
			waitFor(t, "every entry to be sent or skipped on every link", func() bool {
				return total() >= writes*n*(n-1)
			})
			after, skipped := cl.sent("t")
			got := after - before
			t.Logf("%d nodes: %d writes sent %d times (%.2f per write; bound 2(n-1) = %d, before the change n(n-1) = %d), %d relays skipped",
				n, writes, got, float64(got)/writes, 2*(n-1), n*(n-1), skipped-skippedBefore)
			if got > writes*2*(n-1) {
				t.Fatalf("%d sends for %d writes: more than 2(n-1) = %d per write", got, writes, 2*(n-1))
			}
			if got < writes*(n-1) {
				t.Fatalf("%d sends for %d writes: fewer than n-1 per write, yet every node has them", got, writes)
			}
		})
	}
}

// The direct link to the origin breaks after relays were skipped: what c
// was not sent by b it had from a; what a writes after the cut reaches c
// through b (c no longer follows a, so b sends it), and c's writes reach a.
func TestRelayAfterTheDirectLinkBreaks(t *testing.T) {
	cl, nodes := meshWithTable(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.put(t, "t", "before", 20)
	waitSame(t, "t", a, b, c)
	waitFor(t, "b to skip relaying a's writes to c", func() bool { return b.repl.Stats()["t"].EntriesSkipped > 0 })
	cl.mem.Cut("a", "c")
	a.put(t, "t", "after", 20)
	c.put(t, "t", "c", 20)
	got := waitSame(t, "t", a, b, c)
	for _, k := range []string{"before-019=a@", "after-000=a@", "after-019=a@", "c-019=c@"} {
		if !strings.Contains(got, k) {
			t.Fatalf("%s missing after the cut: %s", k, got)
		}
	}
	cl.mem.HealAll()
	a.put(t, "t", "healed", 5)
	waitSame(t, "t", a, b, c)
}

// A chain a-b-c (no a-c link): each end's writes cross each link once
// towards the other end, and once back to their origin from its
// neighbour; nothing more.
func TestChainSendsEachWriteOncePerLink(t *testing.T) {
	cl := newCluster(t, "memnet")
	a, b, c := cl.add("a", true), cl.add("b", true), cl.add("c", true)
	cl.mem.Cut("a", "c")
	if _, err := a.store.CreateTable(context.Background(), "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "c to hold t", func() bool { _, err := c.store.Table("t"); return err == nil })
	for _, n := range []*tnode{a, c} {
		waitFor(t, n.name+" to follow b's t", func() bool { _, up := subUp(n, "t", "b"); return up })
	}
	waitFor(t, "b to follow a and c", func() bool {
		_, ua := subUp(b, "t", "a")
		_, uc := subUp(b, "t", "c")
		return ua && uc
	})
	// c's relay of a's writes back to b is held until b claims them from
	// a, however slow the machine (as in the full mesh).
	for _, x := range []*tnode{a, b, c} {
		x.repl.hold.Store(int64(time.Minute))
	}
	// Warm up: a write from each end, so that b's claims for both exist
	// (before its first claim for an origin, a relay of it is not held).
	for _, w := range []*tnode{a, c} {
		w.put(t, "t", "warm-"+w.name, 1)
	}
	waitSame(t, "t", a, b, c)
	waitFor(t, "every warm-up entry decided on every link", func() bool { s, k := cl.sent("t"); return s+k >= 2*4 })
	before, skippedBefore := cl.sent("t")
	const writes = 20
	for i := range writes {
		w := []*tnode{a, c}[i%2]
		w.put(t, "t", fmt.Sprintf("w%02d", i), 1)
		key := fmt.Sprintf("w%02d-000", i)
		for _, o := range []*tnode{a, b, c} {
			waitFor(t, key+" on "+o.name, func() bool { return o.has(key, w.name) })
		}
	}
	// Each write is in three logs; a and c publish to b only, b to both.
	waitFor(t, "every entry decided on every link", func() bool { s, k := cl.sent("t"); return s+k-before-skippedBefore >= writes*4 })
	sent, _ := cl.sent("t")
	// origin -> b, b -> the other end, b -> origin (its own back): 3.
	if got := sent - before; got != 3*writes {
		t.Fatalf("%d sends for %d writes in a chain, want 3 per write", got, writes)
	}
	got := waitSame(t, "t", a, b, c)
	if !strings.Contains(got, "w00-000=a@") || !strings.Contains(got, "w19-000=c@") {
		t.Fatalf("the chain did not carry both ends' writes: %s", got)
	}
}

// A node away for long (its links all cut) while the others write, and
// writing itself: when it is back every copy has every write.
func TestRelayAfterALongAbsence(t *testing.T) {
	cl, nodes := meshWithTable(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.put(t, "t", "a0", 10)
	waitSame(t, "t", a, b, c)
	cl.mem.Isolate("c")
	a.put(t, "t", "a1", 300)
	b.put(t, "t", "b1", 300)
	c.put(t, "t", "c1", 50)
	cl.mem.HealAll()
	got := waitSame(t, "t", a, b, c)
	for _, k := range []string{"a0-009=a@", "a1-299=a@", "b1-299=b@", "c1-049=c@"} {
		if !strings.Contains(got, k) {
			t.Fatalf("%s missing after the absence", k)
		}
	}
}

// A node restored from a copy of its data directory made before some of
// its own writes: the others hold those writes and send them back (a node
// never claims its own writes), whatever it writes after the restore.
func TestRelayAfterARestoreThatLostOwnWrites(t *testing.T) {
	cl, nodes := meshWithTable(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	c.put(t, "t", "early", 10)
	waitSame(t, "t", a, b, c)
	stop := func(n *tnode) {
		cl.mem.Isolate(n.name)
		n.repl.Close()
		if err := n.store.Close(); err != nil {
			t.Fatal(err)
		}
	}
	stop(c)
	backup := t.TempDir()
	if err := os.CopyFS(backup, os.DirFS(c.dir)); err != nil {
		t.Fatal(err)
	}
	c = cl.addDir("c", true, c.dir)
	cl.mem.HealAll()
	c.put(t, "t", "lost", 20) // c's own writes after the backup
	waitFor(t, "a and b to have c's writes", func() bool { return a.has("lost-019", "c") && b.has("lost-019", "c") })
	waitSame(t, "t", a, b, c)
	stop(c)
	if err := os.RemoveAll(c.dir); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(c.dir, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	c = cl.addDir("c", true, c.dir)
	if c.has("lost-000", "c") {
		t.Fatal("the restored copy still has the writes made after the backup")
	}
	c.put(t, "t", "after", 5) // its clock moved on: newer than the lost ones
	cl.mem.HealAll()
	got := waitSame(t, "t", a, b, c)
	for _, k := range []string{"early-009=c@", "lost-000=c@", "lost-019=c@", "after-004=c@"} {
		if !strings.Contains(got, k) {
			t.Fatalf("%s missing after the restore: %s", k, got)
		}
	}
}

// The wire stays compatible: a subscriber that asks for no filtering (an
// older node) is sent every entry in plain batches; one that claims the
// origin's writes gets the relay frame, then a filtered batch that covers
// the same offsets without them.
func TestRelayOldSubscriberGetsEverything(t *testing.T) {
	_, nodes := meshWithTable(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.put(t, "t", "k", 5)
	waitSame(t, "t", a, b, c)
	tb, err := b.store.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	info, err := b.store.Info("t")
	if err != nil {
		t.Fatal(err)
	}
	_, last := tb.Bounds()
	old := request{Version: version, Table: "t", TableID: info.ID, LogID: tb.LogID(), From: 1}
	frames, err := askRepl(t, c, b, old, frameBatch)
	if err != nil || len(frames) != 2 || frames[0].Type != frameStart || len(frames[1].Entries) != int(last) {
		t.Fatalf("an old subscriber got %+v (%v), want the start and a batch of all %d entries", frames, err, last)
	}
	filtered := old
	filtered.Relay, filtered.Have = true, map[string]Claim{"a": {HLC: ^uint64(0)}}
	frames, err = askRepl(t, c, b, filtered, frameFiltered)
	if err != nil || len(frames) != 3 || frames[0].Type != frameRelay || frames[1].Type != frameStart ||
		len(frames[2].Entries) != 0 || frames[2].Offset != 1 || frames[2].Span != last {
		t.Fatalf("a filtering subscriber got %+v (%v), want Y, L, and F covering 1..%d with no entries", frames, err, last)
	}
}
