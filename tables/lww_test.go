package tables

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/wal"
)

func TestAdopt(t *testing.T) {
	v := func(hlc uint64, origin string) wal.Version { return wal.Version{HLC: hlc, Origin: origin} }
	cases := []struct {
		name              string
		incoming, current wal.Version
		exists            bool
		want              bool
	}{
		{"newer hlc wins", v(10, "a"), v(9, "z"), true, true},
		{"older hlc loses", v(9, "z"), v(10, "a"), true, false},
		{"same hlc, greater origin wins", v(10, "b"), v(10, "a"), true, true},
		{"same hlc, smaller origin loses", v(10, "a"), v(10, "b"), true, false},
		{"origin compared bytewise", v(10, "node10"), v(10, "node9"), true, false},
		{"longer origin with same prefix wins", v(10, "ab"), v(10, "a"), true, true},
		{"equal version is a duplicate", v(10, "a"), v(10, "a"), true, false},
		{"zero versions are equal", v(0, ""), v(0, ""), true, false},
		{"nothing held adopts a newer write", v(10, "a"), v(0, ""), false, true},
		{"nothing held adopts an older write", v(1, "a"), v(99, "z"), false, true},
		{"nothing held adopts an equal write", v(10, "a"), v(10, "a"), false, true},
		{"max hlc wins", v(^uint64(0), "a"), v(^uint64(0)-1, "z"), true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Adopt(c.incoming, c.current, c.exists); got != c.want {
				t.Errorf("Adopt(%+v, %+v, %v) = %v, want %v", c.incoming, c.current, c.exists, got, c.want)
			}
			// The rule is antisymmetric: of two different versions exactly
			// one replaces the other.
			if c.exists && c.incoming != c.current {
				if Adopt(c.incoming, c.current, true) == Adopt(c.current, c.incoming, true) {
					t.Errorf("Adopt is not antisymmetric for %+v and %+v", c.incoming, c.current)
				}
			}
		})
	}
}

