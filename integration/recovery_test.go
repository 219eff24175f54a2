package integration

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// A node restarts after kill -9 with a log of large values: 200 puts of
// 32 KiB (6.25 MiB, more than one 4 MiB read of the log) used to stop the
// restart with "replay stopped at offset 128 of 200". Every value is read
// back after the restart.
func TestRestartAfterKill9WithLargeValues(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	c := n.client()
	defer c.Close()

	const puts, size = 200, 32 << 10
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	fill := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	want := make(map[string][]byte, puts)
	start := time.Now()
	for i := range puts {
		k, v := fmt.Sprintf("k%03d", i), make([]byte, size)
		fill.Read(v)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := c.Put(ctx, "t", []byte(k), v)
		cancel()
		if err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		want[k] = v
	}
	t.Logf("%d puts of %d bytes acknowledged in %v", puts, size, time.Since(start).Round(time.Millisecond))

	n.kill()
	n.start() // fails the test if cortexd exits instead of serving
	if strings.Contains(n.logs.String(), "replay stopped") {
		t.Fatalf("cortexd logged a stopped replay:\n%s", n.logs)
	}
	for k, v := range want {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		rec, err := c.Get(ctx, "t", []byte(k))
		cancel()
		if err != nil {
			t.Fatalf("after restart: get %s: %v", k, err)
		}
		if !bytes.Equal(rec.Value, v) {
			t.Fatalf("after restart: %s holds %d bytes that differ from the %d written", k, len(rec.Value), len(v))
		}
	}
	t.Logf("all %d values read back after kill -9 and restart", puts)
}
