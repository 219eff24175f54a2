package wal

// Read-only inspection of a log directory, for cortex-wal. Nothing in this
// file writes, creates, renames or truncates a file, and it does not use
// tidwall/wal, whose Open creates and tidies files: it lists the directory
// and reads segment files whole, walking their frames itself.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// SegmentInfo describes one segment file of a log.
type SegmentInfo struct {
	Path    string
	First   uint64 // offset of its first entry (from its name)
	Entries int    // entries that frame and decode, up to the first that does not
	Size    int64  // bytes
}

// Problem is the first entry of a log that cannot be read: a frame that is
// incomplete or does not decode, or a segment that does not start where the
// previous one ends. It is an error.
type Problem struct {
	Segment string // the segment file's path
	Offset  uint64 // the offset the bad entry (or the missing one) has
	Pos     int64  // byte position of its frame in the segment
	Bytes   int64  // bytes from Pos to the end of the segment
	// Torn: the bad frame is in the last segment and no intact entry
	// follows it. Offline that is a write torn by a crash, which Open cuts
	// off; while cortexd runs it may be an append in progress.
	Torn   bool
	Reason string
}

func (p *Problem) Error() string {
	if p.Torn {
		return fmt.Sprintf("torn tail at offset %d in %s: %d bytes from byte %d: %s", p.Offset, p.Segment, p.Bytes, p.Pos, p.Reason)
	}
	return fmt.Sprintf("bad entry at offset %d in %s (byte %d): %s", p.Offset, p.Segment, p.Pos, p.Reason)
}

// LogInfo is what Inspect finds in a log directory.
type LogInfo struct {
	Dir      string
	ID       string // the LOG_ID file's id; "" when IDErr is set
	IDErr    error  // LOG_ID is missing, unreadable or malformed
	Segments []SegmentInfo
	// First is the first offset the log holds, Last the last offset of its
	// readable prefix: every entry up to the first Problem. An empty log has
	// First == Last+1.
	First, Last uint64
	Bytes       int64 // size of every segment file
	// Pending names the leftovers of an interrupted truncation (NNN.START,
	// NNN.END) that the next Open completes. The segments above are those
	// the log will have then.
	Pending []string
	Problem *Problem // the first entry that cannot be read; nil if none
}

// Entries is the number of entries in the log's readable prefix.
func (li *LogInfo) Entries() uint64 {
	if li.Last+1 <= li.First {
		return 0
	}
	return li.Last + 1 - li.First
}

// Reader reads a log directory without changing it.
type Reader struct {
	dir     string
	segs    []segment
	pending []string
}

// OpenReader lists the segments of the log in dir. It only reads the
// directory; nothing is opened for writing, created or tidied.
func OpenReader(dir string) (*Reader, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", dir)
	}
	segs, pending, err := logSegments(dir)
	if err != nil {
		return nil, err
	}
	return &Reader{dir: dir, segs: segs, pending: pending}, nil
}

// SegmentOf returns the path of the segment that holds offset ("" if none).
func (r *Reader) SegmentOf(offset uint64) string {
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].first > offset }) - 1
	if i < 0 {
		return ""
	}
	return r.segs[i].path
}

// First is the first offset the log holds, from its first segment's name
// (1 for a log without segments).
func (r *Reader) First() uint64 {
	if len(r.segs) == 0 {
		return 1
	}
	return r.segs[0].first
}

// ReadID reads and checks the LOG_ID file of the log in dir.
func ReadID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return parseID(path, b)
}

// logSegments lists the segments of dir as tidwall/wal's Open will see them
// once it has completed an interrupted truncation, without completing it: a
// NNN.START file is segment NNN and replaces every segment before it, a
// NNN.END file is segment NNN and replaces it and every segment after it.
// pending names those leftovers.
func logSegments(dir string) (segs []segment, pending []string, err error) {
	files, err := readSegmentDir(dir)
	if err != nil {
		return nil, nil, err
	}
	startIdx, endIdx := -1, -1
	for i, f := range files {
		switch {
		case f.start:
			startIdx = i
			pending = append(pending, f.path)
		case f.end:
			if endIdx < 0 {
				endIdx = i
			}
			pending = append(pending, f.path)
		}
	}
	if startIdx >= 0 && endIdx >= 0 {
		return nil, pending, fmt.Errorf("%s holds the leftovers of two interrupted truncations (front and back): tidwall/wal refuses such a log", dir)
	}
	if startIdx >= 0 {
		files = files[startIdx:]
	}
	if endIdx >= 0 {
		files = files[:endIdx+1]
		if n := len(files); n > 1 && files[n-2].first == files[n-1].first {
			files = append(files[:n-2], files[n-1])
		}
	}
	for _, f := range files {
		segs = append(segs, f.segment)
	}
	return segs, pending, nil
}

