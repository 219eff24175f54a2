// Package tables owns one table copy: a directory holding a
// write-ahead log (the source of truth), an in-memory BuntDB view of the
// current record of every key, and checkpoints of that view. It owns the
// hybrid logical clock, the last-write-wins rule, the per-table writer that
// batches writes under one fsync, the order-independent digest, and crash
// recovery (newest checkpoint + replay of the log after it).
package tables

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/ratelog"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// ErrNotFound is returned by Get for a key that holds nothing or a tombstone.
var ErrNotFound = errors.New("key not found")

// ErrClosed is returned by operations on a closed table.
var ErrClosed = errors.New("table closed")

// ErrFenced is a local write to a copy that is being handed off (Fence): it
// takes only what its peers send.
var ErrFenced = errors.New("this copy is being handed off: it takes no local writes")

// Options configure a table copy.
type Options struct {
	// Name is the table's name, used in errors and log lines.
	Name string
	// Node is this node's name: the origin stamped on local writes.
	Node string
	// Clock is the node's clock, shared by all its tables.
	Clock *Clock
	// NoSync acknowledges writes before they are on disk (fsync=never).
	NoSync bool
	// Limits on keys and values of local writes.
	Limits Limits
	// CheckpointEvery is how many applied entries trigger a background
	// checkpoint (default 100,000; negative: only on Close).
	CheckpointEvery int
	// Retention is how many entries the log keeps behind the newest
	// checkpoint, for peers catching up (default 100,000).
	Retention uint64
	// SegmentSize is the target size of a log segment file (default 4 MiB;
	// tidwall/wal keeps the tail segment in memory).
	SegmentSize int
	// Logger receives recovery notices (default slog.Default()).
	Logger *slog.Logger
	// Admit, if set, decides whether a remote entry may be applied: a
	// refused entry is skipped (not applied, not logged in this copy's log,
	// so never relayed), counted and logged, and the rest go on.
	Admit func(e *wal.Entry) error
	// Sign, if set, gives each local write its proof once its version is
	// stamped (the system tables carry their origin node's signature).
	Sign func(e *wal.Entry) []byte
	// Observer, if set, is told of every fsync of the copy's log as it
	// happens (the daemon's metrics).
	Observer Observer
}

// Observer is told of events of a copy as they happen. Its methods are
// called on the write path: they must be quick and must not block.
type Observer interface {
	// Synced: one fsync of table's log made entries log entries durable
	// (group commit) and took took.
	Synced(table string, took time.Duration, entries int)
}

// counters count what a copy did since it was opened (read by Stats).
type counters struct {
	puts, deletes     atomic.Int64 // local writes acknowledged
	adopted, rejected atomic.Int64 // remote entries applied, and not applied because they lost last-write-wins
}

func (o Options) withDefaults() Options {
	o.Limits = o.Limits.withDefaults()
	if o.CheckpointEvery == 0 {
		o.CheckpointEvery = 100_000
	}
	if o.Retention == 0 {
		o.Retention = 100_000
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = 4 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = NewClock(nil)
	}
	return o
}

// Table is one table copy. Reads are served from the view; writes go through
// the table's writer goroutine. Safe for concurrent use.
type Table struct {
	opts Options
	dir  string
	db   *buntdb.DB

	logMu   sync.RWMutex  // guards log, which is replaced when a failed log is reopened (fault.go)
	log     *wal.Log      // use current() outside the writer pipeline
	logSwap chan struct{} // closed and replaced when log is replaced or the table closes
	gen     atomic.Uint64 // incremented when log is replaced

	// Written only by the writer (or by Open before it starts), inside a
	// BuntDB update; read inside a BuntDB view so they match the records.
	applied    uint64 // last log offset reflected in the view
	digest     Digest
	keys       int64 // live keys
	tombstones int64

	closeMu    sync.RWMutex // held shared while enqueueing, exclusively to close
	closed     bool
	reqs       chan *request
	quit       chan struct{}
	syncCh     chan *batch   // writer -> syncer
	applyCh    chan *batch   // syncer -> applier
	done       chan struct{} // closed when the applier has answered everything
	appliedSeq atomic.Uint64 // the last batch the applier finished
	inflight   atomic.Int64  // batches sent down the pipeline and not yet answered

	failMu      sync.Mutex
	failed      error  // why writes are refused until the log is reopened (fault.go)
	damage      string // the last damage found in the log and what was done about it
	recoverKick chan struct{}
	recoverDone chan struct{}

	salvagedFrom, salvagedID string // Open only: where a salvaged log was set aside, and its id

	refusals refusals    // remote entries not admitted
	counts   counters    // writes and applies since the copy was opened
	fenced   atomic.Bool // local writes refused (Fence)

	cursors *cursors // how far this copy applied its peers' logs
	acks    acks     // how far subscribers applied this copy's log
	watch   logWatch // what peers may have applied of this log (restored.go)

	floorMu    sync.Mutex    // one Purge, Rebuild or SnapshotDone at a time (floor.go)
	floor      atomic.Uint64 // the purge floor: set by the writer (decide), read anywhere
	rebuilding atomic.Bool   // waits for a snapshot from a copy complete below the floor
	below      atomic.Int64  // remote changes not adopted for being older than the floor
	rebuildGen atomic.Uint64 // rebuilds since the copy was opened (SnapshotDone)
	resyncMu   sync.Mutex
	resync     chan struct{} // closed and replaced when the cursors are forgotten while open

	ckptMu     sync.Mutex // one checkpoint at a time
	ckptOffset uint64     // offset of the newest checkpoint on disk
	ckptKick   chan struct{}
	ckptDone   chan struct{}
}

