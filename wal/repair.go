package wal

import (
	"encoding/binary"
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

// segmentFiles lists the segment files of dir in offset order. It reports
// whether leftovers of an interrupted truncation (.START/.END) are present.
func segmentFiles(dir string) (segs []segment, leftovers bool) {
	names, err := os.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	for _, de := range names {
		name := de.Name()
		if de.IsDir() || len(name) < 20 {
			continue
		}
		first, err := strconv.ParseUint(name[:20], 10, 64)
		if err != nil || first == 0 {
			continue
		}
		switch {
		case len(name) == 20:
			segs = append(segs, segment{filepath.Join(dir, name), first})
		case strings.HasSuffix(name, ".START"), strings.HasSuffix(name, ".END"):
			leftovers = true
		}
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
	pos, n := scanFrames(data)
	if pos == len(data) {
		return nil
	}
	bad := seg.first + uint64(n)
	if next := findIntactFrame(data[pos+1:]); next >= 0 {
		return fmt.Errorf("corrupt entry at offset %d in %s (an intact entry follows %d bytes later): refusing to guess; restore the copy or repair it from a peer", bad, seg.path, next+1)
	}
	if err := truncateFile(seg.path, int64(pos)); err != nil {
		return fmt.Errorf("cut torn tail: %w", err)
	}
	logger.Warn("wal: cut a torn tail left by a crash", "table", name, "offset", bad, "bytes", len(data)-pos, "segment", seg.path)
	return nil
}

// scanFrames walks tidwall/wal's binary framing (uvarint size + data) and
// returns the byte position of the first frame that is incomplete or does
// not decode as an Entry, and how many good frames precede it.
func scanFrames(data []byte) (pos, n int) {
	for pos < len(data) {
		size, k := nextFrame(data[pos:])
		if k <= 0 {
			return pos, n
		}
		if _, err := Decode(data[pos+k : pos+k+size]); err != nil {
			return pos, n
		}
		pos += k + size
		n++
	}
	return pos, n
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
		if k <= 0 || size < minEntrySize || b[i+k] != entryFormat {
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
// temporary file, fsync it, rename it over path, fsync the directory.
func WriteFileAtomic(path string, fill func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
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
