package tables

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestReplayPastTheReadLimit is the regression test for a replay that
// skipped entries: recover advanced by its chunk of 4096 offsets while
// wal.ReadRange stops after about 4 MiB of keys and values, so a log with
// large values was replayed only up to the first 4 MiB ("replay stopped at
// offset 128 of 200" for 200 values of 32 KiB) and the table did not open.
// Each case writes a log without any checkpoint (no background checkpoints,
// no Close) and recovers a copy of the directory: every entry must be
// replayed whatever the value sizes.
func TestReplayPastTheReadLimit(t *testing.T) {
	cases := []struct {
		name    string
		n       int
		size    func(rng *rand.Rand, i int) int
		segSize int
	}{
		// The reported case: 200 values of 32 KiB are 6.25 MiB.
		{"200x32KiB", 200, func(*rand.Rand, int) int { return 32 << 10 }, 0},
		// Values at the default limit, two to a 2 MiB segment.
		{"16x1MiB", 16, func(*rand.Rand, int) int { return DefaultMaxValueSize }, 2 << 20},
		// Small values around large ones: a read stops at the byte limit
		// with any number of records.
		{"mixed", 600, func(rng *rand.Rand, i int) int {
			if i%50 == 0 {
				return DefaultMaxValueSize - rng.IntN(1024)
			}
			return rng.IntN(256)
		}, 1 << 20},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			rng := rand.New(rand.NewPCG(uint64(c.n), 7))
			fill := rand.NewChaCha8([32]byte{byte(c.n)})
			opts := utOptions("n1")
			opts.SegmentSize = c.segSize
			dir := t.TempDir()
			tb := utOpen(t, dir, opts)
			want := make(map[string][]byte, c.n)
			total := 0
			for i := range c.n {
				key := fmt.Sprintf("k%04d", i)
				val := make([]byte, c.size(rng, i))
				fill.Read(val)
				if _, err := tb.Put(ctx, []byte(key), val); err != nil {
					t.Fatalf("put %s (%d bytes): %v", key, len(val), err)
				}
				want[key] = val
				total += len(val)
			}
			if total <= 4<<20 {
				t.Fatalf("the case writes %d bytes of values, not more than one read of 4 MiB", total)
			}
			live := utCheckConsistent(t, tb)

			// The directory as a crash would leave it: the log alone.
			re, err := Open(utCopyDir(t, dir), opts)
			if err != nil {
				t.Fatalf("recover %d values (%d bytes): %v", c.n, total, err)
			}
			t.Cleanup(func() { re.Close() })
			if got := re.Stats(); got.Applied != uint64(c.n) || got.Keys != int64(c.n) {
				t.Errorf("recovered: applied %d, %d keys; want %d and %d", got.Applied, got.Keys, c.n, c.n)
			}
			for key, val := range want {
				r, err := re.Get([]byte(key))
				if err != nil {
					t.Fatalf("after replay: get %s: %v", key, err)
				}
				if string(r.Value) != string(val) {
					t.Fatalf("after replay: %s holds %d bytes that differ from the %d written", key, len(r.Value), len(val))
				}
			}
			utSameState(t, "recovered", utCheckConsistent(t, re), live)
		})
	}
}
