package api

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/metrics"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// BenchmarkMetricsPut measures durable writes through the Unix socket
// (fsync=batch, 16 connections, 100-byte values) without metrics
// (metrics=none), with cortexd's metrics (every fsync observed into the
// histograms, the state collector registered: metrics=observed), and with a
// scraper reading /metrics on top of that every 10 ms (1,500 times as often
// as a Prometheus at its default 15 s interval; reported as scrapes/s:
// metrics=scraped).
func BenchmarkMetricsPut(b *testing.B) {
	for _, mode := range []string{"none", "observed", "scraped"} {
		b.Run("metrics="+mode, func(b *testing.B) { benchMetricsPut(b, mode != "none", mode == "scraped") })
	}
}

func benchMetricsPut(b *testing.B, observed, scraped bool) {
	const conns = 16
	ctx := context.Background()
	opts := tables.Options{CheckpointEvery: -1}
	var m *metrics.Metrics
	if observed {
		m = metrics.New()
		opts.Observer = m
	}
	st, c := newTestServer(b, opts)
	if _, err := c.CreateTable(ctx, "bench", scope.Scope{Local: true}, Overrides{}); err != nil {
		b.Fatal(err)
	}
	var scrapes atomic.Int64
	stop := make(chan struct{})
	var scraper sync.WaitGroup
	if observed {
		if err := m.Register(metrics.Sources{Store: st}); err != nil {
			b.Fatal(err)
		}
	}
	if scraped {
		srv := httptest.NewServer(m.Handler(slog.New(slog.DiscardHandler)))
		defer srv.Close()
		scraper.Add(1)
		go func() {
			defer scraper.Done()
			tick := time.NewTicker(10 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				resp, err := http.Get(srv.URL + "/metrics")
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				scrapes.Add(1)
			}
		}()
	}
	value := make([]byte, 100)
	lat := make([][]time.Duration, conns)
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
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
	b.StopTimer()
	close(stop)
	scraper.Wait()
	all := slices.Concat(lat...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "writes/s")
	b.ReportMetric(float64(percentile(all, 99).Microseconds()), "p99_us")
	if scraped {
		b.ReportMetric(float64(scrapes.Load())/elapsed.Seconds(), "scrapes/s")
	}
}
