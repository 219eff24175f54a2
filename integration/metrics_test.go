package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/health"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// withMetrics gives a node a --metrics-listen address on 127.0.0.1.
func (n *node) withMetrics() *node {
	n.args = append(n.args, "--metrics-listen", "127.0.0.1:"+strconv.Itoa(freePort(n.t)))
	return n
}

func (n *node) metricsURL(path string) string {
	for i, a := range n.args {
		if a == "--metrics-listen" {
			return "http://" + n.args[i+1] + path
		}
	}
	n.t.Fatal("node without --metrics-listen")
	return ""
}

// scrape reads /metrics and parses it with the Prometheus text parser.
func (n *node) scrape() map[string]*dto.MetricFamily {
	n.t.Helper()
	resp, err := http.Get(n.metricsURL("/metrics"))
	if err != nil {
		n.t.Fatalf("%s: scrape: %v", n.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		n.t.Fatalf("%s: /metrics: %s", n.name, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		n.t.Fatalf("%s: /metrics does not parse: %v", n.name, err)
	}
	return mfs
}

// value is the value of the series of name whose labels include want
// (label=value pairs), and whether there is one.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf, ok := mfs[name]
	if !ok {
		return 0, false
	}
next:
	for _, m := range mf.Metric {
		for i := 0; i+1 < len(want); i += 2 {
			found := false
			for _, l := range m.Label {
				found = found || l.GetName() == want[i] && l.GetValue() == want[i+1]
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// waitMetric polls /metrics until cond holds for the value of the series.
func (n *node) waitMetric(what string, cond func(v float64, ok bool) bool, name string, labels ...string) float64 {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, ok := value(n.scrape(), name, labels...)
		if cond(v, ok) {
			return v
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: %s%v = %v (present %v), want %s\n%s", n.name, name, labels, v, ok, what, n.logs)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// probe asks /healthz or /readyz.
func (n *node) probe(path string) (int, health.Status) {
	n.t.Helper()
	resp, err := http.Get(n.metricsURL(path))
	if err != nil {
		n.t.Fatalf("%s: %s: %v", n.name, path, err)
	}
	defer resp.Body.Close()
	var s health.Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		n.t.Fatalf("%s: %s: body: %v", n.name, path, err)
	}
	return resp.StatusCode, s
}

// Two nodes with metrics: scraped during a write load, the write counter
// never goes back and ends equal to the puts acknowledged, the peer adopts
// as many; while the peer is down the lag on the writer rises by the writes
// it misses, and returns to 0 once the peer is back and caught up.
func TestMetricsWritesAndLag(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a").withMetrics()
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr).withMetrics()
	b.start()
	a.waitPeers("b")
	a.must("table", "create", "fruit", "--scope", "all")
	b.waitMetric("a copy of fruit", func(v float64, ok bool) bool { return ok && v == 1 }, "cortex_table_open", "table", "fruit")

	// A write load (4 writers, 100 puts each) scraped meanwhile.
	const writers, each = 4, 100
	var acked sync.WaitGroup
	var mu sync.Mutex
	okPuts := 0
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for w := range writers {
		acked.Add(1)
		go func() {
			defer acked.Done()
			c := a.client()
			defer c.Close()
			for i := range each {
				if _, err := c.Put(ctx, "fruit", []byte(fmt.Sprintf("w%d-%03d", w, i)), []byte("v")); err == nil {
					mu.Lock()
					okPuts++
					mu.Unlock()
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { acked.Wait(); close(done) }()
	last, scrapes := 0.0, 0
scraping:
	for scrapes < 1000 {
		select {
		case <-done:
			break scraping
		default:
		}
		v, _ := value(a.scrape(), "cortex_table_writes_total", "table", "fruit", "op", "put")
		if v < last {
			t.Fatalf("cortex_table_writes_total went back from %v to %v", last, v)
		}
		last = v
		scrapes++
	}
	<-done
	if okPuts != writers*each {
		t.Fatalf("%d puts acknowledged of %d", okPuts, writers*each)
	}
	t.Logf("%d scrapes during the load", scrapes)
	mfs := a.scrape()
	if v, _ := value(mfs, "cortex_table_writes_total", "table", "fruit", "op", "put"); v != float64(okPuts) {
		t.Fatalf("cortex_table_writes_total{fruit,put} = %v, want the %d puts acknowledged", v, okPuts)
	}
	if v, _ := value(mfs, "cortex_wal_fsync_duration_seconds", "table", "fruit"); v < 1 {
		t.Fatalf("no fsync observed for fruit: %v", v)
	}
	for _, kind := range []string{"node", "ca"} {
		if v, ok := value(mfs, "cortex_certificate_expiry_timestamp_seconds", "kind", kind); !ok || v < float64(time.Now().Add(365*24*time.Hour).Unix()) {
			t.Fatalf("certificate expiry of kind %s: %v (present %v)", kind, v, ok)
		}
	}
	if v, _ := value(mfs, "cortex_mesh_peers_connected"); v != 1 {
		t.Fatalf("cortex_mesh_peers_connected = %v, want 1", v)
	}
	b.waitMetric("every put adopted", func(v float64, ok bool) bool { return v == float64(okPuts) }, "cortex_table_remote_entries_total", "table", "fruit", "result", "adopted")
	b.waitMetric("the subscription up", func(v float64, ok bool) bool { return v == 1 }, "cortex_replication_subscription_up", "table", "fruit", "peer", "a")
	a.waitMetric("b caught up", func(v float64, ok bool) bool { return ok && v == 0 }, "cortex_replication_lag_entries", "table", "fruit", "peer", "b")

	// b down: a's lag for b rises by the writes b misses.
	if err := b.stop(); err != nil {
		t.Fatal(err)
	}
	const missed = 30
	for i := range missed {
		a.must("put", "fruit", fmt.Sprintf("missed-%02d", i), "v")
	}
	a.waitMetric(fmt.Sprintf("%d entries", missed), func(v float64, ok bool) bool { return v == missed }, "cortex_replication_lag_entries", "table", "fruit", "peer", "b")
	a.waitMetric("some seconds", func(v float64, ok bool) bool { return v > 0 }, "cortex_replication_lag_seconds", "table", "fruit", "peer", "b")
	a.waitMetric("no peer", func(v float64, ok bool) bool { return v == 0 }, "cortex_mesh_peers_connected")

	// b back: the lag returns to 0 and b has every write.
	b.start()
	a.waitMetric("b caught up again", func(v float64, ok bool) bool { return ok && v == 0 }, "cortex_replication_lag_entries", "table", "fruit", "peer", "b")
	if v, _ := value(a.scrape(), "cortex_replication_lag_seconds", "table", "fruit", "peer", "b"); v != 0 {
		t.Fatalf("lag seconds %v after catching up, want 0", v)
	}
	b.waitValue("fruit", "missed-29", "v")
	if code, s := b.probe("/readyz"); code != http.StatusOK || !s.OK {
		t.Fatalf("b /readyz after catching up: %d %+v", code, s)
	}
}

// A node joining with a large table to copy is not ready until it has it:
// /readyz answers 503 (saying why) while it bootstraps, and the first 200
// comes once its copy holds every key; node status says the same.
func TestReadyzWhileBootstrapping(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	a.start()
	a.must("table", "create", "big", "--scope", "all")
	const keys = 20_000
	value := strings.Repeat("x", 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := a.client()
			defer c.Close()
			for i := w; i < keys; i += 8 {
				if _, err := c.Put(ctx, "big", []byte(fmt.Sprintf("k%05d", i)), []byte(value)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	b := newMeshNode(t, certs, "b", a.meshAddr).withMetrics()
	if err := b.startNoWait(); err != nil {
		t.Fatal(err)
	}
	var reasons []string
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(b.metricsURL("/readyz"))
		if err != nil { // not listening yet
			if time.Now().After(deadline) {
				t.Fatalf("b /readyz: %v\n%s", err, b.logs)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
			continue
		}
		var s health.Status
		err = json.NewDecoder(resp.Body).Decode(&s)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == http.StatusOK {
			if !s.OK {
				t.Fatalf("200 with %+v", s)
			}
			break
		}
		if resp.StatusCode != http.StatusServiceUnavailable || s.OK || s.Reason == "" {
			t.Fatalf("b /readyz: %d %+v", resp.StatusCode, s)
		}
		if len(reasons) == 0 || reasons[len(reasons)-1] != s.Reason {
			reasons = append(reasons, s.Reason)
		}
		if time.Now().After(deadline) {
			t.Fatalf("b not ready after 60 s: %v\n%s", reasons, b.logs)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	// Ready: b's copy holds every key already.
	c := b.client()
	defer c.Close()
	var tl []api.TableInfo
	if err := json.Unmarshal([]byte(b.must("table", "list", "--json")), &tl); err != nil {
		t.Fatal(err)
	}
	got := int64(-1)
	for _, ti := range tl {
		if ti.Name == "big" {
			got = ti.Keys
		}
	}
	if got != keys {
		t.Fatalf("ready with %d keys of big, want %d; 503 reasons seen: %v", got, keys, reasons)
	}
	t.Logf("503 reasons before ready: %q", reasons)
	caughtUp := false
	for _, r := range reasons {
		caughtUp = caughtUp || strings.Contains(r, "catching up: table big")
	}
	if !caughtUp {
		t.Fatalf("never answered 503 for catching up with big: %q", reasons)
	}
	var st api.NodeStatus
	if err := json.Unmarshal([]byte(b.must("node", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Ready == nil || !st.Ready.OK || st.Healthy == nil || !st.Healthy.OK {
		t.Fatalf("node status: ready %+v healthy %+v", st.Ready, st.Healthy)
	}
	if out := b.must("node", "status"); !strings.Contains(out, "READY") || !strings.Contains(out, "caught up") {
		t.Fatalf("node status does not show readiness:\n%s", out)
	}
}

// /healthz is 200 on a running node and 503 naming the table when a held
// copy failed to open; the copy's cortex_table_open is 0 and node status
// says the same.
func TestHealthzWithABrokenCopy(t *testing.T) {
	n := newNode(t, "home").withMetrics()
	n.start()
	if code, s := n.probe("/healthz"); code != http.StatusOK || !s.OK {
		t.Fatalf("/healthz on a running node: %d %+v", code, s)
	}
	n.must("table", "create", "good")
	n.must("table", "create", "bad")
	n.must("put", "bad", "k", "v")
	if err := n.stop(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.copyDir("bad"), "wal", "LOG_ID"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	n.start()
	code, s := n.probe("/healthz")
	if code != http.StatusServiceUnavailable || s.OK || !strings.Contains(s.Reason, "table bad did not open") || !strings.Contains(s.Reason, "malformed log id") {
		t.Fatalf("/healthz with a broken copy: %d %+v", code, s)
	}
	mfs := n.scrape()
	if v, ok := value(mfs, "cortex_table_open", "table", "bad"); !ok || v != 0 {
		t.Fatalf("cortex_table_open{bad} = %v (%v), want 0", v, ok)
	}
	if v, _ := value(mfs, "cortex_table_open", "table", "good"); v != 1 {
		t.Fatalf("cortex_table_open{good} = %v, want 1", v)
	}
	if v, _ := value(mfs, "cortex_healthy"); v != 0 {
		t.Fatalf("cortex_healthy = %v, want 0", v)
	}
	var st api.NodeStatus
	if err := json.Unmarshal([]byte(n.must("node", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.Healthy == nil || st.Healthy.OK || !strings.Contains(st.Healthy.Reason, "table bad") {
		t.Fatalf("node status healthy: %+v", st.Healthy)
	}
}