// Open opens the table copy in dir, creating it if dir does not exist, and
// recovers it: load the newest checkpoint, replay the log after it. Damage
// in the log (entries that do not read back) does not stop it: see
// damage.go.
func Open(dir string, opts Options) (*Table, error) {
	opts = opts.withDefaults()
	if opts.Node == "" {
		return nil, fmt.Errorf("open table %s: no node name", opts.Name)
	}
	if len(opts.Node) > wal.MaxOriginSize {
		return nil, fmt.Errorf("open table %s: %w: node name is %d bytes, the limit is %d", opts.Name, ErrInvalid, len(opts.Node), wal.MaxOriginSize)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open table %s: %w", opts.Name, err)
	}
	db, err := buntdb.Open(":memory:")
	if err != nil {
		return nil, fmt.Errorf("open table %s: view: %w", opts.Name, err)
	}
	t := &Table{
		opts: opts, dir: dir, db: db, logSwap: make(chan struct{}),
		reqs: make(chan *request, 1024), quit: make(chan struct{}), done: make(chan struct{}),
		syncCh: make(chan *batch, 16), applyCh: make(chan *batch, 16),
		ckptKick: make(chan struct{}, 1), ckptDone: make(chan struct{}),
		recoverKick: make(chan struct{}, 1), recoverDone: make(chan struct{}),
		refusals: refusals{log: ratelog.New(time.Minute, 1024, "(other origins)")},
		resync:   make(chan struct{}),
	}
	if t.cursors, err = loadCursors(dir); err != nil {
		opts.Logger.Warn("table cursors", "table", opts.Name, "err", err)
	}
	fl, err := loadFloor(dir)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open table %s: %w", opts.Name, err)
	}
	t.floor.Store(fl.Floor)
	t.rebuilding.Store(fl.Rebuilding)
	err = t.openAndRecover()
	if err == nil {
		_, t.watch.openedLast = t.log.Bounds()
		err = t.purgeAtOpen()
	}
	if err != nil {
		db.Close()
		if t.log != nil {
			t.log.Close()
		}
		return nil, fmt.Errorf("open table %s: %w", opts.Name, err)
	}
	go t.writer()
	go t.syncer()
	go t.applier()
	go t.checkpointer()
	go t.recoverer()
	return t, nil
}

func (t *Table) walDir() string { return filepath.Join(t.dir, "wal") }

func (t *Table) openLog() (*wal.Log, error) {
	return wal.Open(t.walDir(), wal.Options{
		Name: t.opts.Name, NoSync: t.opts.NoSync, SegmentSize: t.opts.SegmentSize, Logger: t.opts.Logger,
	})
}

// replay applies the log's entries from offset from on to the view (by
// LWW) and returns the offsets of the entries that did not read back,
// which it skips.
func (t *Table) replay(from uint64) (skipped []uint64, err error) {
	_, last := t.log.Bounds()
	// ReadRange returns at most chunk records and stops early after about
	// 4 MiB of keys and values: continue after the last record it returned,
	// never after the chunk size, or large values would skip entries.
	const chunk = 4096
	for from <= last {
		recs, err := t.log.ReadRange(from, chunk)
		var ce *wal.CorruptError
		if errors.As(err, &ce) {
			skipped = append(skipped, ce.Offset)
		} else if err != nil {
			return skipped, fmt.Errorf("replay: %w", err)
		}
		if err := t.applyToView(recs); err != nil {
			return skipped, fmt.Errorf("replay: %w", err)
		}
		switch {
		case ce != nil:
			from = ce.Offset + 1
			t.applied = ce.Offset // the skipped entry's offset is behind the view too
		case len(recs) == 0:
			return skipped, fmt.Errorf("replay stopped at offset %d of %d", t.applied, last)
		default:
			from = recs[len(recs)-1].Offset + 1
		}
	}
	return skipped, nil
}

