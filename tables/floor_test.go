package tables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cortex-mesh/cortex/wal"
)

func TestBelowFloor(t *testing.T) {
	cases := []struct {
		name           string
		hlc, floor     uint64
		snapshot       bool
		publisherFloor uint64
		want           bool
	}{
		{"no floor", 5, 0, false, 0, false},
		{"at the floor", 10, 10, false, 0, false},
		{"above", 11, 10, false, 0, false},
		{"log entry below", 9, 10, false, 0, true},
		{"log entry below, publisher complete", 9, 10, false, 20, true},
		{"snapshot record below, publisher behind", 9, 10, true, 5, true},
		{"snapshot record below, publisher rebuilding", 9, 10, true, 0, true},
		{"snapshot record below, publisher at the floor", 9, 10, true, 10, false},
		{"snapshot record below, publisher past it", 9, 10, true, 30, false},
	}
	for _, c := range cases {
		if got := belowFloor(c.hlc, c.floor, c.snapshot, c.publisherFloor); got != c.want {
			t.Errorf("%s: belowFloor(%d, %d, %v, %d) = %v, want %v", c.name, c.hlc, c.floor, c.snapshot, c.publisherFloor, got, c.want)
		}
	}
}

// utNewest is the size of the newest checkpoint file of a copy.
func utNewest(t *testing.T, dir string) int64 {
	t.Helper()
	path, _, ok := NewestCheckpoint(dir)
	if !ok {
		t.Fatal("no checkpoint")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestPurgeDropsOldTombstonesAndRefusesOlderChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tb := utOpen(t, dir, utOptions("home"))
	const n = 2000
	for i := range n {
		utApply(t, tb, utPut(fmt.Sprintf("k%05d", i), "some value of a fair size", uint64(100+i), "office"))
	}
	for i := range n {
		utApply(t, tb, utDel(fmt.Sprintf("k%05d", i), uint64(10_000+i), "office"))
	}
	utApply(t, tb, utDel("late", 50_000, "office"), utPut("kept", "v", 5, "office"))
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	before := utNewest(t, dir)
	if st := tb.Stats(); st.Tombstones != n+1 || st.Keys != 1 {
		t.Fatalf("before the purge: %d tombstones, %d keys", st.Tombstones, st.Keys)
	}

	purged, err := tb.Purge(ctx, 20_000)
	if err != nil {
		t.Fatal(err)
	}
	if purged != n {
		t.Fatalf("purged %d, want %d", purged, n)
	}
	s := utCheckConsistent(t, tb) // digest and counts kept
	if s.Tombstones != 1 || s.Keys != 1 || tb.Floor() != 20_000 {
		t.Fatalf("after the purge: %d tombstones, %d keys, floor %d", s.Tombstones, s.Keys, tb.Floor())
	}
	if after := utNewest(t, dir); after*4 > before {
		t.Fatalf("the checkpoint went from %d to %d bytes", before, after)
	}

	// A change older than the floor is not adopted (from a log stream, a
	// repair, a publisher's snapshot that is not complete below the floor);
	// a newer one is.
	old := utPut("k00001", "resurrected", 150, "laptop")
	if got := utApply(t, tb, old); got != 0 {
		t.Fatalf("an older put was adopted after the purge")
	}
	if got, err := tb.ApplySnapshot(ctx, []wal.Entry{old}, 10_000); err != nil || got != 0 {
		t.Fatalf("a snapshot record from a publisher behind the floor: adopted %d, %v", got, err)
	}
	if st := tb.Stats(); st.BelowFloor != 2 {
		t.Fatalf("BelowFloor = %d, want 2", st.BelowFloor)
	}
	if _, err := tb.Get([]byte("k00001")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("k00001 came back: %v", err)
	}
	if got := utApply(t, tb, utPut("k00002", "new", 30_000, "laptop")); got != 1 {
		t.Fatal("a put newer than the floor was not adopted")
	}
	// Local writes are newer than any floor a horizon can give (now - grace).
	if _, err := tb.Put(ctx, []byte("k00003"), []byte("local")); err != nil {
		t.Fatal(err)
	}

	// Reopen: the floor persists, nothing comes back, older changes are
	// still refused.
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	tb = utOpen(t, dir, utOptions("home"))
	if tb.Floor() != 20_000 {
		t.Fatalf("floor after reopen: %d", tb.Floor())
	}
	s = utCheckConsistent(t, tb)
	if s.Tombstones != 1 || s.Keys != 3 {
		t.Fatalf("after reopen: %d tombstones, %d keys, want 1 and 3", s.Tombstones, s.Keys)
	}
	if got := utApply(t, tb, old); got != 0 {
		t.Fatal("an older put was adopted after the reopen")
	}
	// A lower horizon never lowers the floor.
	if _, err := tb.Purge(ctx, 100); err != nil || tb.Floor() != 20_000 {
		t.Fatalf("Purge(100): floor %d, %v", tb.Floor(), err)
	}
}

// The log still holds a purged key's put and its tombstone; a crash
// before the checkpoint that follows a purge replays both: the purge
// runs again at open.
func TestOpenPurgesWhatTheFloorSays(t *testing.T) {
	dir := t.TempDir()
	tb := utOpen(t, dir, utOptions("home"))
	utApply(t, tb, utPut("a", "1", 100, "office"), utDel("a", 200, "office"), utPut("b", "2", 150, "office"), utDel("c", 900, "office"))
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, f := range checkpointFiles(dir) {
		os.Remove(f.path) // as if the copy had never checkpointed
	}
	if err := WriteFloor(dir, 500, false); err != nil {
		t.Fatal(err)
	}
	tb = utOpen(t, dir, utOptions("home"))
	s := utCheckConsistent(t, tb)
	if s.Tombstones != 1 || s.Keys != 1 {
		t.Fatalf("%d tombstones and %d keys after open, want 1 and 1 (b, and c's newer tombstone)", s.Tombstones, s.Keys)
	}
	if _, err := tb.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a came back: %v", err)
	}
	if _, _, ok := NewestCheckpoint(dir); !ok {
		t.Fatal("no checkpoint after purging at open")
	}
}

