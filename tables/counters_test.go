package tables

import (
	"context"
	"sync"
	"testing"
	"time"
)

// syncRecorder is an Observer that keeps what it is told.
type syncRecorder struct {
	mu      sync.Mutex
	syncs   int
	entries int
	tables  map[string]bool
}

func (r *syncRecorder) Synced(table string, took time.Duration, entries int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.syncs++
	r.entries += entries
	if r.tables == nil {
		r.tables = map[string]bool{}
	}
	r.tables[table] = true
}

// TestCounters: Stats counts local puts and deletes, remote entries adopted
// and those that lost last-write-wins, and the Observer hears of every
// fsync with the entries it made durable.
func TestCounters(t *testing.T) {
	rec := &syncRecorder{}
	opts := utOptions("a")
	opts.NoSync = false // fsyncs happen, so the observer is told
	opts.Observer = rec
	tb := utOpen(t, t.TempDir(), opts)
	ctx := context.Background()
	for _, k := range []string{"k1", "k2", "k3"} {
		if _, err := tb.Put(ctx, []byte(k), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := tb.Delete(ctx, []byte("k1")); err != nil {
		t.Fatal(err)
	}
	now := tb.opts.Clock.Now()
	// k2 newer from b: adopted; k3 from long ago: rejected; k9 new: adopted.
	if n := utApply(t, tb, utPut("k2", "b", now+1000, "b"), utPut("k3", "old", 1, "b"), utPut("k9", "b", 5, "b")); n != 2 {
		t.Fatalf("adopted %d, want 2", n)
	}
	// A refused write (too large) counts as nothing.
	if _, err := tb.Put(ctx, nil, []byte("v")); err == nil {
		t.Fatal("an empty key was taken")
	}
	st := tb.Stats()
	if st.Puts != 3 || st.Deletes != 1 || st.Adopted != 2 || st.Rejected != 1 {
		t.Fatalf("puts %d deletes %d adopted %d rejected %d, want 3 1 2 1", st.Puts, st.Deletes, st.Adopted, st.Rejected)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Every entry written to the log (4 local, 2 adopted) was made durable
	// by some fsync the observer heard of.
	if rec.entries != 6 || rec.syncs < 1 || rec.syncs > 6 || !rec.tables["unit"] {
		t.Fatalf("observer: %d fsyncs of %d entries (tables %v), want 1 to 6 fsyncs of 6 entries of unit", rec.syncs, rec.entries, rec.tables)
	}
}

// TestLogFilesAndEntryVersion: the copy reports its log's files and the
// version of an entry by offset.
func TestLogFilesAndEntryVersion(t *testing.T) {
	tb := utNew(t, "a")
	v, err := tb.Put(context.Background(), []byte("k"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	_, last := tb.Bounds()
	got, err := tb.EntryVersion(last)
	if err != nil || got != v {
		t.Fatalf("EntryVersion(%d) = %+v, %v; want %+v", last, got, err, v)
	}
	if _, err := tb.EntryVersion(last + 1); err == nil {
		t.Fatal("EntryVersion past the end succeeded")
	}
	segs, bytes, err := tb.LogFiles()
	if err != nil || segs != 1 || bytes <= 0 {
		t.Fatalf("LogFiles() = %d, %d, %v; want 1 segment with bytes", segs, bytes, err)
	}
}
