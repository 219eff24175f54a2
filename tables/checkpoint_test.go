package tables

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/wal"
)

// utEncodeCheckpoint is an independent encoder of the checkpoint format
// documented in checkpoint.go.
func utEncodeCheckpoint(ck CheckpointData) []byte {
	b := []byte(ckptMagic)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	str(ck.LogID)
	b = binary.AppendUvarint(b, ck.Offset)
	b = binary.AppendUvarint(b, ck.Clock)
	b = binary.AppendUvarint(b, uint64(len(ck.Items)))
	for _, it := range ck.Items {
		str(it[0])
		str(it[1])
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

// utWriteSome makes puts, overwrites and deletes on keys prefix-0..n-1.
func utWriteSome(t testing.TB, tb *Table, prefix string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		key := []byte(fmt.Sprintf("%s-%03d", prefix, i))
		if _, err := tb.Put(ctx, key, []byte(fmt.Sprintf("value %d of %s", i, prefix))); err != nil {
			t.Fatal(err)
		}
		switch i % 5 {
		case 1:
			if _, err := tb.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		case 2:
			if _, err := tb.Put(ctx, key, []byte("overwritten")); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func utCheckpointOffsets(dir string) []uint64 {
	var out []uint64
	for _, f := range checkpointFiles(dir) {
		out = append(out, f.offset)
	}
	return out
}

func TestCheckpointFile(t *testing.T) {
	tb := utNew(t, "n1")
	// Nothing written: nothing to checkpoint.
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := utCheckpointOffsets(tb.Dir()); len(got) != 0 {
		t.Fatalf("checkpoint of an empty table written: %v", got)
	}

	utWriteSome(t, tb, "a", 20)
	utApply(t, tb, utPut("remote", "r", 12345, "peer"), utDel("gone", 12346, "peer"))
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	st := tb.Stats()
	files := checkpointFiles(tb.Dir())
	if len(files) != 1 || files[0].offset != st.Applied {
		t.Fatalf("checkpoint files %v, want one at offset %d", files, st.Applied)
	}
	if want := filepath.Join(tb.Dir(), fmt.Sprintf("checkpoint-%020d", st.Applied)); files[0].path != want {
		t.Fatalf("checkpoint at %s, want %s", files[0].path, want)
	}
	data, err := os.ReadFile(files[0].path)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := DecodeCheckpoint(data)
	if err != nil {
		t.Fatalf("DecodeCheckpoint of a fresh checkpoint: %v", err)
	}
	if ck.LogID != tb.current().ID() || ck.Offset != st.Applied {
		t.Fatalf("checkpoint says log %s offset %d, want %s %d", ck.LogID, ck.Offset, tb.current().ID(), st.Applied)
	}
	if ck.Clock != tb.opts.Clock.Last() {
		t.Fatalf("checkpoint clock %#x, the table's clock %#x", ck.Clock, tb.opts.Clock.Last())
	}
	// The items are the view: exactly the records ScanAll returns, in order.
	recs, _ := tb.ScanAll(nil, nil, 0)
	if len(ck.Items) != len(recs) || int64(len(recs)) != st.Keys+st.Tombstones {
		t.Fatalf("checkpoint holds %d items, the view %d records", len(ck.Items), len(recs))
	}
	for i, it := range ck.Items {
		r, err := decodeRecord(it[0][len(userKeyPrefix):], it[1])
		if err != nil {
			t.Fatalf("item %d: %v", i, err)
		}
		if !reflect.DeepEqual(r, recs[i]) {
			t.Fatalf("item %d = %s, view %s", i, utFormat([]Record{r}), utFormat(recs[i:i+1]))
		}
	}
	// The independent encoder produces the same bytes.
	if enc := utEncodeCheckpoint(ck); string(enc) != string(data) {
		t.Fatalf("re-encoding the checkpoint gives other bytes (%d vs %d)", len(enc), len(data))
	}

	// Nothing changed: a second checkpoint is a no-op.
	info1, _ := os.Stat(files[0].path)
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	info2, err := os.Stat(files[0].path)
	if err != nil || !info2.ModTime().Equal(info1.ModTime()) || len(checkpointFiles(tb.Dir())) != 1 {
		t.Fatalf("a checkpoint without changes rewrote the file (%v)", err)
	}
	// A duplicate remote write changes nothing either.
	utApply(t, tb, utPut("remote", "r", 12345, "peer"))
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got := utCheckpointOffsets(tb.Dir()); !reflect.DeepEqual(got, []uint64{st.Applied}) {
		t.Fatalf("checkpoints %v after a duplicate", got)
	}

	// A new checkpoint replaces the old one.
	utWriteSome(t, tb, "b", 5)
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got, want := utCheckpointOffsets(tb.Dir()), []uint64{tb.Stats().Applied}; !reflect.DeepEqual(got, want) {
		t.Fatalf("checkpoints on disk %v, want only %v", got, want)
	}
	if m, _ := filepath.Glob(filepath.Join(tb.Dir(), "*.tmp")); len(m) != 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}
}

func TestCheckpointThenReopen(t *testing.T) {
	dir := t.TempDir()
	tb := utOpen(t, dir, utOptions("n1"))
	utWriteSome(t, tb, "before", 40)
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	ckAt := tb.Stats().Applied
	utWriteSome(t, tb, "after", 30)
	// Change keys the checkpoint holds, both ways.
	ctx := context.Background()
	if _, err := tb.Delete(ctx, []byte("before-000")); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Put(ctx, []byte("before-001"), []byte("resurrected")); err != nil {
		t.Fatal(err)
	}
	live := utCheckConsistent(t, tb)
	liveStats := tb.Stats()
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if got := utCheckpointOffsets(dir); !reflect.DeepEqual(got, []uint64{liveStats.Applied}) {
		t.Fatalf("after Close the checkpoints are %v, want one at %d (checkpoint at %d)", got, liveStats.Applied, ckAt)
	}
	if err := tb.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	re := utOpen(t, dir, utOptions("n1"))
	utSameState(t, "reopened", utCheckConsistent(t, re), live)
	rs := re.Stats()
	if rs.Applied != liveStats.Applied || rs.LogID != liveStats.LogID {
		t.Fatalf("reopened at %s/%d, want %s/%d", rs.LogID, rs.Applied, liveStats.LogID, liveStats.Applied)
	}
	// The copy keeps working: new writes continue the log.
	if _, err := re.Put(ctx, []byte("new"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	if re.Stats().Applied != liveStats.Applied+1 {
		t.Fatalf("first write after reopen at offset %d, want %d", re.Stats().Applied, liveStats.Applied+1)
	}
}

// TestCheckpointReplayAfterCrash copies the directory of an open table (as a
// crash would leave it) and recovers the copy: the checkpoint plus the replay
// of the log after it must rebuild the live state.
func TestCheckpointReplayAfterCrash(t *testing.T) {
	for _, withCheckpoint := range []bool{false, true} {
		t.Run(fmt.Sprintf("checkpoint=%v", withCheckpoint), func(t *testing.T) {
			dir := t.TempDir()
			tb := utOpen(t, dir, utOptions("n1"))
			utWriteSome(t, tb, "x", 30)
			var ckAt uint64
			if withCheckpoint {
				if err := tb.Checkpoint(); err != nil {
					t.Fatal(err)
				}
				ckAt = tb.Stats().Applied
			}
			utWriteSome(t, tb, "x", 17) // overwrites part of the checkpoint
			utWriteSome(t, tb, "y", 11)
			utApply(t, tb, utPut("x-003", "remote", HLC(1, 0), "peer"))                             // older: ignored
			utApply(t, tb, utDel("x-004", HLC(time.Now().Add(MaxFuture/2).UnixMilli(), 0), "peer")) // newer: adopted
			live := utCheckConsistent(t, tb)
			liveStats := tb.Stats()

			crash := utCopyDir(t, dir)
			if got := utCheckpointOffsets(crash); withCheckpoint && !reflect.DeepEqual(got, []uint64{ckAt}) || !withCheckpoint && len(got) != 0 {
				t.Fatalf("crash copy holds checkpoints %v", got)
			}
			if ckAt >= liveStats.Applied {
				t.Fatal("nothing written after the checkpoint")
			}
			re := utOpen(t, crash, utOptions("n1"))
			utSameState(t, "recovered", utCheckConsistent(t, re), live)
			if rs := re.Stats(); rs.Applied != liveStats.Applied || rs.LogID != liveStats.LogID {
				t.Fatalf("recovered at %s/%d, want %s/%d", rs.LogID, rs.Applied, liveStats.LogID, liveStats.Applied)
			}
			// Recovering the same crash copy twice gives the same result.
			if err := re.Close(); err != nil {
				t.Fatal(err)
			}
			re2 := utOpen(t, crash, utOptions("n1"))
			utSameState(t, "recovered twice", utCheckConsistent(t, re2), live)
		})
	}
}

func TestCheckpointRetention(t *testing.T) {
	dir := t.TempDir()
	opts := utOptions("n1")
	opts.Retention = 5
	opts.SegmentSize = 512 // many segments, so truncation really removes files
	tb := utOpen(t, dir, opts)
	utWriteSome(t, tb, "old", 40)
	st := tb.Stats()
	if st.FirstOffset != 1 {
		t.Fatalf("log starts at %d before any checkpoint", st.FirstOffset)
	}
	segsBefore, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	st = tb.Stats()
	if want := st.Applied + 1 - 5; st.FirstOffset != want {
		t.Fatalf("after a checkpoint at %d with retention 5 the log starts at %d, want %d", st.Applied, st.FirstOffset, want)
	}
	if first, last := tb.current().Bounds(); last-first+1 != 5 {
		t.Fatalf("log keeps %d..%d, want 5 entries", first, last)
	}
	if _, err := tb.current().Read(st.FirstOffset - 1); !errors.Is(err, wal.ErrTruncated) {
		t.Fatalf("read before the first offset: %v, want ErrTruncated", err)
	}
	segsAfter, _ := filepath.Glob(filepath.Join(dir, "wal", "0*"))
	if len(segsAfter) >= len(segsBefore) {
		t.Fatalf("truncation kept %d of %d segment files", len(segsAfter), len(segsBefore))
	}

	// More writes, a crash copy (checkpoint + the retained log + newer
	// entries), then a clean restart: both recover everything.
	utWriteSome(t, tb, "new", 25)
	live := utCheckConsistent(t, tb)
	crash := utCopyDir(t, dir)
	first := tb.Stats().FirstOffset
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	re := utOpen(t, dir, opts)
	if rs := re.Stats(); rs.FirstOffset <= first || rs.FirstOffset != rs.Applied+1-5 {
		t.Fatalf("after Close (a checkpoint) the log starts at %d (was %d, applied %d)", rs.FirstOffset, first, rs.Applied)
	}
	utSameState(t, "reopened", utCheckConsistent(t, re), live)
	if r, err := re.Get([]byte("old-000")); err != nil || string(r.Value) != "value 0 of old" {
		t.Fatalf("a key written before the truncated part of the log: %+v, %v", r, err)
	}
	rc := utOpen(t, crash, opts)
	utSameState(t, "crash copy", utCheckConsistent(t, rc), live)
	if rc.Stats().FirstOffset != first {
		t.Fatalf("crash copy's log starts at %d, want %d", rc.Stats().FirstOffset, first)
	}
}

func TestCheckpointBackground(t *testing.T) {
	// With CheckpointEvery set, checkpoints happen without being asked; Close
	// waits for the checkpointer, so after Close exactly one checkpoint, at
	// the last offset, is on disk.
	dir := t.TempDir()
	opts := utOptions("n1")
	opts.CheckpointEvery = 7
	opts.Retention = 3
	tb := utOpen(t, dir, opts)
	utWriteSome(t, tb, "bg", 60)
	live := utCheckConsistent(t, tb)
	applied := tb.Stats().Applied
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	if got := utCheckpointOffsets(dir); !reflect.DeepEqual(got, []uint64{applied}) {
		t.Fatalf("checkpoints %v, want [%d]", got, applied)
	}
	re := utOpen(t, dir, opts)
	utSameState(t, "reopened", utCheckConsistent(t, re), live)
}

func TestCheckpointCorrupt(t *testing.T) {
	setup := func(t *testing.T) (dir, path string) {
		dir = t.TempDir()
		tb := utOpen(t, dir, utOptions("n1"))
		utWriteSome(t, tb, "c", 10)
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		files := checkpointFiles(dir)
		if len(files) != 1 {
			t.Fatalf("checkpoints %v", files)
		}
		return dir, files[0].path
	}
	mutate := map[string]func(b []byte) []byte{
		"flip magic":   func(b []byte) []byte { b[0] ^= 0x20; return b },
		"flip middle":  func(b []byte) []byte { b[len(b)/2] ^= 0x01; return b },
		"flip crc":     func(b []byte) []byte { b[len(b)-1] ^= 0x80; return b },
		"truncated":    func(b []byte) []byte { return b[:len(b)-7] },
		"empty":        func(b []byte) []byte { return nil },
		"extra byte":   func(b []byte) []byte { return append(b, 0) },
		"only a magic": func(b []byte) []byte { return []byte(ckptMagic) },
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			dir, path := setup(t)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, m(data), 0o600); err != nil {
				t.Fatal(err)
			}
			// The copy opens: the checkpoint is skipped (and named), the
			// view rebuilt from the log, which still holds everything.
			tb := utOpen(t, dir, utOptions("n1"))
			if d := tb.Stats().Damage; !strings.Contains(d, path) || !strings.Contains(d, "checkpoint") {
				t.Errorf("damage does not name the checkpoint %s: %q", path, d)
			}
			if tb.Stats().Keys != 8 {
				t.Fatalf("%d keys recovered from the log, want 8", tb.Stats().Keys)
			}
			// A good checkpoint replaced it: the next open is clean.
			tb.Close()
			re := utOpen(t, dir, utOptions("n1"))
			if d := re.Stats().Damage; d != "" || re.Stats().Keys != 8 {
				t.Fatalf("reopened: damage %q, %d keys", d, re.Stats().Keys)
			}
		})
	}
}

func TestCheckpointMismatches(t *testing.T) {
	newCopy := func(t *testing.T) (string, CheckpointData, string) {
		dir := t.TempDir()
		tb := utOpen(t, dir, utOptions("n1"))
		utWriteSome(t, tb, "m", 6)
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		path := checkpointFiles(dir)[0].path
		data, _ := os.ReadFile(path)
		ck, err := DecodeCheckpoint(data)
		if err != nil {
			t.Fatal(err)
		}
		return dir, ck, path
	}
	// A checkpoint that does not belong is skipped, named in Stats.Damage;
	// the log still holds everything, so nothing is lost.
	skipped := func(t *testing.T, dir, path, want string) {
		t.Helper()
		tb := utOpen(t, dir, utOptions("n1"))
		if d := tb.Stats().Damage; !strings.Contains(d, path) || !strings.Contains(d, want) {
			t.Fatalf("damage %q does not name %s and %q", d, path, want)
		}
		if tb.Stats().Keys != 5 {
			t.Fatalf("%d keys, want 5", tb.Stats().Keys)
		}
	}
	t.Run("another log", func(t *testing.T) {
		dir, ck, path := newCopy(t)
		ck.LogID = strings.Repeat("ab", 16)
		os.WriteFile(path, utEncodeCheckpoint(ck), 0o600)
		skipped(t, dir, path, "belongs to log")
	})
	t.Run("offset differs from the name", func(t *testing.T) {
		dir, ck, path := newCopy(t)
		ck.Offset--
		os.WriteFile(path, utEncodeCheckpoint(ck), 0o600)
		skipped(t, dir, path, "says offset")
	})
	t.Run("ahead of the log", func(t *testing.T) {
		dir, ck, path := newCopy(t)
		ck.Offset += 10
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d", ck.Offset)), utEncodeCheckpoint(ck), 0o600)
		os.Remove(path)
		_, err := Open(dir, utOptions("n1"))
		if err == nil || !strings.Contains(err.Error(), "log ends at") {
			t.Fatalf("Open with a checkpoint ahead of the log: %v", err)
		}
	})
	t.Run("malformed record", func(t *testing.T) {
		dir, ck, path := newCopy(t)
		ck.Items[0][1] = "\x07garbage"
		os.WriteFile(path, utEncodeCheckpoint(ck), 0o600)
		skipped(t, dir, path, "malformed record")
	})
	t.Run("log truncated past the checkpoint", func(t *testing.T) {
		dir := t.TempDir()
		opts := utOptions("n1")
		opts.Retention = 2
		tb := utOpen(t, dir, opts)
		utWriteSome(t, tb, "m", 10)
		if err := tb.Checkpoint(); err != nil {
			t.Fatal(err)
		}
		utWriteSome(t, tb, "n", 10)
		if err := tb.Close(); err != nil {
			t.Fatal(err)
		}
		// Put back an old checkpoint whose log entries are gone.
		ck := CheckpointData{LogID: tb.current().ID(), Offset: 3}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("checkpoint-%020d", 3)), utEncodeCheckpoint(ck), 0o600)
		for _, f := range checkpointFiles(dir) {
			if f.offset != 3 {
				os.Remove(f.path)
			}
		}
		// The entries 4 to first-1 are nowhere: the copy opens with what it
		// has, says so, and forgets its cursors so that it follows every
		// peer again from a snapshot.
		tb.SetCursor("peer", Cursor{LogID: "x", Offset: 5})
		re := utOpen(t, dir, opts)
		if d := re.Stats().Damage; !strings.Contains(d, "no longer in the log") || !strings.Contains(d, "following every peer again") {
			t.Fatalf("damage: %q", d)
		}
		if re.HasCursor() {
			t.Fatal("the cursors were kept")
		}
	})
	t.Run("stray files are ignored", func(t *testing.T) {
		dir, _, _ := newCopy(t)
		for _, name := range []string{"checkpoint-1", "checkpoint-0000000000000000000x", "checkpoint-00000000000000000099.tmp"} {
			os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o600)
		}
		re := utOpen(t, dir, utOptions("n1"))
		if re.Stats().Keys == 0 {
			t.Fatal("nothing recovered")
		}
	})
}