func TestRebuildTakesOldRecordsOnlyFromACompletePublisher(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	tb := utOpen(t, dir, utOptions("home"))
	// A copy restored from an old backup: it holds a put that the others
	// deleted and purged, and a newer write of its own.
	utApply(t, tb, utPut("gone", "old", 100, "office"), utPut("fresh", "new", 900, "office"))
	if _, err := tb.SetCursor("office", Cursor{LogID: "x", Offset: 7}); err != nil {
		t.Fatal(err)
	}
	resync := tb.Resync()
	dropped, err := tb.Rebuild(ctx, 500)
	if err != nil {
		t.Fatal(err)
	}
	if dropped != 1 || !tb.Rebuilding() || tb.CompleteBelow() != 0 || tb.Floor() != 500 {
		t.Fatalf("Rebuild: dropped %d, rebuilding %v, complete below %d, floor %d", dropped, tb.Rebuilding(), tb.CompleteBelow(), tb.Floor())
	}
	select {
	case <-resync:
	default:
		t.Fatal("Rebuild did not signal the subscriptions to start again")
	}
	if tb.HasCursor() {
		t.Fatal("Rebuild kept the cursors")
	}
	utCheckConsistent(t, tb)
	if _, err := tb.Get([]byte("gone")); !errors.Is(err, ErrNotFound) {
		t.Fatal("the restored put survived the rebuild")
	}
	if _, err := tb.Get([]byte("fresh")); err != nil {
		t.Fatalf("a record newer than the horizon was dropped: %v", err)
	}

	live := utPut("live", "kept by everyone", 50, "laptop")
	if n, _ := tb.ApplySnapshot(ctx, []wal.Entry{live, utPut("gone", "old", 100, "laptop")}, 400); n != 0 {
		t.Fatal("records older than the floor adopted from a publisher not complete below it")
	}
	if still, err := tb.SnapshotDone(400, tb.RebuildGeneration()); err != nil || !still {
		t.Fatalf("a snapshot of a publisher behind the floor ended the rebuild: %v %v", still, err)
	}
	if n, _ := tb.ApplySnapshot(ctx, []wal.Entry{live}, 600); n != 1 {
		t.Fatal("a complete publisher's record older than the floor was refused")
	}
	if still, err := tb.SnapshotDone(600, tb.RebuildGeneration()); err != nil || still {
		t.Fatalf("SnapshotDone(600): still rebuilding %v, %v", still, err)
	}
	if tb.CompleteBelow() != 500 {
		t.Fatalf("CompleteBelow = %d after the rebuild", tb.CompleteBelow())
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	tb = utOpen(t, dir, utOptions("home"))
	if tb.Rebuilding() || tb.Floor() != 500 {
		t.Fatalf("after reopen: rebuilding %v floor %d", tb.Rebuilding(), tb.Floor())
	}
	if _, err := tb.Get([]byte("live")); err != nil {
		t.Fatalf("live after reopen: %v", err)
	}
	if _, err := tb.Get([]byte("gone")); !errors.Is(err, ErrNotFound) {
		t.Fatal("gone came back at reopen")
	}
}

func TestRebuildingCopyDropsOldRecordsAgainAtOpen(t *testing.T) {
	dir := t.TempDir()
	tb := utOpen(t, dir, utOptions("home"))
	utApply(t, tb, utPut("old", "v", 100, "office"), utPut("new", "v", 900, "office"))
	tb.Close()
	for _, f := range checkpointFiles(dir) {
		os.Remove(f.path)
	}
	// A crash between the floor file and the checkpoint of a rebuild.
	if err := WriteFloor(dir, 500, true); err != nil {
		t.Fatal(err)
	}
	tb = utOpen(t, dir, utOptions("home"))
	if s := utCheckConsistent(t, tb); s.Keys != 1 || !tb.Rebuilding() {
		t.Fatalf("%d keys, rebuilding %v: want only the record newer than the floor", s.Keys, tb.Rebuilding())
	}
}

func TestMalformedFloorFailsTheOpen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, floorFile), []byte("{nope"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tb, err := Open(dir, utOptions("home")); err == nil {
		tb.Close()
		t.Fatal("a malformed floor file opened")
	}
}

