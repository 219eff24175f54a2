package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/repair"
)

// TestPartitionDuringDeletes writes 10,000 keys on a 3-node table with a 1 s
// grace, cuts c off by a real partition (its link down in its network
// namespace) while a deletes them; meanwhile c writes and deletes keys of
// its own and writes again some of the keys a deletes, before or after a's
// delete. The purge stays blocked by c while it is cut off (a and b keep
// every tombstone); after the heal every copy converges to what
// last-write-wins decides key by key, the tombstones purge to 0 on every
// node, and no deleted key comes back, nor after `cortex sync repair`.
func TestPartitionDuringDeletes(t *testing.T) {
	nt := newNetTopo(t, "a", "b", "c") // before the nodes: its cleanup runs after theirs
	certs := meshCerts(t, "a", "b", "c")
	a := nt.meshNode(certs, "a")
	a.start()
	b := nt.meshNode(certs, "b", a.meshAddr)
	b.start()
	c := nt.meshNode(certs, "c", a.meshAddr)
	c.start()
	a.waitPeers("b", "c")
	b.waitPeers("a", "c")
	c.waitPeers("a", "b")

	const n, contested = 10_000, 40
	a.must("table", "create", "gone", "--scope", "all", "--tombstone-grace", "1s")
	start := time.Now()
	purgeKeys(t, a, "gone", "k", n, false)
	b.waitState("gone", repair.InSync)
	t.Logf("%d keys written and replicated in %s", n, time.Since(start).Round(time.Millisecond))

	nt.setLink("c", false)
	c.waitPeers()
	a.waitPeers("b")
	b.waitPeers("a")

	// What every node must hold in the end: the live keys by LWW.
	want := map[string]string{}
	deletes := n - contested
	for i := range contested {
		k := fmt.Sprintf("k%05d", i)
		var put, del version
		if i%2 == 0 { // c writes first, a deletes after
			put = c.putJSON("gone", k, "c-again")
			del = a.delJSON("gone", k)
		} else {
			del = a.delJSON("gone", k)
			put = c.putJSON("gone", k, "c-again")
		}
		deletes++
		if put.newer(del) {
			want[k] = "c-again"
		}
	}
	start = time.Now()
	purgeRange(t, a, "gone", "k", contested, n, true)
	t.Logf("%d deletes on a during the partition in %s", n-contested, time.Since(start).Round(time.Millisecond))
	for i := range 20 {
		k := fmt.Sprintf("c-own-%02d", i)
		c.must("put", "gone", k, k)
		if i < 5 {
			c.must("del", "gone", k)
		} else {
			want[k] = k
		}
	}
	if len(want) < 15+contested/2-5 {
		t.Fatalf("c's writes after a's deletes lost LWW: only %d live keys expected (the clocks?)", len(want))
	}

	// The purge is blocked by c while it is cut off.
	deleted := time.Now()
	plPoll(t, "purge blocked by c once the grace has passed", func() (bool, string) {
		ts := purgeTable(t, a, "gone")
		tombs := tombstonesOn(ts)
		if tombs["a"] != int64(deletes) {
			t.Fatalf("a holds %d tombstones, want %d: purged while c had not seen the deletes? %+v", tombs["a"], deletes, ts.Purge)
		}
		p := ts.Purge
		if p == nil {
			return false, "no purge status"
		}
		why := p.LimitedBy + strings.Join(p.Blocked, "; ")
		return strings.Contains(why, "c") && time.Since(deleted) > 3*time.Second, why
	})
	if tombs := tombstonesOn(purgeTable(t, b, "gone")); tombs["b"] != int64(deletes) {
		t.Fatalf("b's tombstones during the partition: %v, want %d", tombs, deletes)
	}
	if r := c.cli("get", "gone", "k09999"); r.code != 0 {
		t.Fatalf("c lost k09999 during the partition: %+v", r)
	}

	nt.setLink("c", true)
	healed := time.Now()
	a.waitPeers("b", "c")
	b.waitPeers("a", "c")
	c.waitPeers("a", "b")
	waitValues(t, "every copy holds what LWW decides", "gone", want, a, b, c)
	t.Logf("converged %s after the heal", time.Since(healed).Round(time.Millisecond))
	plPoll(t, "tombstones purged to 0 on every node", func() (bool, string) {
		ts := purgeTable(t, a, "gone")
		tombs := tombstonesOn(ts)
		return len(tombs) == 3 && tombs["a"]+tombs["b"]+tombs["c"] == 0, fmt.Sprintf("%v %+v", tombs, ts.Purge)
	})
	t.Logf("purged everywhere %s after the heal", time.Since(healed).Round(time.Millisecond))
	for _, x := range []*node{a, b, c} {
		if k := scanCount(t, x, "gone"); k != len(want) {
			t.Fatalf("%s: %d live keys, want %d: deleted keys came back", x.name, k, len(want))
		}
	}

	a.must("sync", "repair", "gone")
	a.waitState("gone", repair.InSync)
	waitValues(t, "the same after a repair", "gone", want, a, b, c)
	for _, x := range []*node{a, b, c} {
		for _, k := range []string{"k00042", "k09999", "c-own-00"} {
			if r := x.cli("get", "gone", k); r.code != 3 {
				t.Fatalf("%s: %s is back after the repair: %+v", x.name, k, r)
			}
		}
	}
}
