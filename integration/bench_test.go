package integration

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
)

// The replication benchmarks run three real cortexd processes (fsync=batch,
// the default) and drive them through the Go client. Run them without the
// race detector, which slows cortexd down several times:
//
//	go test -run '^$' -bench 'ReplicationLag|CatchUp' -benchtime 1x -timeout 20m ./integration

// skipRace skips a benchmark when cortexd is built with the race detector.
func skipRace(b *testing.B) {
	if raceEnabled {
		b.Skip("cortexd is built with -race: its numbers mean nothing; run the benchmark without -race")
	}
}

// benchValue is the 100-byte value of every benchmark write.
var benchValue = []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB")

// benchKey is the key of write i: 14 bytes, sorting in write order.
func benchKey(i int) []byte { return fmt.Appendf(nil, "key-%010d", i) }

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchTable creates table (scope all) on a and waits until every other node
// shows a first write: the catalog change and the streams are in place.
func benchTable(b *testing.B, table string, a *node, others ...*node) {
	a.must("table", "create", table, "--scope", "all")
	a.must("put", table, "warm-up", "1")
	for _, n := range others {
		n.waitValue(table, "warm-up", "1")
	}
}

// BenchmarkReplicationLag measures how long a write acknowledged on a takes
// to become readable on b, in a mesh of three with a table of scope all:
// 10,000 writes (or -benchtime Nx: N writes, if N > 1) paced at 1,000
// writes/s on a.
//
// Every write gets its own goroutine (at most 256 in flight) when it is due,
// so a slow write does not hold up the schedule. One watcher scans b for the
// keys not yet seen there, at most one scan in flight and at most one every
// 100 µs, while a write is unseen. A key first returned by a scan became
// readable between the previous scan and this one (each placed at the
// midpoint of its round trip, and none earlier than the write was sent); the
// midpoint of that interval is taken, so each lag is known to within half
// the time between two scans (±0.15 ms at the ~3,100 scans/s measured here;
// the estimate is unbiased). A write readable before a's acknowledgement
// arrives counts as 0.
func BenchmarkReplicationLag(b *testing.B) {
	skipRace(b)
	const (
		rate      = 1000
		inFlight  = 256
		pollEvery = 100 * time.Microsecond
		giveUp    = 30 * time.Second
	)
	n := 10_000
	if b.N > 1 {
		n = min(b.N, 1_000_000)
	}
	na, nb, nc := meshOf3(b)
	benchTable(b, "lag", na, nb, nc)
	ca, cb := na.client(), nb.client()
	defer ca.Close()
	defer cb.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	issued := make([]time.Time, n) // set before count is raised
	acked := make([]time.Time, n)
	seen := make([]time.Time, n)
	var count atomic.Int64
	wake := make(chan struct{}, 1)
	var failOnce sync.Once
	var failure error
	fail := func(err error) { failOnce.Do(func() { failure = err; cancel() }) }

	var scans atomic.Int64
	watched := make(chan struct{})
	go func() { // the watcher on b
		defer close(watched)
		lowest := 0
		var prevMid, lastScan time.Time
		for lowest < n {
			if int64(lowest) >= count.Load() {
				select {
				case <-wake:
					continue
				case <-ctx.Done():
					return
				}
			}
			if time.Since(issued[lowest]) > giveUp {
				fail(fmt.Errorf("write %d not readable on b after %s\n%s", lowest, giveUp, nb.logs))
				return
			}
			if d := pollEvery - time.Since(lastScan); d > 0 {
				time.Sleep(d)
			}
			req := api.ScanRequest{Table: "lag", Prefix: []byte("key-"), Limit: 1000}
			if lowest > 0 {
				req.After = benchKey(lowest - 1)
			}
			t0 := time.Now()
			page, err := cb.Scan(ctx, req)
			t1 := time.Now()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				fail(fmt.Errorf("scan b: %w", err))
				return
			}
			scans.Add(1)
			lastScan = t0
			mid := t0.Add(t1.Sub(t0) / 2)
			sent := int(count.Load())
			for _, r := range page.Records {
				var i int
				if _, err := fmt.Sscanf(string(r.Key), "key-%d", &i); err != nil || i < 0 || i >= sent || !seen[i].IsZero() {
					continue
				}
				lo := prevMid
				if lo.Before(issued[i]) {
					lo = issued[i]
				}
				if lo.After(mid) {
					lo = mid
				}
				seen[i] = lo.Add(mid.Sub(lo) / 2)
			}
			for lowest < n && !seen[lowest].IsZero() {
				lowest++
			}
			prevMid = mid
		}
	}()

	var wg sync.WaitGroup
	sem := make(chan struct{}, inFlight)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		issued[i] = time.Now()
		count.Store(int64(i + 1))
		select {
		case wake <- struct{}{}:
		default:
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			wctx, wcancel := context.WithTimeout(ctx, giveUp)
			defer wcancel()
			if _, err := ca.Put(wctx, "lag", benchKey(i), benchValue); err != nil {
				fail(fmt.Errorf("put %d on a: %w", i, err))
				return
			}
			acked[i] = time.Now()
		}()
	}
	wg.Wait()
	<-watched
	b.StopTimer()
	if failure != nil {
		b.Fatal(failure)
	}
	var last time.Time
	ackLat := make([]time.Duration, n)
	lags := make([]time.Duration, n)
	early := 0
	for i := range n {
		if acked[i].After(last) {
			last = acked[i]
		}
		ackLat[i] = acked[i].Sub(issued[i])
		if lags[i] = seen[i].Sub(acked[i]); lags[i] < 0 {
			lags[i], early = 0, early+1
		}
	}
	slices.Sort(lags)
	slices.Sort(ackLat)
	elapsed := last.Sub(start)
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n), "writes")
	b.ReportMetric(float64(n)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(ms(pct(lags, 50)), "p50_ms")
	b.ReportMetric(ms(pct(lags, 99)), "p99_ms")
	b.ReportMetric(ms(pct(lags, 100)), "max_ms")
	b.ReportMetric(ms(pct(ackLat, 50)), "put_p50_ms")
	b.ReportMetric(ms(pct(ackLat, 99)), "put_p99_ms")
	b.ReportMetric(float64(scans.Load())/elapsed.Seconds(), "scans/s")
	b.Logf("%d writes in %s; %d readable on b before a's acknowledgement arrived (counted as 0)", n, elapsed.Round(time.Millisecond), early)
}

