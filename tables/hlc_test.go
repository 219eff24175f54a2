package tables

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/wal"
)

// utWall is a settable wall clock.
type utWall struct {
	mu sync.Mutex
	t  time.Time
}

func (w *utWall) now() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.t
}

func (w *utWall) set(t time.Time) {
	w.mu.Lock()
	w.t = t
	w.mu.Unlock()
}

func TestHLCRoundTrip(t *testing.T) {
	cases := []struct {
		ms      int64
		counter uint16
	}{
		{0, 0}, {0, 1}, {1, 0}, {1, 0xffff},
		{time.Date(2024, 6, 1, 12, 0, 0, 123e6, time.UTC).UnixMilli(), 42},
		{time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), 0xfffe},
		{1<<48 - 1, 0xffff},
	}
	for _, c := range cases {
		h := HLC(c.ms, c.counter)
		tm, cnt := HLCTime(h)
		if tm.UnixMilli() != c.ms || cnt != c.counter {
			t.Errorf("HLCTime(HLC(%d, %d)) = %d, %d", c.ms, c.counter, tm.UnixMilli(), cnt)
		}
		if tm.Location() != time.UTC {
			t.Errorf("HLCTime returns a time in %v, want UTC", tm.Location())
		}
		if h != uint64(c.ms)<<16|uint64(c.counter) {
			t.Errorf("HLC(%d, %d) = %#x: not ms<<16|counter", c.ms, c.counter, h)
		}
	}
	// Timestamps compare as integers: milliseconds first, then the counter.
	if !(HLC(5, 0xffff) < HLC(6, 0) && HLC(6, 0) < HLC(6, 1)) {
		t.Error("HLC does not order by milliseconds then counter")
	}
}

func TestClockNow(t *testing.T) {
	base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	w := &utWall{t: base}
	c := NewClock(w.now)
	if c.Last() != 0 {
		t.Fatalf("new clock Last = %d", c.Last())
	}

	first := c.Now()
	if first != HLC(base.UnixMilli(), 0) {
		t.Fatalf("first Now = %#x, want the wall time with counter 0 (%#x)", first, HLC(base.UnixMilli(), 0))
	}
	if c.Last() != first {
		t.Fatalf("Last = %d after Now returned %d", c.Last(), first)
	}
	// The wall does not move: the counter does.
	second := c.Now()
	if second != first+1 {
		t.Fatalf("Now with a stopped wall = %#x, want %#x", second, first+1)
	}
	// The wall goes backwards: Now still grows.
	w.set(base.Add(-time.Hour))
	prev := second
	for i := range 100 {
		n := c.Now()
		if n <= prev {
			t.Fatalf("step %d: Now = %#x after %#x, with the wall gone backwards", i, n, prev)
		}
		prev = n
	}
	if ms, _ := HLCTime(prev); !ms.Equal(base) {
		t.Fatalf("with the wall behind, the clock left its millisecond: %v", ms)
	}
	// The wall moves ahead again: Now follows it with counter 0.
	later := base.Add(time.Second)
	w.set(later)
	if n := c.Now(); n != HLC(later.UnixMilli(), 0) {
		t.Fatalf("Now after the wall moved ahead = %#x, want %#x", n, HLC(later.UnixMilli(), 0))
	}
}

func TestClockCounterCarries(t *testing.T) {
	base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	w := &utWall{t: base}
	c := NewClock(w.now)
	ms := base.UnixMilli()
	c.Observe(HLC(ms, 0xfffe))
	if n := c.Now(); n != HLC(ms, 0xffff) {
		t.Fatalf("Now = %#x, want %#x", n, HLC(ms, 0xffff))
	}
	n := c.Now()
	if n != HLC(ms+1, 0) {
		t.Fatalf("Now after a full counter = %#x, want it carried into the next millisecond %#x", n, HLC(ms+1, 0))
	}
	if tm, cnt := HLCTime(n); tm.UnixMilli() != ms+1 || cnt != 0 {
		t.Fatalf("carried timestamp reads as %v/%d", tm, cnt)
	}
	// A whole millisecond worth of counter with a stopped wall.
	prev := n
	for range 1 << 16 {
		n := c.Now()
		if n != prev+1 {
			t.Fatalf("Now = %#x after %#x", n, prev)
		}
		prev = n
	}
	if tm, _ := HLCTime(prev); tm.UnixMilli() != ms+2 {
		t.Fatalf("after 65536 more stamps the clock is at ms %d, want %d", tm.UnixMilli(), ms+2)
	}
}

