package wal

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// dirState describes every file and directory under dir: name, mode, size,
// modification time and the sha256 of its content. Two equal states mean
// nothing was created, removed, renamed or written.
func dirState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(&b, "%s %v %d %d", rel, fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %x", sha256.Sum256(data))
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func openReader(t *testing.T, dir string) *Reader {
	t.Helper()
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatalf("OpenReader: %v", err)
	}
	return r
}

func inspectLog(t *testing.T, dir string) *LogInfo {
	t.Helper()
	li, err := openReader(t, dir).Inspect()
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	return li
}

// scanAll collects what Scan returns from offset from.
func scanAll(t *testing.T, dir string, from uint64) ([]Record, error) {
	t.Helper()
	var recs []Record
	err := openReader(t, dir).Scan(from, func(r Record) error {
		recs = append(recs, r)
		return nil
	})
	return recs, err
}

func checkInfo(t *testing.T, li *LogInfo, first, last uint64) {
	t.Helper()
	if li.First != first || li.Last != last {
		t.Fatalf("Inspect: offsets %d-%d, want %d-%d", li.First, li.Last, first, last)
	}
	if li.Entries() != last+1-first {
		t.Fatalf("Entries() = %d, want %d", li.Entries(), last+1-first)
	}
}

func TestInspectAndScan(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096, NoSync: true}
	const n = 400
	buildLog(t, dir, n, opts)
	before := dirState(t, dir)

	li := inspectLog(t, dir)
	checkInfo(t, li, 1, n)
	if li.Problem != nil || li.IDErr != nil || len(li.Pending) != 0 {
		t.Fatalf("Inspect of a clean log: problem %v, id error %v, pending %v", li.Problem, li.IDErr, li.Pending)
	}
	id, err := ReadID(dir)
	if err != nil || li.ID != id {
		t.Fatalf("Inspect ID %q, ReadID %q (%v)", li.ID, id, err)
	}
	paths := segmentPaths(t, dir)
	if len(li.Segments) != len(paths) || len(paths) < 5 {
		t.Fatalf("Inspect lists %d segments, the directory holds %d (want at least 5)", len(li.Segments), len(paths))
	}
	var entries int
	var bytes int64
	for i, s := range li.Segments {
		fi, err := os.Stat(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		if s.Path != paths[i] || s.First != segFirst(t, paths[i]) || s.Size != fi.Size() {
			t.Fatalf("segment %d: %+v, want path %s first %d size %d", i, s, paths[i], segFirst(t, paths[i]), fi.Size())
		}
		if got := len(parseFrames(t, readFile(t, paths[i]))); got != s.Entries {
			t.Fatalf("segment %s: %d entries, the file holds %d frames", s.Path, s.Entries, got)
		}
		entries += s.Entries
		bytes += s.Size
	}
	if entries != n || bytes != li.Bytes {
		t.Fatalf("segments hold %d entries and %d bytes; want %d entries, Bytes %d", entries, bytes, n, li.Bytes)
	}

	for _, from := range []uint64{1, 2, 100, li.Segments[2].First, li.Segments[2].First - 1, n} {
		recs, err := scanAll(t, dir, from)
		if err != nil {
			t.Fatalf("Scan(%d): %v", from, err)
		}
		checkRecords(t, recs, from, n)
	}
	if recs, err := scanAll(t, dir, n+1); err != nil || len(recs) != 0 {
		t.Fatalf("Scan(n+1) = %d records, %v; want none", len(recs), err)
	}
	// fn's error ends the scan and comes back as is.
	stop := errors.New("stop")
	seen := 0
	err = openReader(t, dir).Scan(1, func(Record) error {
		if seen++; seen == 10 {
			return stop
		}
		return nil
	})
	if err != stop || seen != 10 {
		t.Fatalf("Scan stopped by fn: err %v after %d records", err, seen)
	}

	if after := dirState(t, dir); after != before {
		t.Fatalf("reading the log changed its directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// Truncated behind a cut: the first offset moves, earlier ones are refused.
	l := openLog(t, dir, opts)
	const cut = 217
	if err := l.TruncateFront(cut); err != nil {
		t.Fatal(err)
	}
	l.Close()
	before = dirState(t, dir)
	li = inspectLog(t, dir)
	checkInfo(t, li, cut, n)
	if r := openReader(t, dir); r.First() != cut {
		t.Fatalf("First() = %d, want %d", r.First(), cut)
	}
	if _, err := scanAll(t, dir, cut-1); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Scan(%d) before the first offset: %v, want ErrTruncated", cut-1, err)
	}
	recs, err := scanAll(t, dir, cut)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, recs, cut, n)
	if after := dirState(t, dir); after != before {
		t.Fatal("reading the truncated log changed its directory")
	}

	// Emptied entirely: offsets keep counting.
	l = openLog(t, dir, opts)
	if err := l.TruncateFront(1 << 40); err != nil {
		t.Fatal(err)
	}
	l.Close()
	before = dirState(t, dir)
	li = inspectLog(t, dir)
	checkInfo(t, li, n+1, n)
	if recs, err := scanAll(t, dir, n+1); err != nil || len(recs) != 0 {
		t.Fatalf("Scan of an empty log: %d records, %v", len(recs), err)
	}
	if after := dirState(t, dir); after != before {
		t.Fatalf("reading the log changed its directory:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestInspectNoLogID(t *testing.T) {
	dir := t.TempDir()
	buildLog(t, dir, 3, Options{})
	os.Remove(filepath.Join(dir, idFile))
	li := inspectLog(t, dir)
	if li.IDErr == nil || li.ID != "" {
		t.Fatalf("Inspect without LOG_ID: ID %q, IDErr %v", li.ID, li.IDErr)
	}
	checkInfo(t, li, 1, 3)
	if _, err := OpenReader(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("OpenReader of a missing directory: %v", err)
	}
}

// A torn tail is reported, not cut, and it is exactly what Open then cuts.
func TestInspectTornTail(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(b []byte, fs []frame) []byte
		good   uint64
	}{
		{"cut", func(b []byte, fs []frame) []byte { return b[:len(b)-3] }, 19},
		{"garbage appended", func(b []byte, fs []frame) []byte { return append(b, 0x05, 'a', 'b') }, 20},
		{"last crc flipped", func(b []byte, fs []frame) []byte { b[len(b)-1] ^= 0xff; return b }, 19},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			buildLog(t, dir, 20, Options{})
			seg := lastSegment(t, dir)
			b := readFile(t, seg)
			writeFile(t, seg, tc.damage(b, parseFrames(t, b)))
			before := dirState(t, dir)

			li := inspectLog(t, dir)
			checkInfo(t, li, 1, tc.good)
			p := li.Problem
			if p == nil || !p.Torn || p.Offset != tc.good+1 || p.Segment != seg {
				t.Fatalf("Problem = %+v, want a torn tail at offset %d in %s", p, tc.good+1, seg)
			}
			size := int64(len(readFile(t, seg)))
			if p.Pos+p.Bytes != size || !strings.Contains(p.Error(), "torn tail at offset") {
				t.Fatalf("Problem %+v: Pos+Bytes should be the segment size %d; message %q", p, size, p.Error())
			}
			recs, err := scanAll(t, dir, 1)
			var sp *Problem
			if !errors.As(err, &sp) || *sp != *p {
				t.Fatalf("Scan: err %v, want the Problem %+v", err, p)
			}
			checkRecords(t, recs, 1, tc.good)
			if after := dirState(t, dir); after != before {
				t.Fatal("Inspect or Scan changed the directory")
			}

			// Open cuts what Inspect called torn, and nothing else.
			l := openLog(t, dir, Options{})
			checkBounds(t, l, 1, tc.good)
			l.Close()
			li = inspectLog(t, dir)
			checkInfo(t, li, 1, tc.good)
			if li.Problem != nil {
				t.Fatalf("after Open's repair: %v", li.Problem)
			}
		})
	}
}