// TestApplyLWW runs the last-write-wins cases on real tables: a setup batch
// is applied first, then the batch under test, and the table must end with
// the expected record of key "k" (or nothing).
func TestApplyLWW(t *testing.T) {
	type want struct {
		value   string
		version wal.Version
		deleted bool
		absent  bool
	}
	ver := func(hlc uint64, origin string) wal.Version { return wal.Version{HLC: hlc, Origin: origin} }
	cases := []struct {
		name        string
		setup       []wal.Entry
		apply       []wal.Entry
		wantAdopted int
		want        want
	}{
		{
			name:        "key holding nothing adopts a put",
			apply:       []wal.Entry{utPut("k", "v", 5, "a")},
			wantAdopted: 1,
			want:        want{value: "v", version: ver(5, "a")},
		},
		{
			name:        "key holding nothing adopts a delete",
			apply:       []wal.Entry{utDel("k", 5, "a")},
			wantAdopted: 1,
			want:        want{deleted: true, version: ver(5, "a")},
		},
		{
			name:        "key holding nothing adopts a zero clock",
			apply:       []wal.Entry{utPut("k", "v", 0, "a")},
			wantAdopted: 1,
			want:        want{value: "v", version: ver(0, "a")},
		},
		{
			name:        "newer put wins",
			setup:       []wal.Entry{utPut("k", "old", 5, "b")},
			apply:       []wal.Entry{utPut("k", "new", 6, "a")},
			wantAdopted: 1,
			want:        want{value: "new", version: ver(6, "a")},
		},
		{
			name:        "older put ignored",
			setup:       []wal.Entry{utPut("k", "new", 6, "a")},
			apply:       []wal.Entry{utPut("k", "old", 5, "b")},
			wantAdopted: 0,
			want:        want{value: "new", version: ver(6, "a")},
		},
		{
			name:        "same hlc, greater origin wins",
			setup:       []wal.Entry{utPut("k", "from-a", 5, "a")},
			apply:       []wal.Entry{utPut("k", "from-b", 5, "b")},
			wantAdopted: 1,
			want:        want{value: "from-b", version: ver(5, "b")},
		},
		{
			name:        "same hlc, smaller origin ignored",
			setup:       []wal.Entry{utPut("k", "from-b", 5, "b")},
			apply:       []wal.Entry{utPut("k", "from-a", 5, "a")},
			wantAdopted: 0,
			want:        want{value: "from-b", version: ver(5, "b")},
		},
		{
			name:        "newer delete beats older put",
			setup:       []wal.Entry{utPut("k", "v", 5, "a")},
			apply:       []wal.Entry{utDel("k", 6, "a")},
			wantAdopted: 1,
			want:        want{deleted: true, version: ver(6, "a")},
		},
		{
			name:        "older delete loses to newer put",
			setup:       []wal.Entry{utPut("k", "v", 6, "a")},
			apply:       []wal.Entry{utDel("k", 5, "b")},
			wantAdopted: 0,
			want:        want{value: "v", version: ver(6, "a")},
		},
		{
			name:        "newer put beats older delete",
			setup:       []wal.Entry{utDel("k", 5, "a")},
			apply:       []wal.Entry{utPut("k", "back", 6, "a")},
			wantAdopted: 1,
			want:        want{value: "back", version: ver(6, "a")},
		},
		{
			name:        "older put loses to newer delete",
			setup:       []wal.Entry{utDel("k", 6, "a")},
			apply:       []wal.Entry{utPut("k", "zombie", 5, "z")},
			wantAdopted: 0,
			want:        want{deleted: true, version: ver(6, "a")},
		},
		{
			name:        "delete and put with the same hlc: origin decides (delete wins)",
			setup:       []wal.Entry{utPut("k", "v", 5, "a")},
			apply:       []wal.Entry{utDel("k", 5, "b")},
			wantAdopted: 1,
			want:        want{deleted: true, version: ver(5, "b")},
		},
		{
			name:        "delete and put with the same hlc: origin decides (put wins)",
			setup:       []wal.Entry{utDel("k", 5, "a")},
			apply:       []wal.Entry{utPut("k", "v", 5, "b")},
			wantAdopted: 1,
			want:        want{value: "v", version: ver(5, "b")},
		},
		{
			name:        "duplicate put is a no-op",
			setup:       []wal.Entry{utPut("k", "v", 5, "a")},
			apply:       []wal.Entry{utPut("k", "v", 5, "a")},
			wantAdopted: 0,
			want:        want{value: "v", version: ver(5, "a")},
		},
		{
			name:        "duplicate delete is a no-op",
			setup:       []wal.Entry{utDel("k", 5, "a")},
			apply:       []wal.Entry{utDel("k", 5, "a")},
			wantAdopted: 0,
			want:        want{deleted: true, version: ver(5, "a")},
		},
		{
			name:        "equal version with other content is not adopted",
			setup:       []wal.Entry{utPut("k", "first", 5, "a")},
			apply:       []wal.Entry{utPut("k", "second", 5, "a")},
			wantAdopted: 0,
			want:        want{value: "first", version: ver(5, "a")},
		},
		{
			name:        "one batch: older then newer",
			apply:       []wal.Entry{utPut("k", "old", 5, "a"), utPut("k", "new", 6, "a")},
			wantAdopted: 2,
			want:        want{value: "new", version: ver(6, "a")},
		},
		{
			name:        "one batch: newer then older",
			apply:       []wal.Entry{utPut("k", "new", 6, "a"), utPut("k", "old", 5, "a")},
			wantAdopted: 1,
			want:        want{value: "new", version: ver(6, "a")},
		},
		{
			name:        "one batch: put then newer delete",
			apply:       []wal.Entry{utPut("k", "v", 5, "a"), utDel("k", 6, "a")},
			wantAdopted: 2,
			want:        want{deleted: true, version: ver(6, "a")},
		},
		{
			name:        "one batch: newer delete then put",
			apply:       []wal.Entry{utDel("k", 6, "a"), utPut("k", "v", 5, "a")},
			wantAdopted: 1,
			want:        want{deleted: true, version: ver(6, "a")},
		},
		{
			name:        "one batch: same hlc, origins in either order",
			apply:       []wal.Entry{utPut("k", "b", 5, "b"), utPut("k", "a", 5, "a"), utPut("k", "c", 5, "c")},
			wantAdopted: 2,
			want:        want{value: "c", version: ver(5, "c")},
		},
		{
			name:        "one batch: the same entry twice",
			apply:       []wal.Entry{utPut("k", "v", 5, "a"), utPut("k", "v", 5, "a")},
			wantAdopted: 1,
			want:        want{value: "v", version: ver(5, "a")},
		},
		{
			name:        "one batch behind what the key holds",
			setup:       []wal.Entry{utPut("k", "held", 10, "a")},
			apply:       []wal.Entry{utPut("k", "x", 8, "a"), utDel("k", 9, "a"), utPut("k", "y", 7, "z")},
			wantAdopted: 0,
			want:        want{value: "held", version: ver(10, "a")},
		},
		{
			name:        "other keys only: k still holds nothing",
			apply:       []wal.Entry{utPut("j", "x", 1, "a"), utDel("ka", 2, "a")},
			wantAdopted: 2,
			want:        want{absent: true},
		},
		{
			name:        "one batch: other keys do not interfere",
			setup:       []wal.Entry{utPut("k", "held", 10, "a")},
			apply:       []wal.Entry{utPut("j", "x", 1, "a"), utPut("k", "x", 8, "a"), utPut("l", "y", 100, "z")},
			wantAdopted: 2,
			want:        want{value: "held", version: ver(10, "a")},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tb := utNew(t, "local")
			if len(c.setup) > 0 {
				utApply(t, tb, c.setup...)
			}
			before := utLast(tb)
			got := utApply(t, tb, c.apply...)
			if got != c.wantAdopted {
				t.Errorf("Apply adopted %d, want %d", got, c.wantAdopted)
			}
			if grew := utLast(tb) - before; grew != uint64(c.wantAdopted) {
				t.Errorf("the log grew by %d entries, want %d (one per adopted entry)", grew, c.wantAdopted)
			}
			if tb.Stats().Applied != utLast(tb) {
				t.Errorf("Stats().Applied %d, log last %d", tb.Stats().Applied, utLast(tb))
			}
			recs, err := tb.ScanAll([]byte("k"), nil, 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(recs) > 0 && string(recs[0].Key) != "k" {
				recs = nil
			}
			switch {
			case c.want.absent:
				if len(recs) != 0 {
					t.Fatalf("k holds %+v, want nothing", recs[0])
				}
			case len(recs) == 0:
				t.Fatal("k holds nothing")
			default:
				r := recs[0]
				if r.Version != c.want.version || r.Deleted != c.want.deleted || (!r.Deleted && string(r.Value) != c.want.value) {
					t.Errorf("k = %s, want value %q deleted=%v version %+v", utFormat(recs), c.want.value, c.want.deleted, c.want.version)
				}
				g, err := tb.Get([]byte("k"))
				if c.want.deleted != errors.Is(err, ErrNotFound) || (!c.want.deleted && string(g.Value) != c.want.value) {
					t.Errorf("Get(k) = %+v, %v", g, err)
				}
			}

			// Re-applying both batches changes nothing at all.
			st := utCheckConsistent(t, tb)
			last := utLast(tb)
			if n := utApply(t, tb, append(append([]wal.Entry{}, c.setup...), c.apply...)...); n != 0 {
				t.Errorf("re-apply adopted %d, want 0", n)
			}
			if utLast(tb) != last {
				t.Errorf("re-apply grew the log from %d to %d", last, utLast(tb))
			}
			utSameState(t, "after re-apply", utSnapshot(t, tb), st)

			// And the log replays to the same state.
			dir := tb.Dir()
			if err := tb.Close(); err != nil {
				t.Fatal(err)
			}
			re := utOpen(t, dir, utOptions("local"))
			utSameState(t, "after reopen", utCheckConsistent(t, re), st)
		})
	}
}