func TestDecodeCheckpoint(t *testing.T) {
	good := CheckpointData{
		LogID: "0123456789abcdef0123456789abcdef", Offset: 42, Clock: HLC(1700000000000, 3),
		Items: [][2]string{{"ka", encodeRecord(&wal.Entry{Op: wal.OpPut, Key: []byte("a"), Value: []byte("v"), Version: wal.Version{HLC: 1, Origin: "o"}})}},
	}
	ck, err := DecodeCheckpoint(utEncodeCheckpoint(good))
	if err != nil || !reflect.DeepEqual(ck, good) {
		t.Fatalf("DecodeCheckpoint(encode(%+v)) = %+v, %v", good, ck, err)
	}
	empty := CheckpointData{LogID: "x", Items: [][2]string{}}
	if ck, err := DecodeCheckpoint(utEncodeCheckpoint(empty)); err != nil || !reflect.DeepEqual(ck, empty) {
		t.Fatalf("empty checkpoint: %+v, %v", ck, err)
	}

	bad := map[string][]byte{
		"nil":           nil,
		"short":         []byte("CXCK"),
		"magic no crc":  []byte(ckptMagic),
		"wrong magic":   utEncodeCheckpoint(good)[1:],
		"bad namespace": utEncodeCheckpoint(CheckpointData{LogID: "x", Items: [][2]string{{"xa", "rec"}}}),
		"too many items": func() []byte {
			b := []byte(ckptMagic)
			b = append(b, 0, 0, 0)
			b = binary.AppendUvarint(b, 1<<40) // count
			return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, ckptCRC))
		}(),
		"trailing bytes": func() []byte {
			b := utEncodeCheckpoint(good)
			b = append(b[:len(b)-4], 0)
			return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, ckptCRC))
		}(),
		"truncated item": func() []byte {
			b := utEncodeCheckpoint(good)
			b = b[:len(b)-6]
			return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, ckptCRC))
		}(),
		"overlong varint": func() []byte {
			b := []byte(ckptMagic)
			b = append(b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)
			return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, ckptCRC))
		}(),
	}
	for name, data := range bad {
		ck, err := DecodeCheckpoint(data)
		if err == nil {
			t.Errorf("%s: decoded as %+v", name, ck)
			continue
		}
		if !errors.Is(err, errBadCheckpoint) {
			t.Errorf("%s: error %v does not wrap errBadCheckpoint", name, err)
		}
		if !reflect.DeepEqual(ck, CheckpointData{}) {
			t.Errorf("%s: error with a partial result %+v", name, ck)
		}
	}
}