// observe moves the clock past a version found at recovery: this node's own
// as is (the clock never goes back across a restart), a peer's as
// ObserveRemote does.
func (t *Table) observe(v wal.Version) {
	if v.Origin == t.opts.Node {
		t.opts.Clock.Observe(v.HLC)
	} else {
		t.opts.Clock.ObserveRemote(v.HLC)
	}
}

// applyToView adopts records into the view by LWW (Open only).
func (t *Table) applyToView(recs []wal.Record) error {
	if len(recs) == 0 {
		return nil
	}
	return t.db.Update(func(tx *buntdb.Tx) error {
		for i := range recs {
			e := &recs[i].Entry
			t.observe(e.Version)
			cur, err := tx.Get(viewKey(e.Key))
			if err == nil {
				if v, ok := recordVersion(cur); ok && !AdoptRecord(e.Version, v, true, func() uint64 { return contentSum(encodeRecord(e)) }, contentSum(cur)) {
					continue
				}
			}
			if err := t.set(tx, e); err != nil {
				return err
			}
		}
		t.applied = max(t.applied, recs[len(recs)-1].Offset)
		return nil
	})
}

// set writes an adopted entry into the view and keeps the digest and counts.
func (t *Table) set(tx *buntdb.Tx, e *wal.Entry) error {
	return t.setRec(tx, e.Key, encodeRecord(e), e.Op)
}

// setRec is set with the entry's view encoding made already.
func (t *Table) setRec(tx *buntdb.Tx, userKey []byte, rec string, op wal.Op) error {
	key := viewKey(userKey)
	prev, replaced, err := tx.Set(key, rec, nil)
	if err != nil {
		return err
	}
	if replaced {
		t.digest.toggle(key, prev)
		if prev[0]&flagTombstone != 0 {
			t.tombstones--
		} else {
			t.keys--
		}
	}
	t.digest.toggle(key, rec)
	if op == wal.OpDelete {
		t.tombstones++
	} else {
		t.keys++
	}
	return nil
}

// Name is the table's name.
func (t *Table) Name() string { return t.opts.Name }

// Generation counts the write batches the copy has applied to its view
// since it was opened: while it stays the same, reads of the view see the
// same data. (It may change without the data changing.)
func (t *Table) Generation() uint64 { return t.appliedSeq.Load() }

// Closed reports whether Close has been called: the copy takes no more
// requests.
func (t *Table) Closed() bool {
	t.closeMu.RLock()
	defer t.closeMu.RUnlock()
	return t.closed
}

// Dir is the directory holding the copy.
func (t *Table) Dir() string { return t.dir }

// current returns the copy's log (it is replaced after a write failure).
func (t *Table) current() *wal.Log {
	t.logMu.RLock()
	defer t.logMu.RUnlock()
	return t.log
}

// LogID is the id of the copy's log.
func (t *Table) LogID() string { return t.current().ID() }

// Bounds are the first offset the copy's log holds and the last it wrote.
func (t *Table) Bounds() (first, last uint64) { return t.current().Bounds() }

// Get returns the live record of key, or ErrNotFound.
func (t *Table) Get(key []byte) (Record, error) {
	var r Record
	err := t.db.View(func(tx *buntdb.Tx) error {
		s, err := tx.Get(viewKey(key))
		if errors.Is(err, buntdb.ErrNotFound) {
			return ErrNotFound
		}
		if err != nil {
			return err
		}
		r, err = decodeRecord(string(key), s)
		if err == nil && r.Deleted {
			return ErrNotFound
		}
		return err
	})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return Record{}, fmt.Errorf("table %s: get: %w", t.opts.Name, err)
	}
	return r, err
}

// Scan returns up to limit live records whose keys start with prefix, in key
// order, starting after the key after (if not empty). limit <= 0 means all.
func (t *Table) Scan(prefix []byte, after []byte, limit int) ([]Record, error) {
	return t.scan(prefix, after, limit, false)
}

