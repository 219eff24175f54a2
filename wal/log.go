// Package wal owns a table copy's write-ahead log: the entry codec with a
// checksum per entry, batched appends with one fsync per batch, reads by
// offset, a follower for the change feed, and front truncation behind a
// checkpoint. It is built on github.com/tidwall/wal.
package wal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	twal "github.com/tidwall/wal"
)

// ErrTruncated is returned when an offset is behind the first one the log
// still holds.
var ErrTruncated = errors.New("offset truncated from the log")

// ErrClosed is returned by operations on a closed log.
var ErrClosed = errors.New("log closed")

// Options configure a Log.
type Options struct {
	// Name names the log in errors and log lines (the table name).
	Name string
	// NoSync publishes appends to Tail at once instead of after Sync: the
	// change feed may then carry entries that a crash loses (fsync=never).
	NoSync bool
	// SegmentSize is the target size of one segment file (default 16 MiB).
	SegmentSize int
	// Logger receives repair notices (default slog.Default()).
	Logger *slog.Logger
}

// Log is one table copy's write-ahead log. Offsets start at 1; an offset
// has meaning only together with the log's ID. It is safe for concurrent use.
type Log struct {
	dir  string
	name string
	id   string
	tw   *twal.Log

	noSync  bool
	segSize int

	mu       sync.Mutex // guards the fields below and serialises appends
	batch    twal.Batch
	buf      []byte
	first    uint64 // first offset held; last+1 when empty
	last     uint64 // last offset written; 0 when nothing was ever written
	durable  uint64 // last offset known to be on disk (or published, NoSync)
	synced   uint64 // last offset an fsync of this process covered
	segBytes int    // bytes in the tail segment, mirroring tidwall's rotation
	dirDirty bool   // a segment was created since the directory was synced
	notify   chan struct{}
	closed   bool
}

// Record is an entry together with its offset in the log.
type Record struct {
	Offset uint64
	Entry
}

const idFile = "LOG_ID"

// Open opens the log in dir, creating it (with a new random ID) if dir holds
// none. A torn last entry left by a crash is cut off and logged; any other
// entry of the last segment that does not decode is an error naming its offset.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = 16 << 20
	}
	id, err := loadOrCreateID(dir)
	if err != nil {
		return nil, fmt.Errorf("wal %s: %w", opts.Name, err)
	}
	if err := repairTail(dir, opts.Name, opts.Logger); err != nil {
		return nil, fmt.Errorf("wal %s: %w", opts.Name, err)
	}
	// Appends are written without fsync; Sync makes them durable, outside
	// the append path, so that batches are written while others sync.
	tw, err := twal.Open(dir, &twal.Options{
		NoSync:           true,
		SegmentSize:      opts.SegmentSize,
		SegmentCacheSize: 2,
		AllowEmpty:       true,
		DirPerms:         0o700,
		FilePerms:        0o600,
	})
	if errors.Is(err, twal.ErrCorrupt) {
		return nil, fmt.Errorf("wal %s: open %s: %w: %v", opts.Name, dir, ErrCorrupt, err)
	}
	if err != nil {
		return nil, fmt.Errorf("wal %s: open %s: %w", opts.Name, dir, err)
	}
	l := &Log{dir: dir, name: opts.Name, id: id, tw: tw, noSync: opts.NoSync, segSize: opts.SegmentSize, notify: make(chan struct{})}
	if l.first, err = tw.FirstIndex(); err == nil {
		l.last, err = tw.LastIndex()
	}
	if err != nil {
		tw.Close()
		return nil, fmt.Errorf("wal %s: %w", opts.Name, err)
	}
	l.durable = l.last
	l.segBytes = tailSegmentSize(dir)
	return l, nil
}

// tailSegmentSize is the size of the last segment file of dir.
func tailSegmentSize(dir string) int {
	if segs, _ := segmentFiles(dir); len(segs) > 0 {
		if fi, err := os.Stat(segs[len(segs)-1].path); err == nil {
			return int(fi.Size())
		}
	}
	return 0
}