// TestReplayAppliesLWW recovers from a log that holds an older change after a
// newer one for the same key (as a log written by another tool or version
// could): replay keeps the rule and ends with the newest record.
func TestReplayAppliesLWW(t *testing.T) {
	dir := t.TempDir()
	log, err := wal.Open(filepath.Join(dir, "wal"), wal.Options{Name: "unit", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	entries := []wal.Entry{
		utPut("k", "new", 10, "a"), utPut("k", "old", 5, "z"),
		utDel("d", 7, "a"), utPut("d", "zombie", 6, "a"),
		utPut("tie", "b", 3, "b"), utPut("tie", "a", 3, "a"),
	}
	if _, err := log.Append(entries); err != nil {
		t.Fatal(err)
	}
	if err := log.Close(); err != nil {
		t.Fatal(err)
	}
	re := utOpen(t, dir, utOptions("n1"))
	want := utNew(t, "n2")
	utApply(t, want, entries...)
	utSameState(t, "replayed", utCheckConsistent(t, re), utSnapshot(t, want))
	if r, err := re.Get([]byte("k")); err != nil || string(r.Value) != "new" {
		t.Fatalf("k = %+v, %v; want the newer write", r, err)
	}
	if re.Stats().Applied != uint64(len(entries)) {
		t.Fatalf("applied %d, want %d", re.Stats().Applied, len(entries))
	}
}

func TestJoinsLog(t *testing.T) {
	for _, tc := range []struct {
		ckpt, first, last uint64
		want              error
	}{
		{0, 1, 0, nil},    // empty
		{0, 1, 10, nil},   // the log from the start
		{5, 6, 10, nil},   // joined
		{8, 6, 10, nil},   // overlapping
		{10, 11, 10, nil}, // the checkpoint covers everything, the log was truncated behind it
		{0, 4, 10, ErrLogGap},
		{5, 8, 10, ErrLogGap},
		{12, 1, 10, ErrCheckpointAhead},
	} {
		if err := JoinsLog(tc.ckpt, tc.first, tc.last); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("JoinsLog(%d, %d, %d) = %v, want %v", tc.ckpt, tc.first, tc.last, err, tc.want)
		}
	}
}