func TestApplyDuplicateIsNoOp(t *testing.T) {
	tb := utNew(t, "local")
	batch := []wal.Entry{utPut("a", "1", 5, "p"), utDel("b", 6, "p"), utPut("c", "", 7, "q")}
	if n := utApply(t, tb, batch...); n != 3 {
		t.Fatalf("first Apply adopted %d, want 3", n)
	}
	st, last := utSnapshot(t, tb), utLast(tb)
	for i := range 3 {
		if n := utApply(t, tb, batch...); n != 0 {
			t.Fatalf("re-apply %d adopted %d, want 0", i, n)
		}
		for _, e := range batch {
			if n := utApply(t, tb, e); n != 0 {
				t.Fatalf("re-apply of %+v alone adopted %d", e, n)
			}
		}
	}
	if utLast(tb) != last {
		t.Fatalf("duplicates grew the log from %d to %d", last, utLast(tb))
	}
	utSameState(t, "after duplicates", utSnapshot(t, tb), st)
	if n, err := tb.Apply(context.Background(), nil); n != 0 || err != nil {
		t.Fatalf("Apply(nil) = %d, %v", n, err)
	}
}

func TestApplyObservesClock(t *testing.T) {
	// A remote version moves the local clock, so the next local write of the
	// same key wins over it.
	tb := utNew(t, "local")
	future := HLC(time.Now().Add(MaxDrift/2).UnixMilli(), 3) // ahead of the wall clock, within the drift
	utApply(t, tb, utPut("k", "remote", future, "zzz"))
	v, err := tb.Put(context.Background(), []byte("k"), []byte("local"))
	if err != nil {
		t.Fatal(err)
	}
	if v.HLC <= future {
		t.Fatalf("local write stamped %d, not past the observed %d", v.HLC, future)
	}
	if r, _ := tb.Get([]byte("k")); string(r.Value) != "local" {
		t.Fatalf("k = %q, want the local write", r.Value)
	}
}

