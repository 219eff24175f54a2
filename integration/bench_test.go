package integration

import (
	"testing"
	"time"
)

// The replication benchmarks run real cortexd processes (fsync=batch, the
// default) and drive them through the Go client. Run them without the race
// detector, which slows cortexd down several times:
//
//	go test -run '^$' -bench 'ReplicationLag|CatchUp' -benchtime 1x -timeout 20m ./integration
//
// BenchmarkMesh (meshbench_test.go, `make bench`) measures the same and
// more, on meshes of 3, 8 and 16 nodes, in one table.

// skipRace skips a benchmark when cortexd is built with the race detector.
func skipRace(b *testing.B) {
	if raceEnabled {
		b.Skip("cortexd is built with -race: its numbers mean nothing; run the benchmark without -race")
	}
}

// benchValue is the 100-byte value of every benchmark write.
var benchValue = []byte("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789abcdefghijklmnopqrstuvwxyzAB")

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
func benchTable(table string, a *node, others ...*node) {
	a.must("table", "create", table, "--scope", "all")
	a.must("put", table, "warm-up", "1")
	for _, n := range others {
		n.waitValue(table, "warm-up", "1")
	}
}

// BenchmarkReplicationLag measures how long a write acknowledged on a takes
// to arrive on b, in a mesh of three with a table of scope all: 10,000
// writes (or -benchtime Nx: N writes, if N > 1) paced at 1,000 writes/s on
// a. The lag is measured by push (watchLag): a watcher on b, started before
// the first write, stamps each write when the stream delivers it; nothing
// scans b. A write delivered before a's acknowledgement arrives counts as 0.
func BenchmarkReplicationLag(b *testing.B) {
	skipRace(b)
	const rate = 1000
	n := 10_000
	if b.N > 1 {
		n = min(b.N, 1_000_000)
	}
	nodes := meshOfN(b, 3, time.Minute)
	benchTable("lag", nodes[0], nodes[1:]...)
	b.ResetTimer()
	st, err := watchLag(nodes[0], nodes[1], "lag", "key-", n, rate, 30*time.Second)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n), "writes")
	b.ReportMetric(st.rate, "writes/s")
	b.ReportMetric(ms(st.p50), "p50_ms")
	b.ReportMetric(ms(st.p99), "p99_ms")
	b.ReportMetric(ms(st.max), "max_ms")
	b.Logf("%d writes; %d delivered on b before a's acknowledgement arrived (counted as 0)", n, st.early)
}

// BenchmarkCatchUp measures how fast a restarted node catches up after it
// missed 100,000 writes (measureCatchUp): the time runs from the launch of
// its process until its copy holds every key.
func BenchmarkCatchUp(b *testing.B) {
	skipRace(b)
	const writes = 100_000
	st, err := measureCatchUp(b, writes)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(st.fromLaunch(), "entries/s")
	b.ReportMetric(st.done.Seconds(), "catchup_s")
	b.ReportMetric(st.ready.Seconds(), "start_s")
	b.ReportMetric(writes/(st.done-st.ready).Seconds(), "entries/s_after_start")
	b.Logf("b caught up with %d entries in %s (%s of it until its socket answered)",
		writes, st.done.Round(time.Millisecond), st.ready.Round(time.Millisecond))
}
