package wal_test

// Benchmarks of the disk under the log. Results and the exact commands are
// in docs/benchmarks.md. Typical run:
//
//	go test -run '^$' -bench 'BenchmarkFsync' -benchtime 5000x ./wal

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/wal"
	twal "github.com/tidwall/wal"
)

const (
	benchEntrySize = 100 // bytes per entry (raw write, tidwall payload, or value)
	benchBatch     = 64  // entries per batch
)

// benchReportLatency sorts d in place and reports its p50 and p99 in µs.
func benchReportLatency(b *testing.B, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	pct := func(p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50_us")
	b.ReportMetric(pct(0.99), "p99_us")
}

// BenchmarkFsync measures the physical limit under a table's log:
//
//   - raw: one op is a 100-byte write + f.Sync() on a plain file; syncs/s.
//   - tidwall-batch64: one op is a tidwall/wal WriteBatch of 64 x 100-byte
//     entries with fsync (NoSync false); entries/s is the most a single
//     writer can make durable at that batch size.
//   - log-append64: one op is our wal.Log.Append of 64 entries (100-byte
//     value, 14-byte key, the entry codec and checksum on top of tidwall).
//
// p50_us and p99_us are per op (per fsync).
func BenchmarkFsync(b *testing.B) {
	payload := make([]byte, benchEntrySize)
	for i := range payload {
		payload[i] = 'a' + byte(i%26)
	}

	b.Run("raw", func(b *testing.B) {
		f, err := os.Create(filepath.Join(b.TempDir(), "sync"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		lat := make([]time.Duration, 0, b.N)
		b.SetBytes(benchEntrySize)
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			t0 := time.Now()
			if _, err := f.Write(payload); err != nil {
				b.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N)/elapsed.Seconds(), "syncs/s")
		benchReportLatency(b, lat)
	})

	b.Run(fmt.Sprintf("tidwall-batch%d", benchBatch), func(b *testing.B) {
		l, err := twal.Open(b.TempDir(), &twal.Options{NoSync: false, SegmentSize: 16 << 20, SegmentCacheSize: 2})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		var batch twal.Batch
		lat := make([]time.Duration, 0, b.N)
		idx := uint64(1)
		b.SetBytes(benchBatch * benchEntrySize)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for range b.N {
			t0 := time.Now()
			batch.Clear()
			for range benchBatch {
				batch.Write(idx, payload)
				idx++
			}
			if err := l.WriteBatch(&batch); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchBatch)/elapsed.Seconds(), "entries/s")
		benchReportLatency(b, lat)
	})

	b.Run(fmt.Sprintf("log-append%d", benchBatch), func(b *testing.B) {
		l, err := wal.Open(b.TempDir(), wal.Options{
			Name: "bench", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
		})
		if err != nil {
			b.Fatal(err)
		}
		defer l.Close()
		// Distinct keys per op, made before the clock runs.
		entries := make([][]wal.Entry, b.N)
		for i := range entries {
			entries[i] = make([]wal.Entry, benchBatch)
			for j := range entries[i] {
				entries[i][j] = wal.Entry{
					Op: wal.OpPut, Key: fmt.Appendf(nil, "key-%010d", i*benchBatch+j), Value: payload,
					Version: wal.Version{HLC: uint64(i*benchBatch + j + 1), Origin: "n1"},
				}
			}
		}
		lat := make([]time.Duration, 0, b.N)
		b.SetBytes(benchBatch * benchEntrySize)
		b.ReportAllocs()
		b.ResetTimer()
		start := time.Now()
		for i := range b.N {
			t0 := time.Now()
			if _, err := l.Append(entries[i]); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		elapsed := time.Since(start)
		b.StopTimer()
		b.ReportMetric(float64(b.N*benchBatch)/elapsed.Seconds(), "entries/s")
		benchReportLatency(b, lat)
	})
}
