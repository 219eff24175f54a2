package api

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// BenchmarkWatchedPut measures durable writes through the Unix socket
// (fsync=batch, 16 connections, 100-byte values) with no watcher, with a
// watcher that reads every change, and with a watcher that never reads its
// connection (stalled for the whole run: the stall timeout is an hour).
// A watcher reads the copy's log, not a channel from the writer, so the
// stalled one should cost the writer nothing; the reading one costs the
// CPU it uses (client and server share the machine).
func BenchmarkWatchedPut(b *testing.B) {
	for _, watcher := range []string{"none", "reading", "stalled"} {
		b.Run("watcher="+watcher, func(b *testing.B) { benchWatchedPut(b, watcher) })
	}
}

func benchWatchedPut(b *testing.B, watcher string) {
	const conns = 16
	ctx := context.Background()
	ws := newWatchServer(b, tables.Options{CheckpointEvery: -1})
	ws.srv.watch.stall = time.Hour
	if _, err := ws.c.CreateTable(ctx, "bench", scope.Scope{Local: true}, Overrides{}); err != nil {
		b.Fatal(err)
	}
	var seen atomic.Int64
	switch watcher {
	case "reading":
		wctx, cancel := context.WithCancel(ctx)
		started := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			ws.c.WatchStream(wctx, WatchRequest{Table: "bench"}, func(WatchStart) error { close(started); return nil },
				func(Change) error { seen.Add(1); return nil })
		}()
		<-started
		b.Cleanup(func() { cancel(); <-done })
	case "stalled":
		rawWatch(b, ws.socket, "bench")
		for ws.srv.Watchers() != 1 {
			time.Sleep(time.Millisecond) // poll: the stream starts
		}
	}
	start := time.Now()
	elapsed := putLoad(b, ws.c, conns)
	if watcher == "stalled" && ws.srv.Watchers() != 1 {
		b.Errorf("the stalled watcher was dropped during the run")
	}
	if watcher == "reading" {
		for seen.Load() < int64(b.N) && time.Since(start) < elapsed+10*time.Second {
			time.Sleep(time.Millisecond) // poll: the watcher catches up
		}
		b.ReportMetric(float64(seen.Load())/float64(b.N), "seen/write")
	}
}
