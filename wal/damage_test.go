package wal

import (
	"errors"
	"os"
	"testing"
)

// A flipped byte in an older segment: Open does not look there (only the
// tail is checked), Read names the offset with ErrCorrupt, ReadRange returns
// the good entries before it, and Salvage finds every other entry.
func TestDamageInAnOlderSegment(t *testing.T) {
	opts := Options{SegmentSize: 4096, NoSync: true}
	dir := t.TempDir()
	const n = 300
	buildLog(t, dir, n, opts)
	segs := segmentPaths(t, dir)
	if len(segs) < 3 {
		t.Fatalf("%d segments", len(segs))
	}
	seg := segs[1]
	b := readFile(t, seg)
	fs := parseFrames(t, b)
	b[fs[2].end-crcSize-1] ^= 0x01
	writeFile(t, seg, b)
	bad := segFirst(t, seg) + 2

	l := openLog(t, dir, opts)
	_, err := l.Read(bad)
	var ce *CorruptError
	if !errors.As(err, &ce) || ce.Offset != bad || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Read(%d) = %v", bad, err)
	}
	recs, err := l.ReadRange(1, 10000)
	if !errors.Is(err, ErrCorrupt) || len(recs) != int(bad-1) || recs[len(recs)-1].Offset != bad-1 {
		t.Fatalf("ReadRange: %d records, %v", len(recs), err)
	}
	l.Close()

	got, problems, err := Salvage(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Offset != bad || problems[0].Segment != seg || problems[0].Torn {
		t.Fatalf("problems: %+v", problems)
	}
	if len(got) != n-1 {
		t.Fatalf("salvaged %d entries, want %d", len(got), n-1)
	}
	for _, r := range got {
		if r.Offset == bad {
			t.Fatalf("salvaged the damaged offset %d", bad)
		}
		want := testEntries(r.Offset, r.Offset)[0]
		if !entriesEqual(r.Entry, want) {
			t.Fatalf("offset %d: %+v, want %+v", r.Offset, r.Entry, want)
		}
	}
	// Salvage changed nothing.
	if after := readFile(t, seg); string(after) != string(b) {
		t.Fatal("Salvage changed a segment")
	}
}

// Damage in the middle of the last segment: Open refuses with ErrCorrupt
// (it does not guess what to cut); Salvage reads around it.
func TestDamageInTheLastSegment(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 20, Options{})
	seg := lastSegment(t, dir)
	b := readFile(t, seg)
	fs := parseFrames(t, b)
	b[fs[9].end-crcSize-3] ^= 0x01
	writeFile(t, seg, b)
	if l, err := Open(dir, Options{Logger: quietLogger()}); !errors.Is(err, ErrCorrupt) {
		if l != nil {
			l.Close()
		}
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	got, problems, err := Salvage(dir)
	if err != nil || len(got) != 19 || len(problems) != 1 || problems[0].Offset != 10 {
		t.Fatalf("Salvage: %d records, %+v, %v", len(got), problems, err)
	}
	to, err := SetAside(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(to); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("the damaged directory is still at %s", dir)
	}
}

// TruncateBack cuts what follows an offset, durably; the log goes on from
// there.
func TestTruncateBack(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	l := openLog(t, dir, opts)
	mustAppend(t, l, testEntries(1, 100), 1)
	if err := l.TruncateBack(60); err != nil {
		t.Fatal(err)
	}
	if first, last := l.Bounds(); first != 1 || last != 60 {
		t.Fatalf("bounds %d-%d", first, last)
	}
	mustAppend(t, l, testEntries(61, 70), 61)
	l.Close()
	l = openLog(t, dir, opts)
	if _, last := l.Bounds(); last != 70 {
		t.Fatalf("after reopen: last %d", last)
	}
	for off := uint64(1); off <= 70; off++ {
		e, err := l.Read(off)
		if err != nil || !entriesEqual(e, testEntries(off, off)[0]) {
			t.Fatalf("offset %d: %v", off, err)
		}
	}
}