// A change stamped far ahead (admitted: within MaxFuture) moves the clock
// at most MaxDrift ahead of the wall clock, so that a peer cannot push this
// node's next writes past the horizon of the others.
func TestRemoteClockPushIsCapped(t *testing.T) {
	tb := utNew(t, "local")
	pushed := HLC(time.Now().Add(MaxFuture-time.Second).UnixMilli(), 0xfff0)
	utApply(t, tb, utPut("pushed", "x", pushed, "evil"))
	v, err := tb.Put(context.Background(), []byte("mine"), []byte("v"))
	if err != nil {
		t.Fatal(err)
	}
	if at, _ := HLCTime(v.HLC); at.After(time.Now().Add(MaxDrift + time.Second)) {
		t.Fatalf("the next local write is stamped %s, pushed by the remote change", at)
	}
	// Such a write is admitted by a peer whose clock is MaxFuture behind.
	behind := NewClock(func() time.Time { return time.Now().Add(-MaxFuture) })
	if v.HLC > behind.Horizon() {
		t.Fatal("a peer MaxFuture behind would refuse this node's write")
	}
	// A change beyond the horizon is refused for now, to be retried.
	_, err = tb.Apply(context.Background(), []wal.Entry{utPut("late", "x", HLC(time.Now().Add(time.Hour).UnixMilli(), 0), "evil")})
	var re *RefusedError
	if !errors.As(err, &re) || !re.Retry || OnlyRefused(err) || !errors.Is(err, ErrFuture) {
		t.Fatalf("Apply from an hour ahead: %v", err)
	}
}

// utModel computes the expected final records with the LWW rule.
func utModel(entries []wal.Entry) []Record {
	best := map[string]wal.Entry{}
	for _, e := range entries {
		cur, ok := best[string(e.Key)]
		if Adopt(e.Version, cur.Version, ok) {
			best[string(e.Key)] = e
		}
	}
	var out []Record
	for _, e := range best {
		r := Record{Key: append([]byte{}, e.Key...), Version: e.Version, Deleted: e.Op == wal.OpDelete}
		if !r.Deleted {
			r.Value = append([]byte{}, e.Value...)
		}
		out = append(out, r)
	}
	return out
}

// utRandomEntries makes n entries over a small key space with few distinct
// clocks and origins, so that ties and duplicates are common. A (key,
// version) pair always carries the same change, as it does in a real mesh.
func utRandomEntries(rng *rand.Rand, n int) []wal.Entry {
	byVersion := map[string]wal.Entry{}
	var out []wal.Entry
	for range n {
		key := fmt.Sprintf("key-%d", rng.IntN(12))
		ver := wal.Version{HLC: uint64(rng.IntN(30)), Origin: []string{"a", "b", "c", "node10", "node9"}[rng.IntN(5)]}
		id := fmt.Sprintf("%s|%d|%s", key, ver.HLC, ver.Origin)
		e, ok := byVersion[id]
		if !ok {
			if rng.IntN(4) == 0 {
				e = wal.Entry{Op: wal.OpDelete, Key: []byte(key), Version: ver}
			} else {
				val := make([]byte, rng.IntN(6))
				for i := range val {
					val[i] = byte(rng.IntN(256))
				}
				e = wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: val, Version: ver}
			}
			byVersion[id] = e
		}
		out = append(out, e)
	}
	return out
}

// utApplySplit applies entries in random batch sizes.
func utApplySplit(t testing.TB, tb *Table, rng *rand.Rand, entries []wal.Entry) {
	t.Helper()
	for len(entries) > 0 {
		n := 1 + rng.IntN(min(len(entries), 16))
		utApply(t, tb, entries[:n]...)
		entries = entries[n:]
	}
}