// ScanAll is Scan including tombstones, for replication and repair.
func (t *Table) ScanAll(prefix []byte, after []byte, limit int) ([]Record, error) {
	return t.scan(prefix, after, limit, true)
}

func (t *Table) scan(prefix, after []byte, limit int, tombstones bool) ([]Record, error) {
	var out []Record
	var derr error
	vp := viewKey(prefix)
	pivot := vp
	if len(after) > 0 && viewKey(after) >= pivot {
		pivot = viewKey(after) + "\x00"
	}
	err := t.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", pivot, func(k, v string) bool {
			if !strings.HasPrefix(k, vp) {
				return false
			}
			r, err := decodeRecord(k[len(userKeyPrefix):], v)
			if err != nil {
				derr = err
				return false
			}
			if r.Deleted && !tombstones {
				return true
			}
			out = append(out, r)
			return limit <= 0 || len(out) < limit
		})
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		return nil, fmt.Errorf("table %s: scan: %w", t.opts.Name, err)
	}
	return out, nil
}

// Stats describe a copy at one instant: the log position its view reflects,
// its counts and its digest.
type Stats struct {
	LogID       string
	FirstOffset uint64 // first offset the log still holds
	Applied     uint64 // last offset reflected in the view
	Keys        int64
	Tombstones  int64
	Digest      uint64
	Buckets     Digest
	Refused     int64  // remote entries not admitted since the copy was opened
	Floor       uint64 // the purge floor (HLC): tombstones older than it are gone
	Rebuilding  bool   // the copy waits for a snapshot from a copy complete below its floor
	BelowFloor  int64  // remote changes older than the floor not adopted since the copy was opened
	// Since the copy was opened: local writes acknowledged (puts and
	// deletes), remote entries adopted, and remote entries not applied
	// because the copy held a newer version (lost last-write-wins).
	Puts, Deletes, Adopted, Rejected int64
	Failed                           string // why writes are refused for now (a failed write; they resume by themselves)
	Damage                           string // damage found in the log since the copy was opened, and what was done
}

// Stats returns the copy's position, counts and digest, all from one instant.
func (t *Table) Stats() Stats {
	l := t.current()
	s := Stats{LogID: l.ID()}
	t.db.View(func(*buntdb.Tx) error {
		s.Applied, s.Keys, s.Tombstones, s.Buckets = t.applied, t.keys, t.tombstones, t.digest
		return nil
	})
	s.FirstOffset, _ = l.Bounds()
	s.Digest = s.Buckets.Sum()
	s.Refused = t.refusals.count.Load()
	s.Floor, s.Rebuilding, s.BelowFloor = t.floor.Load(), t.rebuilding.Load(), t.below.Load()
	s.Puts, s.Deletes = t.counts.puts.Load(), t.counts.deletes.Load()
	s.Adopted, s.Rejected = t.counts.adopted.Load(), t.counts.rejected.Load()
	t.failMu.Lock()
	if t.failed != nil {
		s.Failed = t.failed.Error()
	}
	s.Damage = t.damage
	t.failMu.Unlock()
	return s
}

// Close finishes the writes already accepted, refuses new ones, writes a
// checkpoint and closes the log.
func (t *Table) Close() error {
	t.closeMu.Lock()
	if t.closed {
		t.closeMu.Unlock()
		return nil
	}
	t.closed = true
	t.closeMu.Unlock()
	close(t.quit)
	<-t.done
	<-t.ckptDone
	<-t.recoverDone
	err := t.Checkpoint()
	if cerr := t.cursors.save(); err == nil {
		err = cerr
	}
	t.logMu.Lock()
	if cerr := t.log.Close(); err == nil {
		err = cerr
	}
	close(t.logSwap) // wakes Changes waiting for a reopened log
	t.logMu.Unlock()
	t.db.Close()
	return err
}

// checkpointer writes a checkpoint whenever the writer asks for one.
func (t *Table) checkpointer() {
	defer close(t.ckptDone)
	for {
		select {
		case <-t.quit:
			return
		case <-t.ckptKick:
			if err := t.Checkpoint(); err != nil {
				t.opts.Logger.Error("checkpoint failed", "table", t.opts.Name, "err", err)
			}
		}
	}
}

// LogFiles counts the copy's log segment files and their bytes on disk.
func (t *Table) LogFiles() (segments int, bytes int64, err error) { return t.current().Files() }

// EntryVersion returns the version of the entry at offset in the copy's log.
func (t *Table) EntryVersion(offset uint64) (wal.Version, error) {
	e, err := t.current().Read(offset)
	return e.Version, err
}
