package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
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
	elapsed := putLoad(b, c, conns)
	close(stop)
	scraper.Wait()
	if scraped {
		b.ReportMetric(float64(scrapes.Load())/elapsed.Seconds(), "scrapes/s")
	}
}