func TestApplyOrderIndependence(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3, 42, 20240601, 0xdeadbeef} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			t.Logf("seed %d", seed)
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
			entries := utRandomEntries(rng, 150+rng.IntN(150))

			a, b := utNew(t, "alpha"), utNew(t, "beta")
			orderA := append([]wal.Entry{}, entries...)
			rng.Shuffle(len(orderA), func(i, j int) { orderA[i], orderA[j] = orderA[j], orderA[i] })
			orderB := append([]wal.Entry{}, entries...)
			rng.Shuffle(len(orderB), func(i, j int) { orderB[i], orderB[j] = orderB[j], orderB[i] })
			utApplySplit(t, a, rng, orderA)
			utApply(t, b, orderB...) // one batch

			sa, sb := utCheckConsistent(t, a), utCheckConsistent(t, b)
			utSameState(t, "two orders", sa, sb)

			// Both equal the LWW model.
			model := utModel(entries)
			if len(model) != len(sa.Records) {
				t.Fatalf("table holds %d keys, the model %d", len(sa.Records), len(model))
			}
			byKey := map[string]Record{}
			for _, r := range model {
				byKey[string(r.Key)] = r
			}
			for _, r := range sa.Records {
				m := byKey[string(r.Key)]
				if r.Version != m.Version || r.Deleted != m.Deleted || string(r.Value) != string(m.Value) {
					t.Errorf("%s: table %s, model %s", r.Key, utFormat([]Record{r}), utFormat([]Record{m}))
				}
			}

			// Feeding every entry again, in yet another order, adopts nothing.
			rng.Shuffle(len(orderA), func(i, j int) { orderA[i], orderA[j] = orderA[j], orderA[i] })
			lastA := utLast(a)
			if n := utApply(t, a, orderA...); n != 0 {
				t.Errorf("re-apply adopted %d", n)
			}
			if utLast(a) != lastA {
				t.Errorf("re-apply grew the log")
			}

			// A copy fed one entry at a time in a third order agrees too, and a
			// restart of each copy recovers the same state.
			c := utNew(t, "gamma")
			orderC := append([]wal.Entry{}, entries...)
			rng.Shuffle(len(orderC), func(i, j int) { orderC[i], orderC[j] = orderC[j], orderC[i] })
			for _, e := range orderC {
				utApply(t, c, e)
			}
			utSameState(t, "one at a time", utCheckConsistent(t, c), sa)
			for _, tb := range []*Table{a, b, c} {
				dir := tb.Dir()
				if err := tb.Close(); err != nil {
					t.Fatal(err)
				}
				re := utOpen(t, dir, utOptions("again"))
				utSameState(t, "reopened", utCheckConsistent(t, re), sa)
			}
		})
	}
}

func TestApplyOrderIndependenceWithLocalWrites(t *testing.T) {
	// Local writes of one copy, shipped to another through Apply in a
	// scrambled order, give the same records.
	ctx := context.Background()
	seed := uint64(7)
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	src, dst := utNew(t, "src"), utNew(t, "dst")
	for range 200 {
		key := []byte(fmt.Sprintf("k%d", rng.IntN(15)))
		var err error
		if rng.IntN(3) == 0 {
			_, err = src.Delete(ctx, key)
		} else {
			_, err = src.Put(ctx, key, []byte(fmt.Sprint(rng.Int())))
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	recs, err := src.current().ReadRange(1, 1000)
	if err != nil || len(recs) != 200 {
		t.Fatalf("ReadRange: %d records, %v", len(recs), err)
	}
	entries := make([]wal.Entry, len(recs))
	for i, r := range recs {
		entries[i] = r.Entry
	}
	rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
	utApplySplit(t, dst, rng, entries)
	ss, sd := utCheckConsistent(t, src), utCheckConsistent(t, dst)
	utSameState(t, "shipped", sd, ss)
	if !reflect.DeepEqual(sd.Records, ss.Records) {
		t.Fatal("records differ")
	}
}

// Two changes of a key with the same version and different contents (a
// faulty or forging node): every copy keeps the same one, whatever the
// order, in one batch or two, and after a restart; equal contents are a
// duplicate.
func TestEqualVersionsConverge(t *testing.T) {
	x, y := utPut("k", "x", 50, "n"), utPut("k", "y", 50, "n")
	var want string
	for i, order := range [][][]wal.Entry{{{x}, {y}}, {{y}, {x}}, {{x, y}}, {{y, x}}} {
		dir := t.TempDir()
		tb := utOpen(t, dir, utOptions("local"))
		for _, batch := range order {
			utApply(t, tb, batch...)
		}
		r, err := tb.Get([]byte("k"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = string(r.Value)
		} else if string(r.Value) != want {
			t.Fatalf("order %d keeps %q, order 0 kept %q", i, r.Value, want)
		}
		if n := utApply(t, tb, utPut("k", want, 50, "n")); n != 0 {
			t.Fatalf("order %d: the same change again was adopted", i)
		}
		digest := tb.Stats().Digest
		tb.Close()
		re := utOpen(t, utCopyDir(t, dir), utOptions("local"))
		if got, _ := re.Get([]byte("k")); string(got.Value) != want || re.Stats().Digest != digest {
			t.Fatalf("order %d reopened: %q", i, got.Value)
		}
	}
}