// Inspect reads every segment, frames and decodes every entry (checksum
// included), and checks that the segments' offsets are contiguous. Each
// segment's entries are counted even after a Problem; Last stops at it.
func (r *Reader) Inspect() (*LogInfo, error) {
	li := &LogInfo{Dir: r.dir, Pending: r.pending, First: 1}
	li.ID, li.IDErr = ReadID(r.dir)
	if len(r.segs) == 0 {
		return li, nil
	}
	li.First = r.segs[0].first
	next := li.First
	for i, s := range r.segs {
		data, err := readSegment(s)
		if err != nil {
			return nil, err
		}
		sc := scanSegment(data)
		li.Segments = append(li.Segments, SegmentInfo{Path: s.path, First: s.first, Entries: sc.entries, Size: int64(len(data))})
		li.Bytes += int64(len(data))
		if li.Problem != nil {
			continue
		}
		if s.first != next {
			li.Problem = gapProblem(s, next)
			continue
		}
		next = s.first + uint64(sc.entries)
		if sc.bad != nil {
			li.Problem = segmentProblem(s, data, sc, i == len(r.segs)-1)
		}
	}
	li.Last = next - 1
	return li, nil
}

// Scan calls fn with every entry from offset from on, in offset order,
// decoding each (checksum included). It returns nil at the end of the log,
// fn's error as is if fn returns one, a *Problem at the first entry that
// cannot be read (a torn tail included), and an error wrapping ErrTruncated
// when from is before the first offset the log holds. The records' Key and
// Value are valid after fn returns.
func (r *Reader) Scan(from uint64, fn func(Record) error) error {
	if len(r.segs) == 0 {
		return nil
	}
	if first := r.segs[0].first; from < first {
		return fmt.Errorf("offset %d: %w (the log starts at %d)", from, ErrTruncated, first)
	}
	// Start at the last segment that begins at or before from.
	i := sort.Search(len(r.segs), func(i int) bool { return r.segs[i].first > from }) - 1
	next := r.segs[i].first
	for ; i < len(r.segs); i++ {
		s := r.segs[i]
		if s.first != next {
			return gapProblem(s, next)
		}
		data, err := readSegment(s)
		if err != nil {
			return err
		}
		var ferr error
		_, _, bad := scanFrames(data, func(_ int, e Entry) bool {
			off := next
			next++
			if off < from {
				return true
			}
			ferr = fn(Record{Offset: off, Entry: e})
			return ferr == nil
		})
		if ferr != nil {
			return ferr
		}
		if bad != nil {
			// The same frames again, and whether an intact one follows.
			return segmentProblem(s, data, scanSegment(data), i == len(r.segs)-1)
		}
	}
	return nil
}

func readSegment(s segment) ([]byte, error) {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("segment %s vanished while the log was read (truncated by a running cortexd?)", s.path)
	}
	return data, err
}

func gapProblem(s segment, want uint64) *Problem {
	return &Problem{Segment: s.path, Offset: want,
		Reason: fmt.Sprintf("offsets are not contiguous: the segment starts at offset %d, the previous one ends at %d", s.first, want-1)}
}

func segmentProblem(s segment, data []byte, sc segmentScan, last bool) *Problem {
	p := &Problem{Segment: s.path, Offset: s.first + uint64(sc.entries), Pos: int64(sc.end),
		Bytes: int64(len(data) - sc.end), Torn: last && sc.torn(), Reason: sc.bad.Error()}
	if sc.next >= 0 {
		p.Reason += fmt.Sprintf(" (an intact entry follows %d bytes later)", sc.next-sc.end)
	}
	return p
}
