package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/health"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// newNode opens a standalone store whose copies report to a fresh Metrics.
func newNode(t testing.TB) (*Metrics, *store.Store) {
	t.Helper()
	m := New()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: "home", Logger: slog.New(slog.DiscardHandler),
		Table: tables.Options{Observer: m}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return m, st
}

func TestCollector(t *testing.T) {
	m, st := newNode(t)
	ctx := context.Background()
	if _, err := st.CreateTable(ctx, "fruit", scope.Scope{Local: true}); err != nil {
		t.Fatal(err)
	}
	tb, err := st.Table("fruit")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"apple", "banana", "cherry"} {
		if _, err := tb.Put(ctx, []byte(k), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Delete(ctx, []byte("banana")); err != nil {
		t.Fatal(err)
	}
	checker := health.NewChecker(health.Config{Store: st, Every: time.Millisecond})
	t.Cleanup(checker.Close)
	if err := m.Register(Sources{Store: st, Health: checker,
		Repairs: func() (map[string]uint64, uint64) { return map[string]uint64{"in_sync": 2}, 300 }}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP cortex_table_writes_total Local writes acknowledged (durable and visible), since the copy was opened.
# TYPE cortex_table_writes_total counter
cortex_table_writes_total{op="delete",table="fruit"} 1
cortex_table_writes_total{op="put",table="fruit"} 3
# HELP cortex_table_keys Live keys in the copy.
# TYPE cortex_table_keys gauge
cortex_table_keys{table="fruit"} 2
# HELP cortex_table_tombstones Deleted keys the copy keeps as tombstones.
# TYPE cortex_table_tombstones gauge
cortex_table_tombstones{table="fruit"} 1
# HELP cortex_repair_runs_total Repairs this node ran (cortex sync repair), since the start, by result.
# TYPE cortex_repair_runs_total counter
cortex_repair_runs_total{result="in_sync"} 2
# HELP cortex_repair_bytes_total Bytes that crossed the network for the repairs this node ran (digests, hashes, records).
# TYPE cortex_repair_bytes_total counter
cortex_repair_bytes_total 300
`
	// Writes to system tables count too; compare fruit's and the repairs.
	got := strings.NewReader(want)
	if err := testutil.GatherAndCompare(filtered{m, "fruit"}, got, "cortex_table_writes_total", "cortex_table_keys", "cortex_table_tombstones",
		"cortex_repair_runs_total", "cortex_repair_bytes_total"); err != nil {
		t.Fatal(err)
	}
	// Every fsync of fruit's 4 writes was observed (the system tables'
	// writes at creation have their own series).
	if n := testutil.CollectAndCount(m.fsyncGroup, "cortex_wal_fsync_group_entries"); n < 1 {
		t.Fatalf("%d fsync group series", n)
	}
	if got := histogramSum(t, m, "cortex_wal_fsync_group_entries", "fruit"); got != 4 {
		t.Fatalf("fsync groups of fruit sum to %v entries, want 4", got)
	}
	if got := metricValue(t, m, "cortex_wal_segments", "fruit"); got != 1 {
		t.Fatalf("cortex_wal_segments{table=fruit} = %v, want 1", got)
	}
	if got := metricValue(t, m, "cortex_wal_bytes", "fruit"); got <= 0 {
		t.Fatalf("cortex_wal_bytes{table=fruit} = %v, want > 0", got)
	}
	if err := testutil.GatherAndCompare(m.Registry(), strings.NewReader(`
# HELP cortex_ready 1 when the node is ready (/readyz answers 200).
# TYPE cortex_ready gauge
cortex_ready 1
`), "cortex_ready"); err != nil {
		t.Fatal(err)
	}
	// The endpoints.
	srv := httptest.NewServer(m.Handler(slog.New(slog.DiscardHandler)))
	defer srv.Close()
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var s health.Status
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !s.OK || s.Reason == "" {
			t.Fatalf("%s: %d %+v %v", path, resp.StatusCode, s, err)
		}
	}
	if resp, err := http.Post(srv.URL+"/readyz", "text/plain", nil); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST /readyz: %v %v", resp.StatusCode, err)
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

// TestLags: a peer that acknowledged offset 1 of 3 lags 2 entries, as old
// as the entry at offset 2; one that has them all lags 0; a subscriber the
// scope does not select is not shown.
func TestLags(t *testing.T) {
	tb, err := tables.Open(t.TempDir(), tables.Options{Name: "t", Node: "home", NoSync: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	ctx := context.Background()
	var stamps []time.Time
	for _, k := range []string{"a", "b", "c"} {
		v, err := tb.Put(ctx, []byte(k), []byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		at, _ := tables.HLCTime(v.HLC)
		stamps = append(stamps, at)
	}
	tb.Ack("office", 1)
	tb.Ack("laptop", 3)
	tb.Ack("gone", 0)
	info := scope.TableInfo{Name: "t", Scope: scope.Scope{Nodes: []string{"home", "office", "laptop"}}}
	now := stamps[1].Add(5 * time.Second)
	got := map[string]PeerLag{}
	for _, l := range Lags(info, "home", 3, tb, now) {
		got[l.Peer] = l
	}
	if len(got) != 2 {
		t.Fatalf("lags for %v, want office and laptop", got)
	}
	if l := got["office"]; l.Entries != 2 || l.Seconds < 4.99 || l.Seconds > 5.01 {
		t.Fatalf("office: %+v, want 2 entries, 5 s", l)
	}
	if l := got["laptop"]; l.Entries != 0 || l.Seconds != 0 {
		t.Fatalf("laptop: %+v, want 0", l)
	}
}