func loadOrCreateID(dir string) (string, error) {
	path := filepath.Join(dir, idFile)
	b, err := os.ReadFile(path)
	if err == nil {
		return parseID(path, b)
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if segs, _ := segmentFiles(dir); len(segs) > 0 {
		return "", fmt.Errorf("%s: missing, but the directory holds segments", path)
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	err = WriteFileAtomic(path, func(w io.Writer) error {
		_, err := io.WriteString(w, id+"\n")
		return err
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// parseID checks the content of a LOG_ID file read from path.
func parseID(path string, b []byte) (string, error) {
	id := strings.TrimSpace(string(b))
	if len(id) != 32 {
		return "", fmt.Errorf("%s: malformed log id %q", path, id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		return "", fmt.Errorf("%s: malformed log id %q", path, id)
	}
	return id, nil
}

// ID is the log's random identity, made when the log was created.
func (l *Log) ID() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.id
}

// Dir is the directory holding the log.
func (l *Log) Dir() string { return l.dir }

// Bounds returns the first offset the log holds and the last offset written.
// An empty log has first == last+1.
func (l *Log) Bounds() (first, last uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first, l.last
}

// Append writes entries as one batch, makes them durable with one fsync
// (unless NoSync) and returns the offset of the first one.
func (l *Log) Append(entries []Entry) (first uint64, err error) {
	if first, err = l.Write(entries); err == nil && !l.noSync {
		err = l.Sync()
	}
	return first, err
}

// Write writes entries as one batch without waiting for the disk and returns
// the offset of the first one. They are durable, and visible to readers and
// Tail, after the next Sync (at once with NoSync). After an error the log is
// closed: what is on disk is decided again at the next Open.
func (l *Log) Write(entries []Entry) (first uint64, err error) {
	if len(entries) == 0 {
		return 0, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return 0, ErrClosed
	}
	for i := range entries {
		if err := entries[i].Check(); err != nil {
			return 0, fmt.Errorf("wal %s: append: entry %d: %w", l.name, i, err)
		}
	}
	first = l.last + 1
	l.batch.Clear()
	if l.segBytes > l.segSize { // tidwall starts a new segment before the batch
		l.segBytes, l.dirDirty = 0, true
	}
	for i := range entries {
		l.buf = AppendEncode(l.buf[:0], &entries[i])
		l.batch.Write(first+uint64(i), l.buf)
		// tidwall starts a new segment after an entry that fills one.
		if l.segBytes += uvarintLen(len(l.buf)) + len(l.buf); l.segBytes >= l.segSize {
			l.segBytes, l.dirDirty = 0, true
		}
	}
	if err := l.tw.WriteBatch(&l.batch); err != nil {
		l.closeLocked()
		return 0, fmt.Errorf("wal %s: append at %d: %w", l.name, first, err)
	}
	l.last = first + uint64(len(entries)) - 1
	if l.noSync {
		l.publishLocked(l.last)
	}
	return first, nil
}

func uvarintLen(n int) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// publishLocked makes offsets up to durable visible to Tail.
func (l *Log) publishLocked(durable uint64) {
	if durable <= l.durable {
		return
	}
	l.durable = durable
	close(l.notify)
	l.notify = make(chan struct{})
}

// Read returns the entry at offset.
func (l *Log) Read(offset uint64) (Entry, error) {
	data, err := l.tw.Read(offset)
	if err != nil {
		if errors.Is(err, twal.ErrClosed) {
			return Entry{}, fmt.Errorf("wal %s: read offset %d: %w", l.name, offset, ErrClosed)
		}
		if errors.Is(err, twal.ErrNotFound) {
			first, last := l.Bounds()
			if offset < first {
				return Entry{}, fmt.Errorf("wal %s: offset %d: %w (first is %d)", l.name, offset, ErrTruncated, first)
			}
			return Entry{}, fmt.Errorf("wal %s: offset %d is past the last offset %d", l.name, offset, last)
		}
		return Entry{}, fmt.Errorf("wal %s: read offset %d: %w", l.name, offset, err)
	}
	e, err := Decode(data)
	if err != nil {
		return Entry{}, fmt.Errorf("wal %s: %w", l.name, &CorruptError{Offset: offset, Err: err})
	}
	return e, nil
}

// readBytesLimit stops a ReadRange once it holds this many bytes of keys and
// values (it always returns at least one record).
const readBytesLimit = 4 << 20

// ReadRange returns up to max records (and about 4 MiB) starting at from,
// stopping at the last durable offset. It may return fewer than max records
// before the end: a caller reading on continues from the last offset
// returned plus one, never from from+max.
func (l *Log) ReadRange(from uint64, max int) ([]Record, error) {
	l.mu.Lock()
	first, last := l.first, l.durable
	l.mu.Unlock()
	if from < first {
		return nil, fmt.Errorf("wal %s: offset %d: %w (first is %d)", l.name, from, ErrTruncated, first)
	}
	var out []Record
	size := 0
	for off := from; off <= last && len(out) < max && size < readBytesLimit; off++ {
		e, err := l.Read(off)
		if err != nil {
			return out, err
		}
		out = append(out, Record{Offset: off, Entry: e})
		size += len(e.Key) + len(e.Value)
	}
	return out, nil
}

// Tail is the change feed: it returns up to max durable records from offset
// from on, waiting until at least one exists. It returns ErrTruncated (wrapped) when
// from is behind the log's first offset, and ctx's error when ctx ends first.
func (l *Log) Tail(ctx context.Context, from uint64, max int) ([]Record, error) {
	for {
		l.mu.Lock()
		last, closed, wait := l.durable, l.closed, l.notify
		l.mu.Unlock()
		if closed {
			return nil, ErrClosed
		}
		if from <= last {
			return l.ReadRange(from, max)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-wait:
		}
	}
}

// TruncateFront removes every entry before offset. Offsets past the last
// entry are clamped so that the log becomes empty but keeps counting.
func (l *Log) TruncateFront(offset uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset > l.last+1 {
		offset = l.last + 1
	}
	if offset <= l.first {
		return nil
	}
	if err := l.tw.TruncateFront(offset); err != nil {
		return fmt.Errorf("wal %s: truncate front to %d: %w", l.name, offset, err)
	}
	l.first = offset
	if err := SyncDir(l.dir); err != nil {
		return fmt.Errorf("wal %s: truncate front to %d: %w", l.name, offset, err)
	}
	return nil
}

// TruncateBack removes every entry after offset: after a failed append,
// what the log holds past the last entry known durable is cut, so that a
// write its caller was told failed is not in the log.
func (l *Log) TruncateBack(offset uint64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return ErrClosed
	}
	if offset >= l.last {
		return nil
	}
	if offset+1 < l.first {
		return fmt.Errorf("wal %s: truncate back to %d: the log starts at %d", l.name, offset, l.first)
	}
	if err := l.tw.TruncateBack(offset); err != nil {
		return fmt.Errorf("wal %s: truncate back to %d: %w", l.name, offset, err)
	}
	if err := l.tw.Sync(); err != nil {
		return fmt.Errorf("wal %s: truncate back to %d: %w", l.name, offset, err)
	}
	l.last, l.synced = offset, min(l.synced, offset)
	l.durable = min(l.durable, offset)
	l.segBytes = tailSegmentSize(l.dir) // as Open counts it, for the rotation mirror
	return SyncDir(l.dir)
}

// Close closes the log and wakes every waiting Tail.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	return l.closeLocked()
}

func (l *Log) closeLocked() error {
	l.closed = true
	close(l.notify)
	l.notify = make(chan struct{})
	if err := l.tw.Close(); err != nil && !errors.Is(err, twal.ErrClosed) {
		return fmt.Errorf("wal %s: close: %w", l.name, err)
	}
	return nil
}

// Sync makes every entry appended so far durable and visible to Tail. It
// does not hold up Append for longer than tidwall/wal's own lock does.
func (l *Log) Sync() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	target, dirDirty := l.last, l.dirDirty
	if target <= l.synced && !dirDirty {
		// Nothing was written since an fsync of ours: skip the syscall
		// (a batch of remote entries that all lost LWW writes nothing).
		l.mu.Unlock()
		return nil
	}
	l.dirDirty = false
	l.mu.Unlock()
	err := l.tw.Sync()
	if err == nil && dirDirty {
		err = SyncDir(l.dir)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		if errors.Is(err, twal.ErrClosed) {
			err = ErrClosed
		} else {
			l.closeLocked() // after a failed fsync nothing written since is trustworthy
		}
		return fmt.Errorf("wal %s: sync: %w", l.name, err)
	}
	l.synced = max(l.synced, target)
	l.publishLocked(target)
	return nil
}

// Files counts the log's segment files and their bytes on disk, as they are
// now (the tail segment grows as entries are written). It reads the log's
// directory, not the segments.
func (l *Log) Files() (segments int, bytes int64, err error) {
	segs, _ := segmentFiles(l.dir)
	for _, s := range segs {
		fi, err := os.Stat(s.path)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue // removed by a truncation meanwhile
			}
			return segments, bytes, fmt.Errorf("wal %s: %w", l.name, err)
		}
		segments++
		bytes += fi.Size()
	}
	return segments, bytes, nil
}