func TestAckBounds(t *testing.T) {
	ctx := context.Background()
	tb := utNew(t, "home")
	utApply(t, tb, utPut("a", "1", 300, "office"), utPut("b", "1", 100, "office"), utPut("c", "1", 200, "office"))
	tb.Ack("office", 3) // has everything
	tb.Ack("laptop", 1) // lacks b and c
	now, bounds, err := tb.AckBounds(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, b := range bounds {
		got[b.Subscriber] = b.Bound
	}
	if got["office"] != now || got["laptop"] != 100 {
		t.Fatalf("bounds %v (now %d): want office at now, laptop at 100", got, now)
	}
}

// A snapshot that began before a rebuild (a higher horizon) had its records
// older than the new floor dropped by it: it does not complete the copy,
// whose next snapshot must be whole.
func TestSnapshotAcrossARebuildDoesNotComplete(t *testing.T) {
	ctx := context.Background()
	tb := utOpen(t, t.TempDir(), utOptions("home"))
	defer tb.Close()
	if _, err := tb.Rebuild(ctx, 500); err != nil {
		t.Fatal(err)
	}
	gen := tb.RebuildGeneration() // the snapshot begins
	if n, _ := tb.ApplySnapshot(ctx, []wal.Entry{utPut("early", "v", 550, "office")}, 800); n != 1 {
		t.Fatal("a complete publisher's record was refused")
	}
	if _, err := tb.Rebuild(ctx, 600); err != nil { // drops "early"
		t.Fatal(err)
	}
	if n, _ := tb.ApplySnapshot(ctx, []wal.Entry{utPut("late", "v", 560, "office")}, 800); n != 1 {
		t.Fatal("a complete publisher's record was refused")
	}
	if still, err := tb.SnapshotDone(800, gen); err != nil || !still {
		t.Fatalf("a snapshot that began before the rebuild completed the copy: still %v, %v", still, err)
	}
	if _, err := tb.Get([]byte("early")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("early: %v", err)
	}
	// A whole snapshot after the rebuild completes it.
	gen = tb.RebuildGeneration()
	tb.ApplySnapshot(ctx, []wal.Entry{utPut("early", "v", 550, "office"), utPut("late", "v", 560, "office")}, 800)
	if still, err := tb.SnapshotDone(800, gen); err != nil || still {
		t.Fatalf("a whole snapshot after the rebuild: still %v, %v", still, err)
	}
	if _, err := tb.Get([]byte("early")); err != nil {
		t.Fatalf("early after the whole snapshot: %v", err)
	}
}
