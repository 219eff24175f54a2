package mesh

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkHandshake measures mesh-CA TLS handshakes per second between two
// nodes on 127.0.0.1 (the security handshake alone, as a probe does it).
func BenchmarkHandshake(b *testing.B) {
	benchMesh(b, func(a, c testNode) {
		lat := make([]time.Duration, 0, b.N)
		start := time.Now()
		for range b.N {
			t0 := time.Now()
			if _, err := c.probe(context.Background(), a.addr()); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "handshakes/s")
		reportLatency(b, lat)
	})
}

// BenchmarkConnect measures how long a new node takes to join another from
// its HOST:PORT: probe handshake, libp2p connection (TLS + yamux), and the
// hello exchange (clock skew, membership). Each op starts a fresh node.
func BenchmarkConnect(b *testing.B) {
	m := newTestMesh(b)
	a := m.start("a", nil)
	lat := make([]time.Duration, 0, b.N)
	for i := range b.N {
		b.StopTimer()
		c := m.start(fmt.Sprintf("c%d", i), nil)
		b.StartTimer()
		t0 := time.Now()
		id, err := c.dial(context.Background(), a.addr())
		if err != nil {
			b.Fatal(err)
		}
		for !c.helloDone(id) {
			time.Sleep(20 * time.Microsecond) // poll interval
		}
		lat = append(lat, time.Since(t0))
		b.StopTimer()
		c.Close()
		b.StartTimer()
	}
	reportLatency(b, lat)
}

func benchMesh(b *testing.B, run func(a, c testNode)) {
	m := newTestMesh(b)
	a := m.start("a", nil)
	c := m.start("c", nil)
	b.ResetTimer()
	run(a, c)
	b.StopTimer()
}

func reportLatency(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50_ms")
	b.ReportMetric(float64(lat[(len(lat)-1)*99/100].Microseconds())/1000, "p99_ms")
}