func TestInspectCorruption(t *testing.T) {
	opts := Options{SegmentSize: 4096, NoSync: true}
	const n = 400
	t.Run("middle segment", func(t *testing.T) {
		dir := t.TempDir()
		buildLog(t, dir, n, opts)
		segs := segmentPaths(t, dir)
		seg := segs[2]
		b := readFile(t, seg)
		fs := parseFrames(t, b)
		b[fs[3].end-crcSize-1] ^= 0x01 // a value byte of the segment's 4th entry
		writeFile(t, seg, b)
		bad := segFirst(t, seg) + 3
		before := dirState(t, dir)

		li := inspectLog(t, dir)
		checkInfo(t, li, 1, bad-1)
		p := li.Problem
		if p == nil || p.Torn || p.Offset != bad || p.Segment != seg || p.Pos != int64(fs[3].start) {
			t.Fatalf("Problem = %+v, want corruption at offset %d, byte %d of %s", p, bad, fs[3].start, seg)
		}
		if !strings.Contains(p.Reason, "checksum mismatch") || !strings.Contains(p.Reason, "intact entry follows") {
			t.Fatalf("reason %q", p.Reason)
		}
		// Later segments are still counted.
		if got := li.Segments[len(li.Segments)-1]; got.Entries == 0 {
			t.Fatalf("last segment counted %d entries", got.Entries)
		}
		recs, err := scanAll(t, dir, 1)
		var sp *Problem
		if !errors.As(err, &sp) || sp.Offset != bad || sp.Torn {
			t.Fatalf("Scan: %v, want the problem at %d", err, bad)
		}
		checkRecords(t, recs, 1, bad-1)
		// Scanning from after the bad entry's segment does not see it.
		recs, err = scanAll(t, dir, segFirst(t, segs[3]))
		if err != nil {
			t.Fatal(err)
		}
		checkRecords(t, recs, segFirst(t, segs[3]), n)
		if after := dirState(t, dir); after != before {
			t.Fatal("Inspect or Scan changed the directory")
		}
	})
	t.Run("last segment, intact entry after", func(t *testing.T) {
		dir := t.TempDir()
		buildLog(t, dir, 20, Options{})
		seg := lastSegment(t, dir)
		b := readFile(t, seg)
		fs := parseFrames(t, b)
		b[fs[9].data] = 9 // unknown format
		writeFile(t, seg, b)
		li := inspectLog(t, dir)
		if p := li.Problem; p == nil || p.Torn || p.Offset != 10 {
			t.Fatalf("Problem = %+v, want corruption (not torn) at 10", p)
		}
		checkInfo(t, li, 1, 9)
		if _, err := Open(dir, Options{Logger: quietLogger()}); err == nil || !strings.Contains(err.Error(), "offset 10") {
			t.Fatalf("Open agrees it is corrupt: %v", err)
		}
	})
	t.Run("incomplete end of an older segment", func(t *testing.T) {
		dir := t.TempDir()
		buildLog(t, dir, n, opts)
		seg := segmentPaths(t, dir)[1]
		b := readFile(t, seg)
		writeFile(t, seg, b[:len(b)-2])
		li := inspectLog(t, dir)
		want := segFirst(t, seg) + uint64(len(parseFrames(t, b))) - 1
		if p := li.Problem; p == nil || p.Torn || p.Offset != want {
			t.Fatalf("Problem = %+v, want corruption (not torn: not the last segment) at %d", p, want)
		}
	})
	t.Run("missing segment", func(t *testing.T) {
		dir := t.TempDir()
		buildLog(t, dir, n, opts)
		segs := segmentPaths(t, dir)
		os.Remove(segs[2])
		li := inspectLog(t, dir)
		want := segFirst(t, segs[2])
		if p := li.Problem; p == nil || p.Torn || p.Offset != want || p.Segment != segs[3] || !strings.Contains(p.Reason, "not contiguous") {
			t.Fatalf("Problem = %+v, want a gap at %d before %s", p, want, segs[3])
		}
		checkInfo(t, li, 1, want-1)
		if _, err := scanAll(t, dir, 1); err == nil || !strings.Contains(err.Error(), "not contiguous") {
			t.Fatalf("Scan across the gap: %v", err)
		}
	})
}

