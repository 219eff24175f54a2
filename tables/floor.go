package tables

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// The purge floor (docs/lifecycle.md). A copy's floor F is a timestamp
// (HLC) below which the copy is complete: for every key it holds every
// version older than F that any copy ever held, or a newer one, or nothing
// because it purged a tombstone newer than it. So a tombstone older than F
// may be dropped, and a remote change older than F is never adopted: it
// can only be one the copy already has or one that lost to a tombstone it
// purged. The floor is kept in the file "floor" of the copy's directory,
// written and fsynced before anything is purged.
//
// A copy that cannot show it is complete below the table's horizon (it was
// away, restored from a backup, or is new) is rebuilding: it drops every
// record older than its floor and takes records older than it only from
// the snapshot of a copy that is complete below it (SnapshotDone).

// floorFile is the name of the floor file in a copy's directory.
const floorFile = "floor"

// floorState is the floor file's content.
type floorState struct {
	Floor      uint64 `json:"floor"`
	Rebuilding bool   `json:"rebuilding,omitempty"`
}

// loadFloor reads the copy's floor file (none: floor 0). A floor file that
// does not parse fails the open: without it the copy cannot tell which
// changes it must refuse.
func loadFloor(dir string) (floorState, error) {
	b, err := os.ReadFile(filepath.Join(dir, floorFile))
	if errors.Is(err, os.ErrNotExist) {
		return floorState{}, nil
	}
	if err != nil {
		return floorState{}, fmt.Errorf("purge floor: %w", err)
	}
	var f floorState
	if err := json.Unmarshal(b, &f); err != nil {
		return floorState{}, fmt.Errorf("purge floor %s is malformed (%v): delete the copy's directory to rebuild it from a peer", filepath.Join(dir, floorFile), err)
	}
	return f, nil
}

// WriteFloor writes a copy directory's floor file (fsynced), for a copy
// about to be opened (store: a new copy of a table that has a horizon
// starts rebuilding).
func WriteFloor(dir string, floor uint64, rebuilding bool) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(floorState{Floor: floor, Rebuilding: rebuilding})
	return wal.WriteFileAtomic(filepath.Join(dir, floorFile), func(w io.Writer) error { _, err := w.Write(b); return err })
}

// Floor is the copy's purge floor (0: nothing purged).
func (t *Table) Floor() uint64 { return t.floor.Load() }

// Rebuilding reports whether the copy waits for a snapshot from a copy that
// is complete below its floor.
func (t *Table) Rebuilding() bool { return t.rebuilding.Load() }

// CompleteBelow is the timestamp below which the copy is complete: its
// floor, or 0 while it is rebuilding. A publisher sends it with a
// snapshot; a subscriber takes records older than its own floor only from
// a publisher complete below it.
func (t *Table) CompleteBelow() uint64 {
	t.floorMu.Lock()
	defer t.floorMu.Unlock()
	if t.rebuilding.Load() {
		return 0
	}
	return t.floor.Load()
}

// purgeReq is a purge going through the writer: drop tombstones older than
// tomb, and every record older than all.
type purgeReq struct{ tomb, all uint64 }

// Purge raises the copy's floor to h (never lowers it) and drops every
// tombstone older than the floor, then checkpoints, so the view and the
// checkpoint shrink. Call it only for a copy that is complete below h (the
// store checks the table's horizon record). It returns how many
// tombstones were dropped.
func (t *Table) Purge(ctx context.Context, h uint64) (int, error) {
	return t.lower(ctx, h, false)
}

// Rebuild is for a copy that cannot show it is complete below h: it raises
// the floor to h, marks the copy rebuilding, drops every record older than
// the floor (tombstones and values: they come back from a complete copy's
// snapshot), checkpoints, and forgets the cursors so every peer is followed
// again from a snapshot. It returns how many records were dropped.
func (t *Table) Rebuild(ctx context.Context, h uint64) (int, error) {
	return t.lower(ctx, h, true)
}

func (t *Table) lower(ctx context.Context, h uint64, rebuild bool) (int, error) {
	t.floorMu.Lock()
	defer t.floorMu.Unlock()
	f := max(t.floor.Load(), h)
	rebuilding := rebuild || t.rebuilding.Load()
	if f != t.floor.Load() || rebuilding != t.rebuilding.Load() {
		// The floor first: once anything is dropped, the copy must refuse
		// what is older, across a crash too.
		if err := WriteFloor(t.dir, f, rebuilding); err != nil {
			return 0, fmt.Errorf("table %s: purge: %w", t.opts.Name, err)
		}
	}
	req := &purgeReq{tomb: f}
	if rebuilding {
		req.all = f
	}
	t.rebuilding.Store(rebuilding)
	r, err := t.do(ctx, &request{remote: true, purge: req})
	if rebuild {
		// After the drop: a snapshot that began before it may have had
		// records dropped, and does not complete the copy (SnapshotDone).
		t.rebuildGen.Add(1)
	}
	if err != nil {
		return 0, err
	}
	if r.purged > 0 || rebuild {
		if err := t.checkpointNow(); err != nil {
			return r.purged, err
		}
	}
	if rebuild {
		t.cursors.reset()
		t.resyncNow()
	}
	return r.purged, nil
}

// RebuildGeneration counts the rebuilds of the copy since it was opened:
// take it when a snapshot begins and give it to SnapshotDone.
func (t *Table) RebuildGeneration() uint64 { return t.rebuildGen.Load() }

