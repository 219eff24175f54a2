package tables_test

// Benchmarks of a table copy: durable local writes (group commit), remote
// apply, and startup (checkpoint load and log replay) with the memory the
// view costs per key. Results and the exact commands are in
// docs/benchmarks.md. Typical runs:
//
//	go test -run '^$' -bench 'BenchmarkPut' -benchtime 20000x ./tables
//	go test -run '^$' -bench 'BenchmarkApply' -benchtime 500000x ./tables
//	go test -run '^$' -bench 'BenchmarkStartup1M' -benchtime 1x -timeout 30m ./tables
//
// BenchmarkStartup1M builds a 1,000,000-key table (about 130 MB of log and a
// 120 MB checkpoint in the temporary directory, a few GB of allocation, tens
// of seconds) and is skipped with -short.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

const benchValueSize = 100

var benchValue = func() []byte {
	v := make([]byte, benchValueSize)
	for i := range v {
		v[i] = 'a' + byte(i%26)
	}
	return v
}()

// benchKey is the i-th key of a benchmark: 14 bytes, unique per i.
func benchKey(prefix string, i int) []byte {
	return fmt.Appendf(nil, "%s%010d", prefix, i)
}

var benchQuiet = slog.New(slog.NewTextHandler(discardWriter{}, nil))

type discardWriter struct{}

func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// benchOpen opens a fresh table in a new temporary directory.
func benchOpen(b *testing.B, opts tables.Options) *tables.Table {
	b.Helper()
	if opts.Name == "" {
		opts.Name = "bench"
	}
	if opts.Node == "" {
		opts.Node = "n1"
	}
	opts.Logger = benchQuiet
	t, err := tables.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	return t
}

// benchReportLatency sorts d in place and reports its p50 and p99 in µs.
func benchReportLatency(b *testing.B, d []time.Duration, prefix string) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		i := int(p * float64(len(d)-1))
		return float64(d[i].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), prefix+"p50_us")
	b.ReportMetric(pct(0.99), prefix+"p99_us")
}

// BenchmarkPut measures acknowledged local writes of 100-byte values to a
// fresh table: b.N writes in total, split across the concurrent writers.
// writes/s is the rate of acknowledged (with fsync=batch: durable) writes;
// p50_us and p99_us are the latency of one Put call.
func BenchmarkPut(b *testing.B) {
	for _, mode := range []struct {
		name   string
		noSync bool
	}{{"fsync=batch", false}, {"fsync=never", true}} {
		b.Run(mode.name, func(b *testing.B) {
			for _, writers := range []int{1, 16, 64} {
				b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
					benchPut(b, mode.noSync, writers)
				})
			}
		})
	}
}

