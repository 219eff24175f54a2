package tables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/wal"
)

// utSegments lists the segment files of a copy's log, oldest first.
func utSegments(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(dir, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if len(de.Name()) == 20 && !strings.Contains(de.Name(), ".") {
			out = append(out, filepath.Join(dir, "wal", de.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// utFlip flips one byte in the value of the k-th frame of a segment file
// (the frames are tidwall's: uvarint size, then the entry) and returns that
// entry's offset.
func utFlip(t *testing.T, seg string, k int) uint64 {
	t.Helper()
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	pos := 0
	for i := 0; ; i++ {
		size, n := uvarint(b[pos:])
		if n <= 0 {
			t.Fatalf("%s has fewer than %d frames", seg, k+1)
		}
		if i == k {
			b[pos+n+size-6] ^= 0x01 // a byte of the value, before the CRC
			break
		}
		pos += n + size
	}
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var first uint64
	fmt.Sscanf(filepath.Base(seg), "%d", &first)
	return first + uint64(k)
}

func uvarint(b []byte) (int, int) {
	var x uint64
	for i, c := range b {
		if i == 10 {
			return 0, -1
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return int(x), i + 1
		}
	}
	return 0, -1
}

// utDamagedCopy writes n keys into a copy with small segments, with a
// checkpoint after the first half, and closes it.
func utDamagedCopy(t *testing.T, n int) (string, Options) {
	t.Helper()
	dir := t.TempDir()
	opts := utOptions("n1")
	opts.SegmentSize = 2048
	opts.Retention = 1 << 20 // keep the whole log behind checkpoints
	tb := utOpen(t, dir, opts)
	ctx := context.Background()
	for i := range n {
		if _, err := tb.Put(ctx, []byte(fmt.Sprintf("k%04d", i)), []byte(fmt.Sprintf("value %04d", i))); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			if err := tb.Checkpoint(); err != nil {
				t.Fatal(err)
			}
		}
	}
	tb.SetCursor("peer", Cursor{LogID: strings.Repeat("0", 32), Offset: 3})
	tb.SaveCursors("peer")
	// As a crash leaves it: no checkpoint at close.
	return utCopyDir(t, dir), opts
}

func utKeys(t *testing.T, tb *Table) map[string]string {
	t.Helper()
	recs, err := tb.Scan(nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range recs {
		out[string(r.Key)] = string(r.Value)
	}
	return out
}

// Damage the checkpoint covers: the copy opens with every key, the damaged
// part is cut from the log (named, with its segment, in Stats.Damage and
// the log), Changes never serves it, and the next start is clean.
func TestDamageTheCheckpointCovers(t *testing.T) {
	const n = 200
	dir, opts := utDamagedCopy(t, n)
	segs := utSegments(t, dir)
	bad := utFlip(t, segs[1], 2)
	tb := utOpen(t, dir, opts)
	st := tb.Stats()
	if !strings.Contains(st.Damage, segs[1]) || !strings.Contains(st.Damage, fmt.Sprint("offset ", bad)) {
		t.Fatalf("damage %q does not name %s and offset %d", st.Damage, segs[1], bad)
	}
	if got := utKeys(t, tb); len(got) != n {
		t.Fatalf("%d keys after the damage was cut, want %d", len(got), n)
	}
	if first, _ := tb.Bounds(); first <= bad {
		t.Fatalf("the log still starts at %d, at or before the damaged %d", first, bad)
	}
	if _, err := tb.Changes(context.Background(), 1, 10); !errors.Is(err, wal.ErrTruncated) {
		t.Fatalf("Changes from 1: %v, want ErrTruncated (a snapshot)", err)
	}
	if !tb.HasCursor() {
		t.Fatal("cursors forgotten though nothing was lost")
	}
	tb.Close()
	if re := utOpen(t, dir, opts); re.Stats().Damage != "" || len(utKeys(t, re)) != n {
		t.Fatalf("reopened: %q", re.Stats().Damage)
	}
}

// Damage the view needed (after the checkpoint): the other entries are
// replayed, the damaged one is skipped, and the copy forgets its cursors so
// that its peers send it everything again.
func TestDamageTheViewNeeded(t *testing.T) {
	const n = 200
	dir, opts := utDamagedCopy(t, n)
	segs := utSegments(t, dir)
	bad := utFlip(t, segs[len(segs)-2], 1) // after the checkpoint, not in the last segment
	tb := utOpen(t, dir, opts)
	st := tb.Stats()
	if !strings.Contains(st.Damage, "skipped") || !strings.Contains(st.Damage, "following every peer again") {
		t.Fatalf("damage: %q", st.Damage)
	}
	got := utKeys(t, tb)
	if len(got) != n-1 {
		t.Fatalf("%d keys, want %d (all but the damaged one)", len(got), n-1)
	}
	if _, ok := got[fmt.Sprintf("k%04d", bad-1)]; ok {
		t.Fatalf("the damaged entry %d was replayed", bad)
	}
	if tb.HasCursor() {
		t.Fatal("the cursors were kept")
	}
	// Writes go on.
	if _, err := tb.Put(context.Background(), []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// A log that does not open (damage in the middle of its last segment) is set
// aside and salvaged: the copy opens with every entry that decodes, a new log
// id, and no cursors.
func TestUnopenableLogIsSalvaged(t *testing.T) {
	const n = 200
	dir, opts := utDamagedCopy(t, n)
	oldID, _ := wal.ReadID(filepath.Join(dir, "wal"))
	segs := utSegments(t, dir)
	utFlip(t, segs[len(segs)-1], 1)
	tb := utOpen(t, dir, opts)
	st := tb.Stats()
	if !strings.Contains(st.Damage, "salvaged") || st.LogID == oldID {
		t.Fatalf("damage %q, log id %s (was %s)", st.Damage, st.LogID, oldID)
	}
	if got := utKeys(t, tb); len(got) != n-1 {
		t.Fatalf("%d keys salvaged, want %d", len(got), n-1)
	}
	if aside, _ := filepath.Glob(filepath.Join(dir, "wal.damaged-*")); len(aside) != 1 {
		t.Fatalf("the damaged log was not set aside: %v", aside)
	}
	if tb.HasCursor() {
		t.Fatal("the cursors were kept")
	}
	if _, err := tb.Put(context.Background(), []byte("after"), []byte("x")); err != nil {
		t.Fatal(err)
	}
	tb.Close()
	re := utOpen(t, dir, opts)
	if re.Stats().Damage != "" || len(utKeys(t, re)) != n || re.Stats().LogID != st.LogID {
		t.Fatalf("reopened: %q, %d keys", re.Stats().Damage, len(utKeys(t, re)))
	}
}

// Damage found while serving: the good entries before it are served, then
// the log is cut behind a checkpoint and the reader is told to take a
// snapshot; the entry is never served.
func TestChangesNeverServeDamage(t *testing.T) {
	dir := t.TempDir()
	opts := utOptions("n1")
	opts.SegmentSize = 2048
	opts.Retention = 1 << 20
	tb := utOpen(t, dir, opts)
	ctx := context.Background()
	for i := range 200 {
		tb.Put(ctx, []byte(fmt.Sprintf("k%04d", i)), []byte(fmt.Sprintf("value %04d", i)))
	}
	segs := utSegments(t, dir)
	bad := utFlip(t, segs[0], 5) // tidwall keeps only the newest segments in memory
	recs, err := tb.Changes(ctx, 1, 1000)
	if err != nil || len(recs) != int(bad-1) {
		t.Fatalf("Changes from 1: %d records, %v; want the %d before the damage", len(recs), err, bad-1)
	}
	if _, err := tb.Changes(ctx, bad, 1000); !errors.Is(err, wal.ErrTruncated) {
		t.Fatalf("Changes from the damaged offset: %v", err)
	}
	if first, _ := tb.Bounds(); first <= bad || !strings.Contains(tb.Stats().Damage, fmt.Sprint("entry ", bad)) {
		t.Fatalf("log starts at %d; damage %q", first, tb.Stats().Damage)
	}
	if got := utKeys(t, tb); len(got) != 200 {
		t.Fatalf("%d keys", len(got))
	}
}

// A full disk: the failing write gets a clear error, reads go on, and once
// there is room again writes resume without a restart; every acknowledged
// write is there, and after a reopen too. Needs root (a small tmpfs).
func TestWritesResumeAfterTheDiskFills(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the disk-full test mounts a small tmpfs: run as root to include it")
	}
	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	filler := filepath.Join(mnt, "filler")
	dir := filepath.Join(mnt, "copy")
	opts := utOptions("n1")
	opts.NoSync = false
	opts.SegmentSize = 256 << 10
	tb := utOpen(t, dir, opts)
	ctx := context.Background()
	if err := os.WriteFile(filler, make([]byte, 2<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	acked := map[string]string{}
	value := strings.Repeat("v", 4000)
	var failed error
	for i := 0; i < 5000 && failed == nil; i++ {
		k := fmt.Sprintf("k%05d", i)
		if _, err := tb.Put(ctx, []byte(k), []byte(value)); err != nil {
			failed = err
		} else {
			acked[k] = value
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), "cannot write") || !strings.Contains(failed.Error(), "no space left") {
		t.Fatalf("writes until the disk is full: %v", failed)
	}
	if st := tb.Stats(); !strings.Contains(st.Failed, "no space left") {
		t.Errorf("Stats.Failed: %q", st.Failed)
	}
	if _, err := tb.Put(ctx, []byte("during"), []byte("x")); err == nil {
		t.Fatal("a write succeeded while the disk was full")
	}
	if len(utKeys(t, tb)) != len(acked) {
		t.Fatal("reads do not show the acknowledged writes")
	}
	os.Remove(filler)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := tb.Put(ctx, []byte("after"), []byte("x")); err == nil {
			acked["after"] = "x"
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume: %v", tb.Stats().Failed)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	if tb.Stats().Failed != "" {
		t.Errorf("still failed: %q", tb.Stats().Failed)
	}
	check := func(what string, tb *Table) {
		t.Helper()
		got := utKeys(t, tb)
		for k, v := range acked {
			if got[k] != v {
				t.Fatalf("%s: acknowledged %s missing", what, k)
			}
		}
	}
	check("after the resume", tb)
	tb.Close()
	check("reopened", utOpen(t, dir, opts))
}
