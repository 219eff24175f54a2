package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	twal "github.com/tidwall/wal"
)

// segment is one segment file and the offset of its first entry.
type segment struct {
	path  string
	first uint64
}

// segFile is a file of a log directory that tidwall/wal reads: a segment
// (NNN, 20 digits), or the leftover of an interrupted truncation (NNN.START,
// NNN.END), in name order.
type segFile struct {
	segment
	start, end bool
}

// readSegmentDir lists the files of dir that tidwall/wal reads, as its Open
// does (same names, same order). It only reads the directory.
func readSegmentDir(dir string) ([]segFile, error) {
	des, err := os.ReadDir(dir) // sorted by name, as tidwall/wal's load
	if err != nil {
		return nil, err
	}
	var out []segFile
	for _, de := range des {
		name := de.Name()
		if de.IsDir() || len(name) < 20 {
			continue
		}
		first, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || first == 0 {
			continue
		}
		f := segFile{segment: segment{filepath.Join(dir, name), first}}
		switch {
		case len(name) == 20:
		case len(name) == 26 && strings.HasSuffix(name, ".START"):
			f.start = true
		case len(name) == 24 && strings.HasSuffix(name, ".END"):
			f.end = true
		default:
			continue
		}
		out = append(out, f)
	}
	return out, nil
}

// segmentFiles lists the segment files of dir in offset order. It reports
// whether leftovers of an interrupted truncation (.START/.END) are present.
func segmentFiles(dir string) (segs []segment, leftovers bool) {
	files, _ := readSegmentDir(dir)
	for _, f := range files {
		if f.start || f.end {
			leftovers = true
			continue
		}
		segs = append(segs, f.segment)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].first < segs[j].first })
	return segs, leftovers
}

// repairTail checks every entry of the last segment. At the first one that
// does not frame or decode it decides: if no intact entry follows anywhere in
// the segment, the rest is a write torn by a crash, and it is cut off and
// logged; otherwise the log is corrupt and the error names the offset.
func repairTail(dir, name string, logger *slog.Logger) error {
	segs, leftovers := segmentFiles(dir)
	if leftovers {
		// Let tidwall/wal finish an interrupted truncation (it renames the
		// leftovers before it reads anything), then look again.
		if tw, err := twal.Open(dir, &twal.Options{AllowEmpty: true, DirPerms: 0o700, FilePerms: 0o600}); err == nil {
			tw.Close()
		}
		segs, _ = segmentFiles(dir)
	}
	if len(segs) == 0 {
		return nil
	}
	seg := segs[len(segs)-1]
	data, err := os.ReadFile(seg.path)
	if err != nil {
		return fmt.Errorf("read segment: %w", err)
	}
	sc := scanSegment(data)
	if sc.bad == nil {
		return nil
	}
	bad := seg.first + uint64(sc.entries)
	if !sc.torn() {
		return fmt.Errorf("%w at offset %d in %s (an intact entry follows %d bytes later): refusing to guess", ErrCorrupt, bad, seg.path, sc.next-sc.end)
	}
	if err := truncateFile(seg.path, int64(sc.end)); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	logger.Warn("wal: cut a torn tail left by a crash", "table", name, "offset", bad, "bytes", len(data)-sc.end, "segment", seg.path)
	return nil
}

// segmentScan is what scanSegment finds in the bytes of a segment file.
type segmentScan struct {
	end     int   // byte position of the first frame that is incomplete or does not decode; len(data) if none
	entries int   // intact entries before end
	bad     error // why the frame at end is bad; nil when end == len(data)
	next    int   // when bad != nil: position of the first intact frame after end, or -1
}

// torn reports whether the segment ends in a write torn by a crash: a bad
// frame with no intact entry anywhere after it. In the last segment of a log
// that is what Open cuts off; anything else bad is corruption.
func (s segmentScan) torn() bool { return s.bad != nil && s.next < 0 }

// errIncompleteFrame is the reason given for a frame whose size header or
// data runs past the end of the segment.
var errIncompleteFrame = errors.New("incomplete frame: its length runs past the end of the segment")

// scanSegment frames and decodes every entry of a segment file's bytes, and
// at the first one that fails looks for an intact entry after it. It only
// reads data: both the repair at Open and the read-only inspector decide
// with it.
func scanSegment(data []byte) segmentScan {
	pos, n, err := scanFrames(data, nil)
	sc := segmentScan{end: pos, entries: n, bad: err, next: -1}
	if err != nil {
		if next := findIntactFrame(data[pos+1:]); next >= 0 {
			sc.next = pos + 1 + next
		}
	}
	return sc
}

// scanFrames walks tidwall/wal's binary framing (uvarint size + data) and
// returns the byte position of the first frame that is incomplete or does
// not decode as an Entry, how many good frames precede it, and why it is
// bad (nil if every frame is good). If fn is not nil it is called with each
// good entry and its byte position, and the walk stops after the entry for
// which it returns false (err is then nil and pos is past that entry).
func scanFrames(data []byte, fn func(pos int, e Entry) bool) (pos, n int, err error) {
	for pos < len(data) {
		size, k := nextFrame(data[pos:])
		if k <= 0 {
			return pos, n, errIncompleteFrame
		}
		e, err := Decode(data[pos+k : pos+k+size])
		if err != nil {
			return pos, n, err
		}
		at := pos
		pos += k + size
		n++
		if fn != nil && !fn(at, e) {
			return pos, n, nil
		}
	}
	return pos, n, nil
}

// nextFrame returns the data size and header length of the frame at the
// start of b, or k <= 0 when b does not start with a complete frame.
func nextFrame(b []byte) (size, k int) {
	sz, k := binary.Uvarint(b)
	if k <= 0 || sz > uint64(len(b)-k) {
		return 0, -1
	}
	return int(sz), k
}

// findIntactFrame returns the first position in b where a complete frame
// holding a decodable entry starts, or -1.
func findIntactFrame(b []byte) int {
	for i := range b {
		size, k := nextFrame(b[i:])
		if k <= 0 || size < minEntrySize || (b[i+k] != entryFormat && b[i+k] != entryFormatProof) {
			continue
		}
		if _, err := Decode(b[i+k : i+k+size]); err == nil {
			return i
		}
	}
	return -1
}

func truncateFile(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// WriteFileAtomic writes the bytes fill produces to path so that after a
// crash the file holds either its old content or all of the new: write a
// new temporary file (a random name, made with O_EXCL, so a planted symlink
// is never followed), fsync it, rename it over path, fsync the directory.
// The project's files in data directories are all written this way.
func WriteFileAtomic(path string, fill func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	err = fill(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return SyncDir(filepath.Dir(path))
}

// SyncDir fsyncs a directory so that renames and creations in it are durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
