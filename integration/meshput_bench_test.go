package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkMeshPut measures durable writes on one node of a mesh of three
// real cortexd processes (fsync=batch, a table of scope all, 14-byte keys,
// 100-byte values): 1 and 64 concurrent callers of one api.Client on a's
// socket, 20,000 writes (or -benchtime Nx: N) each. Every write must then
// reach b and c, within a minute.
//
//	go test -run '^$' -bench BenchmarkMeshPut -benchtime 1x ./integration
func BenchmarkMeshPut(b *testing.B) {
	skipRace(b)
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			n := 20_000
			if b.N > 1 {
				n = min(b.N, 1_000_000)
			}
			na, nb, nc := meshOf3(b)
			benchTable(b, "meshput", na, nb, nc)
			ca := na.client()
			defer ca.Close()
			ctx := context.Background()
			lat := make([][]time.Duration, clients)
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			b.ResetTimer()
			start := time.Now()
			for w := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := int(next.Add(1) - 1)
						if i >= n {
							return
						}
						t0 := time.Now()
						if _, err := ca.Put(ctx, "meshput", benchKey(i), benchValue); err != nil {
							errs <- err
							return
						}
						lat[w] = append(lat[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			close(errs)
			if err := <-errs; err != nil {
				b.Fatal(err)
			}
			want := int64(n + 1) // and the warm-up key
			waitKeys(b, nb, "meshput", want, time.Minute, 20*time.Millisecond)
			waitKeys(b, nc, "meshput", want, time.Minute, 20*time.Millisecond)
			all := slices.Concat(lat...)
			slices.Sort(all)
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(n)/elapsed.Seconds(), "writes/s")
			b.ReportMetric(ms(pct(all, 50)), "p50_ms")
			b.ReportMetric(ms(pct(all, 99)), "p99_ms")
		})
	}
}