func benchPut(b *testing.B, noSync bool, writers int) {
	t := benchOpen(b, tables.Options{NoSync: noSync})
	defer t.Close()
	ctx := context.Background()

	// Split b.N across the writers and make every key before the clock runs.
	keys := make([][][]byte, writers)
	lat := make([][]time.Duration, writers)
	for w := range writers {
		n := b.N / writers
		if w < b.N%writers {
			n++
		}
		keys[w] = make([][]byte, n)
		for i := range n {
			keys[w][i] = benchKey(fmt.Sprintf("w%02d-", w), i)
		}
		lat[w] = make([]time.Duration, 0, n)
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	b.ReportAllocs()
	b.SetBytes(benchValueSize)
	b.ResetTimer()
	start := time.Now()
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, k := range keys[w] {
				t0 := time.Now()
				if _, err := t.Put(ctx, k, benchValue); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if first != nil {
		b.Fatal(first)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	benchReportLatency(b, slices.Concat(lat...), "")
}

// BenchmarkApply measures the remote apply rate: batches of 256 entries
// stamped with another node's versions, applied with fsync=batch. b.N counts
// entries. keys=new applies to keys the table does not hold; keys=existing
// overwrites keys that hold an older version (LWW check, replace and two
// digest updates per key). With callers=4 four peers apply concurrently and
// the writer may join their batches under one fsync.
func BenchmarkApply(b *testing.B) {
	for _, c := range []struct {
		name     string
		existing bool
		callers  int
	}{
		{"keys=new/callers=1", false, 1},
		{"keys=new/callers=4", false, 4},
		{"keys=existing/callers=1", true, 1},
	} {
		b.Run(c.name, func(b *testing.B) { benchApply(b, c.existing, c.callers) })
	}
}

const benchApplyBatch = 256

func benchApply(b *testing.B, existing bool, callers int) {
	t := benchOpen(b, tables.Options{})
	defer t.Close()
	ctx := context.Background()
	base := tables.HLC(time.Now().UnixMilli(), 0)

	// batches[c] is caller c's list of 256-entry batches; keys never repeat
	// across callers, so every entry is adopted.
	mk := func(c, i int, hlc uint64) wal.Entry {
		return wal.Entry{
			Op: wal.OpPut, Key: benchKey(fmt.Sprintf("c%d-", c), i), Value: benchValue,
			Version: wal.Version{HLC: hlc, Origin: "peer-2"},
		}
	}
	batches := make([][][]wal.Entry, callers)
	for c := range callers {
		n := b.N / callers
		if c < b.N%callers {
			n++
		}
		for i := 0; i < n; i += benchApplyBatch {
			batch := make([]wal.Entry, 0, benchApplyBatch)
			for j := i; j < min(i+benchApplyBatch, n); j++ {
				batch = append(batch, mk(c, j, base+uint64(1_000_000+j)))
			}
			batches[c] = append(batches[c], batch)
		}
	}
	if existing {
		// Older versions of the same keys, from a third node, in big batches.
		for c := range callers {
			var pre []wal.Entry
			for _, batch := range batches[c] {
				for _, e := range batch {
					e.Version = wal.Version{HLC: base, Origin: "peer-3"}
					pre = append(pre, e)
					if len(pre) == 4096 {
						if _, err := t.Apply(ctx, pre); err != nil {
							b.Fatal(err)
						}
						pre = pre[:0]
					}
				}
			}
			if _, err := t.Apply(ctx, pre); err != nil && len(pre) > 0 {
				b.Fatal(err)
			}
		}
	}
	lat := make([][]time.Duration, callers)
	adopted := make([]int, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, batch := range batches[c] {
				t0 := time.Now()
				n, err := t.Apply(ctx, batch)
				if err != nil {
					errs[c] = err
					return
				}
				lat[c] = append(lat[c], time.Since(t0))
				adopted[c] += n
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	total := 0
	for _, n := range adopted {
		total += n
	}
	if total != b.N {
		b.Fatalf("adopted %d of %d entries", total, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
	benchReportLatency(b, slices.Concat(lat...), "batch_")
}

// startupResult caches BenchmarkStartup1M's measurements: the build is far
// too heavy to repeat when the framework calls the benchmark again with a
// larger b.N, so every call after the first reports the same numbers.
type startupResult struct {
	keys     int
	build    time.Duration
	open     time.Duration
	overhead float64 // heap bytes per key beyond user key + value
	heap     float64 // heap bytes per key, total
	disk     int64   // bytes on disk after the build
}

var (
	startupMu    sync.Mutex
	startupCache = map[string]startupResult{}
)

// BenchmarkStartup1M measures Open of a table holding 1,000,000 keys of
// 100-byte values, recovered from its checkpoint (as after a clean Close),
// and of 100,000 keys recovered by replaying the log only (no checkpoint).
// It reports startup_s (time of Open), overhead_bytes/key (live heap the
// open table holds per key, after GC, minus the average key + value size),
// heap_bytes/key and build_s (building the table with NoSync + Close, not
// timed). It runs once whatever b.N is; -benchtime 1x avoids a second call.
// Cost: the 1M case takes roughly half a minute and a few GB of allocation.
func BenchmarkStartup1M(b *testing.B) {
	if testing.Short() {
		b.Skip("heavy: builds a 1,000,000-key table")
	}
	b.Run("recovery=checkpoint/keys=1000000", func(b *testing.B) { benchStartup(b, 1_000_000, true) })
	b.Run("recovery=wal-replay/keys=100000", func(b *testing.B) { benchStartup(b, 100_000, false) })
}

func benchHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func benchStartup(b *testing.B, keys int, checkpoint bool) {
	name := b.Name()
	startupMu.Lock()
	res, done := startupCache[name]
	startupMu.Unlock()
	if !done {
		res = benchStartupRun(b, keys, checkpoint)
		startupMu.Lock()
		startupCache[name] = res
		startupMu.Unlock()
	}
	// ns/op is the time of one Open whatever b.N is (0 would hide it).
	b.ReportMetric(float64(res.open.Nanoseconds()), "ns/op")
	b.ReportMetric(res.open.Seconds(), "startup_s")
	b.ReportMetric(res.overhead, "overhead_bytes/key")
	b.ReportMetric(res.heap, "heap_bytes/key")
	b.ReportMetric(res.build.Seconds(), "build_s")
	b.ReportMetric(float64(res.disk)/float64(res.keys), "disk_bytes/key")
}

func benchStartupRun(b *testing.B, keys int, checkpoint bool) startupResult {
	b.StopTimer()
	dir := b.TempDir()
	opts := tables.Options{Name: "bench", Node: "n1", Logger: benchQuiet, NoSync: true, CheckpointEvery: -1}
	if !checkpoint {
		opts.Retention = 1 << 40 // keep the whole log behind the checkpoint
	}
	res := startupResult{keys: keys}

	// Build: local-looking records (origin n1, increasing HLCs) applied in
	// big batches, which is much faster than a Put per key.
	t0 := time.Now()
	t, err := tables.Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	base := tables.HLC(time.Now().UnixMilli(), 0)
	var keyBytes int
	batch := make([]wal.Entry, 0, 4096)
	for i := range keys {
		k := benchKey("key-", i)
		keyBytes += len(k)
		batch = append(batch, wal.Entry{Op: wal.OpPut, Key: k, Value: benchValue,
			Version: wal.Version{HLC: base + uint64(i), Origin: "n1"}})
		if len(batch) == cap(batch) || i == keys-1 {
			if _, err := t.Apply(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = make([]wal.Entry, 0, 4096)
		}
	}
	if err := t.Close(); err != nil { // writes the checkpoint
		b.Fatal(err)
	}
	if !checkpoint {
		ck, _ := filepath.Glob(filepath.Join(dir, "checkpoint-*"))
		if len(ck) == 0 {
			b.Fatal("no checkpoint written by Close")
		}
		for _, p := range ck {
			if err := os.Remove(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	res.build = time.Since(t0)
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			res.disk += fi.Size()
		}
		return nil
	})
	batch = nil
	kv := float64(keyBytes)/float64(keys) + benchValueSize

	// Measure: heap before and after Open, each after GC.
	before := benchHeap()
	b.StartTimer()
	start := time.Now()
	opts.NoSync = false
	t, err = tables.Open(dir, opts)
	res.open = time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	after := benchHeap()
	if st := t.Stats(); st.Keys != int64(keys) {
		b.Fatalf("reopened table holds %d keys, want %d", st.Keys, keys)
	}
	res.heap = (float64(after) - float64(before)) / float64(keys)
	res.overhead = res.heap - kv
	runtime.KeepAlive(t)
	if err := t.Close(); err != nil {
		b.Fatal(err)
	}
	return res
}