func TestClockObserve(t *testing.T) {
	base := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	w := &utWall{t: base}
	c := NewClock(w.now)
	n := c.Now()

	// Observing the past changes nothing.
	c.Observe(n - 1000)
	c.Observe(0)
	if c.Last() != n {
		t.Fatalf("Observe of an older timestamp moved Last to %#x from %#x", c.Last(), n)
	}
	if got := c.Now(); got != n+1 {
		t.Fatalf("Now after observing the past = %#x, want %#x", got, n+1)
	}

	// Observing the future moves the clock past it.
	future := HLC(base.Add(time.Hour).UnixMilli(), 7)
	c.Observe(future)
	if c.Last() != future {
		t.Fatalf("Last = %#x after observing %#x", c.Last(), future)
	}
	if got := c.Now(); got != future+1 {
		t.Fatalf("Now after observing %#x = %#x, want %#x", future, got, future+1)
	}
	// Observing exactly what the clock holds changes nothing.
	last := c.Last()
	c.Observe(last)
	if got := c.Now(); got != last+1 {
		t.Fatalf("Now = %#x, want %#x", got, last+1)
	}
}

func TestClockRealWall(t *testing.T) {
	c := NewClock(nil)
	before := time.Now().UnixMilli()
	n := c.Now()
	after := time.Now().UnixMilli()
	if tm, _ := HLCTime(n); tm.UnixMilli() < before || tm.UnixMilli() > after {
		t.Fatalf("Now with the real wall reads %v, outside [%d, %d]", tm, before, after)
	}
}

func TestClockConcurrent(t *testing.T) {
	w := &utWall{t: time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)}
	c := NewClock(w.now)
	const goroutines, each = 8, 2000
	results := make([][]uint64, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := make([]uint64, 0, each)
			for i := range each {
				switch i % 50 {
				case 10:
					w.set(w.now().Add(-time.Millisecond)) // backwards
				case 20:
					w.set(w.now().Add(2 * time.Millisecond))
				case 30:
					c.Observe(c.Last() + 5)
				}
				n := c.Now()
				if len(out) > 0 && n <= out[len(out)-1] {
					t.Errorf("goroutine %d: Now %#x after %#x", g, n, out[len(out)-1])
					return
				}
				out = append(out, n)
			}
			results[g] = out
		}()
	}
	wg.Wait()
	seen := make(map[uint64]bool, goroutines*each)
	for _, out := range results {
		for _, n := range out {
			if seen[n] {
				t.Fatalf("Now returned %#x twice", n)
			}
			seen[n] = true
		}
	}
}

