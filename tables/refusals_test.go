package tables

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/wal"
)

// lockedBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A batch with refused entries: the admitted ones are applied (and logged
// in this copy's log, so relayed), the refused ones are not, the error says
// how many were refused and why, and the count is in Stats.
func TestApplySkipsRefusedEntries(t *testing.T) {
	var logs lockedBuffer
	opts := utOptions("n1")
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.Admit = func(e *wal.Entry) error {
		if e.Version.Origin == "evil" {
			return errors.New("evil may not")
		}
		return nil
	}
	tb := utOpen(t, t.TempDir(), opts)
	now := time.Now()
	soon := HLC(now.Add(MaxFuture/2).UnixMilli(), 0)
	tooLate := HLC(now.Add(2*MaxFuture).UnixMilli(), 0)
	n, err := tb.Apply(context.Background(), []wal.Entry{
		utPut("a", "1", 5, "good"),
		utPut("b", "2", 5, "evil"),
		utPut("c", "3", tooLate, "good"),
		utPut("d", "4", soon, "good"),
		utPut("e", "5", ^uint64(0), "good"),
	})
	var re *RefusedError
	if n != 2 || !errors.As(err, &re) || re.N != 3 || !strings.Contains(err.Error(), "evil may not") {
		t.Fatalf("Apply = %d, %v; want 2 adopted and 3 refused", n, err)
	}
	for key, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true, "e": false} {
		if _, err := tb.Get([]byte(key)); (err == nil) != want {
			t.Errorf("%s present = %v, want %v", key, err == nil, want)
		}
	}
	if utLast(tb) != 2 {
		t.Errorf("log holds %d entries, want the 2 admitted", utLast(tb))
	}
	if st := tb.Stats(); st.Refused != 3 {
		t.Errorf("Stats.Refused = %d", st.Refused)
	}
	// The clock did not move to a refused timestamp.
	if v, err := tb.Put(context.Background(), []byte("x"), nil); err != nil || v.HLC > HLC(time.Now().Add(MaxFuture).UnixMilli(), 0xffff) {
		t.Errorf("local write after refusals stamped %d, %v", v.HLC, err)
	}
	// All refused: nothing applied, the error says so.
	if n, err := tb.Apply(context.Background(), []wal.Entry{utPut("z", "1", 5, "evil")}); n != 0 || !errors.As(err, &re) {
		t.Errorf("Apply of refused only = %d, %v", n, err)
	}

	// A flood from one origin is logged once (then once a minute), not per entry.
	for i := range 200 {
		tb.Apply(context.Background(), []wal.Entry{utPut("f", "1", uint64(i), "evil")})
	}
	if got := strings.Count(logs.String(), "origin=evil"); got != 1 {
		t.Errorf("201 refusals from evil were logged %d times, want once:\n%s", got, logs.String())
	}
	if got := strings.Count(logs.String(), "origin=good"); got != 1 {
		t.Errorf("refusals from good were logged %d times, want once", got)
	}
}

// Local writes get their proof from Sign once their version is stamped; the
// proof is kept with the record (view, checkpoint, log) and sent with it.
func TestSignLocalWrites(t *testing.T) {
	opts := utOptions("n1")
	opts.Sign = func(e *wal.Entry) []byte {
		return []byte("signed " + string(e.Key) + " at " + e.Version.Origin)
	}
	dir := t.TempDir()
	tb := utOpen(t, dir, opts)
	ctx := context.Background()
	if _, err := tb.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Delete(ctx, []byte("gone")); err != nil {
		t.Fatal(err)
	}
	// A remote entry keeps the proof it came with.
	utApply(t, tb, wal.Entry{Op: wal.OpPut, Key: []byte("r"), Value: []byte("v"), Version: wal.Version{HLC: 9, Origin: "p"}, Proof: []byte("theirs")})
	check := func(what string, tb *Table) {
		t.Helper()
		recs, _, err := tb.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"k": "signed k at n1", "gone": "signed gone at n1", "r": "theirs"}
		for _, r := range recs {
			if string(r.Proof) != want[string(r.Key)] {
				t.Errorf("%s: %s has proof %q, want %q", what, r.Key, r.Proof, want[string(r.Key)])
			}
			delete(want, string(r.Key))
		}
		if len(want) != 0 {
			t.Errorf("%s: missing %v", what, want)
		}
	}
	check("live", tb)
	e, err := tb.current().Read(1)
	if err != nil || string(e.Proof) != "signed k at n1" {
		t.Errorf("log entry 1: %q, %v", e.Proof, err)
	}
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	tb.Close()
	check("reopened", utOpen(t, dir, opts))
}
