package integration

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
)

// BenchmarkRepair measures `cortex sync repair` of a 1,000,000-key table
// (100-byte values) of which 1% of the keys differ on one of two nodes,
// against the bytes of a full copy. The nodes run --fsync=never to load the
// table quickly; the repair itself does not depend on fsync.
//
//	go test -run '^$' -bench Repair -benchtime 1x -timeout 30m ./integration
func BenchmarkRepair(b *testing.B) {
	skipRace(b)
	const keys, differ, valueSize = 1_000_000, 10_000, 100
	certs := meshCerts(b, "a", "b")
	na := newMeshNode(b, certs, "a")
	na.args = append(na.args, "--fsync", "never")
	na.start()
	nb := newMeshNode(b, certs, "b", na.meshAddr)
	nb.args = append(nb.args, "--fsync", "never")
	nb.start()
	na.waitPeers("b")
	na.must("table", "create", "big", "--scope", "all")
	value := make([]byte, valueSize)
	write := func(c *api.Client, from, to int, tag byte) {
		var next atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		for range 64 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v := append([]byte{tag}, value[1:]...)
				for {
					i := next.Add(1) - 1
					if i >= int64(to) {
						return
					}
					if _, err := c.Put(context.Background(), "big", fmt.Appendf(nil, "key-%010d", i), v); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	ca := na.client()
	defer ca.Close()
	start := time.Now()
	write(ca, 0, keys, 'a')
	b.Logf("loaded %d keys in %s", keys, time.Since(start))
	waitKeys(b, nb, "big", keys, 5*time.Minute, 100*time.Millisecond)
	b.Logf("b has them after %s", time.Since(start))
	if err := nb.stop(); err != nil {
		b.Fatal(err)
	}
	write(ca, 0, differ, 'z') // 1% of the keys change while b is away
	if err := na.stop(); err != nil {
		b.Fatal(err)
	}
	nb.forgeCursors("big", na) // b believes it has all of a's log: diverged
	na.start()
	nb.start()
	na.waitPeers("b")

	b.ResetTimer()
	t0 := time.Now()
	rep, err := ca.SyncRepair(context.Background(), "big", false)
	elapsed := time.Since(t0)
	b.StopTimer()
	if err != nil || !rep.InSync {
		b.Fatalf("repair: %+v %v", rep, err)
	}
	moved, keysMoved := 0, 0
	for _, m := range rep.Moved {
		moved += m.Bytes
		keysMoved += m.Keys
	}
	full := keys * (len("key-0000000000") + valueSize + 12 + 1)
	b.ReportMetric(elapsed.Seconds(), "repair_s")
	b.ReportMetric(float64(moved), "bytes_moved")
	b.ReportMetric(100*float64(moved)/float64(full), "pct_of_full_copy")
	b.ReportMetric(float64(keysMoved), "keys_adopted")
	b.Logf("repair: %+v", rep)
}