// BenchmarkCatchUp measures how fast a restarted node catches up: b is
// stopped (SIGTERM), 100,000 writes are made on a (64 concurrent clients)
// and have reached c, then b is started again. The time runs from b's start
// until b's copy holds every key (its key count, polled every 2 ms through
// table list). b resumes from its cursors in a's and c's logs: it is sent
// the 100,000 entries by each, and adopts each entry once.
func BenchmarkCatchUp(b *testing.B) {
	skipRace(b)
	const (
		writes  = 100_000
		clients = 64
		settle  = time.Second
	)
	na, nb, nc := meshOf3(b)
	benchTable(b, "catchup", na, nb, nc)
	if err := nb.stop(); err != nil {
		b.Fatalf("stop b: %v\n%s", err, nb.logs)
	}
	nb.args = removePeers(nb.args) // b finds a and c from its membership records

	ca := na.client()
	defer ca.Close()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	loadStart := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= writes {
					return
				}
				if _, err := ca.Put(ctx, "catchup", benchKey(i), benchValue); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	loadTime := time.Since(loadStart)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	want := int64(writes + 1) // and the warm-up key
	waitKeys(b, nc, "catchup", want, 60*time.Second, 20*time.Millisecond)
	// Let a and c finish what the load started (the checkpoint that every
	// 100,000 entries trigger), so that only the catch-up is measured.
	time.Sleep(settle)

	b.ResetTimer()
	start := time.Now()
	nb.start()
	ready := time.Since(start)
	waitKeys(b, nb, "catchup", want, 120*time.Second, 2*time.Millisecond)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(writes/elapsed.Seconds(), "entries/s")
	b.ReportMetric(elapsed.Seconds(), "catchup_s")
	b.ReportMetric(ready.Seconds(), "start_s")
	b.ReportMetric(writes/(elapsed-ready).Seconds(), "entries/s_after_start")
	b.ReportMetric(writes/loadTime.Seconds(), "load_writes/s")
	b.Logf("b caught up with %d entries in %s (%s of it until its socket answered); the load took %s",
		writes, elapsed.Round(time.Millisecond), ready.Round(time.Millisecond), loadTime.Round(time.Millisecond))
}

// waitKeys polls n's table list until table holds want keys.
func waitKeys(b *testing.B, n *node, table string, want int64, limit, every time.Duration) {
	b.Helper()
	c := n.client()
	defer c.Close()
	deadline := time.Now().Add(limit)
	var got int64
	for {
		list, err := c.Tables(context.Background())
		for _, t := range list {
			if t.Name == table && t.Held {
				got = t.Keys
			}
		}
		if err == nil && got >= want {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: table %s holds %d keys after %s, want %d (%v)\n%s", n.name, table, got, limit, want, err, n.logs)
		}
		time.Sleep(every)
	}
}