// SnapshotDone tells a rebuilding copy that a snapshot from a publisher
// complete below publisherFloor was applied in full, a snapshot that began
// at rebuild generation gen (RebuildGeneration): if that covers the copy's
// floor, and no rebuild dropped records since the snapshot began, the copy
// is complete again. It reports whether the copy is still rebuilding.
func (t *Table) SnapshotDone(publisherFloor, gen uint64) (bool, error) {
	t.floorMu.Lock()
	defer t.floorMu.Unlock()
	if !t.rebuilding.Load() {
		return false, nil
	}
	if publisherFloor < t.floor.Load() || gen != t.rebuildGen.Load() {
		return true, nil
	}
	if err := WriteFloor(t.dir, t.floor.Load(), false); err != nil {
		return true, fmt.Errorf("table %s: %w", t.opts.Name, err)
	}
	t.rebuilding.Store(false)
	t.opts.Logger.Info("copy rebuilt from a snapshot of a copy at the purge horizon", "table", t.opts.Name)
	return false, nil
}

// Resync returns a channel closed when the copy forgets its cursors while
// open (Rebuild): subscriptions then start again, from a snapshot.
func (t *Table) Resync() <-chan struct{} {
	t.resyncMu.Lock()
	defer t.resyncMu.Unlock()
	return t.resync
}

func (t *Table) resyncNow() {
	t.resyncMu.Lock()
	close(t.resync)
	t.resync = make(chan struct{})
	t.resyncMu.Unlock()
}

// belowFloor decides whether a remote change may not be adopted because it
// is older than the floor (a pure function): changes older than the floor
// are refused, except a snapshot's records from a publisher complete below
// the floor (what a rebuilding copy is rebuilt from).
func belowFloor(hlc, floor uint64, snapshot bool, publisherFloor uint64) bool {
	return hlc < floor && !(snapshot && publisherFloor >= floor)
}

// purgeView drops the records the request selects from the view, keeping
// the digest and the counts (inside a BuntDB update).
func (t *Table) purgeView(tx *buntdb.Tx, p purgeReq) (int, error) {
	var drop []string
	err := tx.AscendGreaterOrEqual("", userKeyPrefix, func(k, v string) bool {
		if len(k) == 0 || k[:1] != userKeyPrefix {
			return false
		}
		ver, ok := recordVersion(v)
		if !ok {
			return true
		}
		if ver.HLC < p.all || ver.HLC < p.tomb && v[0]&flagTombstone != 0 {
			drop = append(drop, k)
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	for _, k := range drop {
		prev, err := tx.Delete(k)
		if err != nil {
			return 0, err
		}
		t.digest.toggle(k, prev)
		if prev[0]&flagTombstone != 0 {
			t.tombstones--
		} else {
			t.keys--
		}
	}
	return len(drop), nil
}

// purgeAtOpen drops, after recovery, what the floor says is gone (the log
// may still hold the tombstones, and a crash may have come before the
// checkpoint that followed a purge), and checkpoints if it dropped any.
func (t *Table) purgeAtOpen() error {
	p := purgeReq{tomb: t.floor.Load()}
	if t.rebuilding.Load() {
		p.all = p.tomb
	}
	if p.tomb == 0 {
		return nil
	}
	var n int
	err := t.db.Update(func(tx *buntdb.Tx) (err error) {
		n, err = t.purgeView(tx, p)
		return err
	})
	if err != nil || n == 0 {
		return err
	}
	return t.checkpointNow()
}

// AckBound is, for one subscriber of this copy's log, how far it
// acknowledged and the bound that gives: every entry of the log after its
// acknowledgement (and every local write to come) is at or above Bound.
type AckBound struct {
	Subscriber string
	Offset     uint64
	At         time.Time
	Bound      uint64 // 0 when Behind
	Behind     string // why no bound: its acknowledgement is behind what the log holds
}

// maxBoundScan bounds how many log entries AckBounds reads per subscriber.
const maxBoundScan = 200_000

// AckBounds returns a fresh timestamp of this node's clock and, for every
// subscriber that acknowledged this copy's log, the bound its
// acknowledgement gives (see AckBound). Every local write stamped before
// the timestamp is in the log before the log is read.
func (t *Table) AckBounds(ctx context.Context) (uint64, []AckBound, error) {
	now := t.opts.Clock.Now()
	// An empty request through the writer: every write stamped before now
	// is in the log once it returns.
	if _, err := t.do(ctx, &request{remote: true}); err != nil {
		return 0, nil, err
	}
	log := t.current()
	first, last := log.Bounds()
	var out []AckBound
	for sub, a := range t.Subscribers() {
		b := AckBound{Subscriber: sub, Offset: a.Offset, At: a.At, Bound: now}
		switch {
		case a.Offset >= last:
		case a.Offset+1 < first:
			b.Bound, b.Behind = 0, fmt.Sprintf("its acknowledgement (offset %d) is behind what the log holds (from %d)", a.Offset, first)
		case last-a.Offset > maxBoundScan:
			b.Bound, b.Behind = 0, fmt.Sprintf("it is %d entries behind", last-a.Offset)
		default:
			m, err := minHLC(log, a.Offset+1, last)
			if err != nil {
				b.Bound, b.Behind = 0, err.Error()
			} else {
				b.Bound = min(b.Bound, m)
			}
		}
		out = append(out, b)
	}
	return now, out, nil
}

// minHLC is the smallest timestamp among the log's entries from..last.
func minHLC(log *wal.Log, from, last uint64) (uint64, error) {
	m := ^uint64(0)
	for from <= last {
		recs, err := log.ReadRange(from, 4096)
		if err != nil {
			return 0, err
		}
		if len(recs) == 0 {
			return 0, fmt.Errorf("the log ends at %d, before %d", from-1, last)
		}
		for _, r := range recs {
			m = min(m, r.Entry.Version.HLC)
		}
		from = recs[len(recs)-1].Offset + 1
	}
	return m, nil
}