// prevIDFile lists the ids the log had before NewID gave it its current
// one, one a line, oldest first (at most maxPrevIDs).
const (
	prevIDFile = "LOG_ID.prev"
	maxPrevIDs = 16
)

// NewID gives the log a new random id, for the same entries at the same
// offsets: an offset of the old id no longer means anything to a peer (a
// cursor in it is answered with a snapshot), while what this node made of
// the old id (a checkpoint) stays valid, since the files are the same. The
// old id is recorded first (PreviousIDs), then LOG_ID is replaced; each
// atomically, so a crash leaves the old id or the new one, and either way
// the checkpoints of both. It returns the new id.
func (l *Log) NewID() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return "", ErrClosed
	}
	prev, err := PreviousIDs(l.dir)
	if err != nil {
		return "", fmt.Errorf("wal %s: new log id: %w", l.name, err)
	}
	prev = append(prev, l.id)
	if len(prev) > maxPrevIDs {
		prev = prev[len(prev)-maxPrevIDs:]
	}
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	id := hex.EncodeToString(raw[:])
	err = WriteFileAtomic(filepath.Join(l.dir, prevIDFile), func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Join(prev, "\n")+"\n")
		return err
	})
	if err == nil {
		err = WriteFileAtomic(filepath.Join(l.dir, idFile), func(w io.Writer) error {
			_, err := io.WriteString(w, id+"\n")
			return err
		})
	}
	if err != nil {
		return "", fmt.Errorf("wal %s: new log id: %w", l.name, err)
	}
	l.id = id
	return id, nil
}

// PreviousIDs returns the ids the log in dir had before its current one
// (NewID), oldest first; none if it never changed. A malformed file is an
// error.
func PreviousIDs(dir string) ([]string, error) {
	path := filepath.Join(dir, prevIDFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		id, err := parseID(path, []byte(line))
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if len(ids) > maxPrevIDs {
		return nil, fmt.Errorf("%s: %d ids, at most %d are kept", path, len(ids), maxPrevIDs)
	}
	return ids, nil
}