// The leftover of an interrupted front truncation (NNN.START) is read as
// tidwall/wal will read it, and left where it is.
func TestInspectInterruptedTruncation(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096, NoSync: true}
	const n = 400
	buildLog(t, dir, n, opts)
	segs := segmentPaths(t, dir)
	// A truncation to the 3rd segment's 5th entry wrote its START file and
	// crashed before removing anything.
	b := readFile(t, segs[2])
	fs := parseFrames(t, b)
	cut := segFirst(t, segs[2]) + 4
	start := filepath.Join(dir, fmt.Sprintf("%020d.START", cut))
	writeFile(t, start, b[fs[4].start:])
	before := dirState(t, dir)

	li := inspectLog(t, dir)
	checkInfo(t, li, cut, n)
	if li.Problem != nil || len(li.Pending) != 1 || li.Pending[0] != start || li.Segments[0].Path != start {
		t.Fatalf("Inspect: problem %v, pending %v, first segment %+v", li.Problem, li.Pending, li.Segments[0])
	}
	recs, err := scanAll(t, dir, cut)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, recs, cut, n)
	if after := dirState(t, dir); after != before {
		t.Fatal("Inspect or Scan completed the truncation")
	}

	// Open completes it the same way.
	l := openLog(t, dir, opts)
	checkBounds(t, l, cut, n)
	l.Close()
	li = inspectLog(t, dir)
	checkInfo(t, li, cut, n)
	if len(li.Pending) != 0 {
		t.Fatalf("pending after Open: %v", li.Pending)
	}
}
