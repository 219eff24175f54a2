package api

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// BenchmarkSocketPut measures durable writes through the Unix socket: b.N
// puts of 100-byte values spread over C client connections, each put
// acknowledged only once it is fsynced. It reports writes/s and the
// latency percentiles of acknowledged writes.
func BenchmarkSocketPut(b *testing.B) {
	for _, fsync := range []string{"batch", "never"} {
		for _, conns := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("fsync=%s/conns=%d", fsync, conns), func(b *testing.B) {
				benchSocketPut(b, conns, fsync == "never")
			})
		}
	}
}

func benchSocketPut(b *testing.B, conns int, noSync bool) {
	ctx := context.Background()
	_, c := newTestServer(b, tables.Options{NoSync: noSync, CheckpointEvery: -1})
	if _, err := c.CreateTable(ctx, "bench", scope.Scope{Local: true}, Overrides{}); err != nil {
		b.Fatal(err)
	}
	putLoad(b, c, conns)
}

// putLoad makes b.N puts of 100-byte values into table bench over conns
// concurrent calls of c, timed between b.ResetTimer and b.StopTimer, and
// reports writes/s, the latency percentiles of acknowledged writes and the
// CPU time the process (client and server) used per write. It returns how
// long the puts took.
func putLoad(b *testing.B, c *Client, conns int) time.Duration {
	ctx := context.Background()
	value := make([]byte, 100)
	lat := make([][]time.Duration, conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				t0 := time.Now()
				if _, err := c.Put(ctx, "bench", fmt.Appendf(nil, "key-%09d", i), value); err != nil {
					b.Error(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(percentile(all, 50).Microseconds()), "p50_us")
	b.ReportMetric(float64(percentile(all, 99).Microseconds()), "p99_us")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_us/write")
	return elapsed
}

// processCPU is the user and system CPU time this process has used: on a
// shared machine a steadier measure of a write's cost than its rate.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}