// TestClockMonotonicAcrossRestart writes with a wall clock far in the future,
// then restarts the copy with a clock reading the real time: the next local
// write must still be stamped after every earlier one, whatever the restart
// recovers from (a checkpoint, a log replay, or a checkpoint whose log has
// been truncated).
func TestClockMonotonicAcrossRestart(t *testing.T) {
	ctx := context.Background()
	future := time.Now().Add(1000 * time.Hour)

	for _, mode := range []string{"close", "crash", "truncated", "remote-only"} {
		t.Run(mode, func(t *testing.T) {
			fw := &utWall{t: future}
			opts := utOptions("n1")
			opts.Clock = NewClock(fw.now)
			if mode == "truncated" {
				opts.Retention = 1
			}
			dir := t.TempDir()
			tb := utOpen(t, dir, opts)

			var maxHLC uint64
			note := func(v wal.Version, err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
				maxHLC = max(maxHLC, v.HLC)
			}
			if mode == "remote-only" {
				// Only a peer's writes carry the future; nothing local does.
				for i := range 5 {
					h := HLC(future.UnixMilli(), uint16(i))
					utApply(t, tb, utPut(string(rune('a'+i)), "v", h, "peer"))
					maxHLC = max(maxHLC, h)
				}
			} else {
				for i := range 20 {
					note(tb.Put(ctx, []byte{byte('a' + i%5)}, []byte{byte(i)}))
					if i%4 == 0 {
						note(tb.Delete(ctx, []byte{byte('a' + i%5)}))
					}
				}
			}
			if mode == "truncated" {
				// The newest future stamp is only in the checkpoint: the log
				// keeps just one entry, an old-stamped remote write.
				if err := tb.Checkpoint(); err != nil {
					t.Fatal(err)
				}
				utApply(t, tb, utPut("old", "v", HLC(1000, 0), "peer"))
				if err := tb.Checkpoint(); err != nil {
					t.Fatal(err)
				}
				first, last := tb.current().Bounds()
				if first != last {
					t.Fatalf("log holds %d..%d, want only the last entry", first, last)
				}
				e, err := tb.current().Read(last)
				if err != nil || e.Version.HLC >= maxHLC {
					t.Fatalf("the last log entry %+v (%v) should be older than the future writes", e.Version, err)
				}
			}

			var reopenDir string
			switch mode {
			case "crash":
				reopenDir = utCopyDir(t, dir) // no checkpoint at all: the log alone
				if len(checkpointFiles(reopenDir)) != 0 {
					t.Fatal("the crash copy unexpectedly holds a checkpoint")
				}
			default:
				if err := tb.Close(); err != nil {
					t.Fatal(err)
				}
				reopenDir = dir
			}

			ropts := utOptions("n1")
			ropts.Clock = NewClock(nil) // the real wall: far behind the stamps
			re := utOpen(t, reopenDir, ropts)
			if got := ropts.Clock.Last(); got < maxHLC {
				t.Fatalf("after recovery the clock is at %#x, behind the newest stamp %#x", got, maxHLC)
			}
			v, err := re.Put(ctx, []byte("a"), []byte("after restart"))
			if err != nil {
				t.Fatal(err)
			}
			if v.HLC <= maxHLC {
				t.Fatalf("the first write after the restart is stamped %#x, not after the newest earlier stamp %#x", v.HLC, maxHLC)
			}
			if r, err := re.Get([]byte("a")); err != nil || string(r.Value) != "after restart" {
				t.Fatalf("the write after the restart lost to an older one: %+v, %v", r, err)
			}
		})
	}
}

func TestTimestampJSON(t *testing.T) {
	ts := Timestamp(HLC(1796223845123, 7)) // 2026-12-02T15:04:05.123Z, counter 7
	b, err := json.Marshal(struct {
		HLC Timestamp `json:"hlc"`
	}{ts})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"hlc":"117717325913980935"}`; string(b) != want {
		t.Errorf("marshal: %s, want %s", b, want)
	}
	if got := ts.Time(); got != "2026-12-02T15:04:05.123Z" {
		t.Errorf("Time() = %q", got)
	}
	cases := []struct {
		in   string
		want Timestamp
		err  string // "" for ok
	}{
		{`"117717325913980935"`, ts, ""},
		{`117717325913980935`, ts, ""}, // a number, as older versions wrote it
		{`"0"`, 0, ""},
		{`"18446744073709551615"`, Timestamp(math.MaxUint64), ""},
		{`18446744073709551615`, Timestamp(math.MaxUint64), ""},
		{`"18446744073709551616"`, 0, "fits 64 bits"},
		{`""`, 0, "not a decimal number"},
		{`"-1"`, 0, "not a decimal number"},
		{`-1`, 0, "not a decimal number"},
		{`1e5`, 0, "not a decimal number"},
		{`1.0`, 0, "not a decimal number"},
		{`" 12"`, 0, "not a decimal number"},
		{`"0x10"`, 0, "not a decimal number"},
		{`true`, 0, "not a decimal number"},
		{`{}`, 0, "not a decimal number"},
		{`"12\u0033"`, 0, "not a decimal number"},
	}
	for _, c := range cases {
		var got Timestamp
		err := json.Unmarshal([]byte(c.in), &got)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("unmarshal %s = %d, %v, want %d", c.in, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("unmarshal %s = %d, %v, want an error saying %q", c.in, got, err, c.err)
		}
	}
}
