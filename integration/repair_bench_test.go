package integration

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkRepair measures `cortex sync repair` of a 1,000,000-key table
// (100-byte values) of which 1% of the keys differ on one of two nodes,
// against the bytes of a full copy (measureRepair). BenchmarkMesh runs it
// too.
//
//	go test -run '^$' -bench Repair -benchtime 1x -timeout 30m ./integration
func BenchmarkRepair(b *testing.B) {
	skipRace(b)
	b.ReportMetric(0, "ns/op")
	st, err := measureRepair(b, 1_000_000, 10_000)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(st.elapsed.Seconds(), "repair_s")
	b.ReportMetric(float64(st.moved), "bytes_moved")
	b.ReportMetric(st.pctOfFull(), "pct_of_full_copy")
	b.ReportMetric(float64(st.keysMoved), "keys_adopted")
	b.Logf("loaded %d keys in %s; repair: %s", st.keys, st.load.Round(time.Millisecond), st.report)
}

// repairStats is one repair measurement.
type repairStats struct {
	keys, differ int
	load         time.Duration // loading the table on a until b held it
	elapsed      time.Duration // the repair
	moved        int           // bytes over the network
	keysMoved    int
	report       string
}

// pctOfFull is the bytes moved against a full copy of the table (key,
// value and 13 bytes of framing and version per record).
func (s repairStats) pctOfFull() float64 {
	full := s.keys * (len("key-0000000000") + len(benchValue) + 12 + 1)
	return 100 * float64(s.moved) / float64(full)
}

// measureRepair times `cortex sync repair` (through the Go client) of a
// table of keys 100-byte records on two nodes, a and b, of which differ
// were changed on a while b was away and b was then made to believe it has
// all of a's log (its cursors forged): diverged. The nodes run
// --fsync=never to load the table quickly; the repair itself does not
// depend on fsync. It stops both nodes before it returns.
func measureRepair(t testing.TB, keys, differ int) (repairStats, error) {
	st := repairStats{keys: keys, differ: differ}
	certs := meshCerts(t, "a", "b")
	na := newMeshNode(t, certs, "a")
	na.args = append(na.args, "--fsync", "never")
	na.start()
	nb := newMeshNode(t, certs, "b", na.meshAddr)
	nb.args = append(nb.args, "--fsync", "never")
	nb.start()
	defer func() { nb.stop(); na.stop() }()
	waitFullMesh(t, 30*time.Second, na, nb)
	na.must("table", "create", "big", "--scope", "all")
	ca := na.client()
	defer ca.Close()
	start := time.Now()
	if _, err := writeLoad(ca, "big", "key-", benchValue, 64, keys, 10*time.Minute); err != nil {
		return st, fmt.Errorf("load: %w", err)
	}
	if err := nb.waitHeldKeys("big", int64(keys), 5*time.Minute, 100*time.Millisecond); err != nil {
		return st, err
	}
	st.load = time.Since(start)
	if err := nb.stop(); err != nil {
		return st, fmt.Errorf("stop b: %w", err)
	}
	// differ keys change while b is away (the same keys, other values).
	if _, err := writeLoad(ca, "big", "key-", bytes.Repeat([]byte("z"), len(benchValue)), 64, differ, 5*time.Minute); err != nil {
		return st, fmt.Errorf("changes: %w", err)
	}
	if err := na.stop(); err != nil {
		return st, fmt.Errorf("stop a: %w", err)
	}
	nb.forgeCursors("big", na) // b believes it has all of a's log: diverged
	na.start()
	nb.start()
	waitFullMesh(t, 30*time.Second, na, nb)

	t0 := time.Now()
	rep, err := ca.SyncRepair(context.Background(), "big", false)
	st.elapsed = time.Since(t0)
	if err != nil || !rep.InSync {
		return st, fmt.Errorf("repair: %+v %v", rep, err)
	}
	for _, m := range rep.Moved {
		st.moved += m.Bytes
		st.keysMoved += m.Keys
	}
	st.report = fmt.Sprintf("%+v", rep)
	return st, nil
}
