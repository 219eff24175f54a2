package metrics

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
)

// BenchmarkScrape measures one GET /metrics of a standalone node holding 10
// tables of 1,000 keys each (plus the system tables): the CPU a scrape
// takes, which a Prometheus spends once per scrape interval.
func BenchmarkScrape(b *testing.B) {
	m, st := newNode(b)
	ctx := context.Background()
	for i := range 10 {
		name := fmt.Sprintf("t%d", i)
		if _, err := st.CreateTable(ctx, name, scope.Scope{Local: true}); err != nil {
			b.Fatal(err)
		}
		tb, err := st.Table(name)
		if err != nil {
			b.Fatal(err)
		}
		for k := range 1000 {
			if _, err := tb.Put(ctx, fmt.Appendf(nil, "k%04d", k), []byte("v")); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := m.Register(Sources{Store: st}); err != nil {
		b.Fatal(err)
	}
	h := m.Handler(slog.New(slog.DiscardHandler))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		io.Copy(io.Discard, w.Body)
	}
}
