package tables

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// Snapshot returns every record of the copy, tombstones included, and the
// log offset the view reflected at that instant: applying the records and
// then the log after the offset rebuilds the copy.
func (t *Table) Snapshot() (recs []Record, offset uint64, err error) {
	f := t.Freeze()
	recs = make([]Record, 0, f.Len())
	if err := f.Each(nil, func(r Record) error { recs = append(recs, r); return nil }); err != nil {
		return nil, 0, fmt.Errorf("snapshot: %w", err)
	}
	return recs, f.Offset, nil
}

// Cursor is how far this copy has applied another copy's log: the log's id
// and the last offset applied.
type Cursor struct {
	LogID  string `json:"log_id"`
	Offset uint64 `json:"offset"`
}

// cursors keeps the copy's cursors in memory and in the file "cursors" of
// the copy's directory. A cursor is saved only after the entries it covers
// were applied (and so are durable), at most every cursorSaveEvery, so after
// a crash a cursor can only be behind: entries are repeated (LWW makes that
// a no-op), never skipped.
type cursors struct {
	mu      sync.Mutex
	path    string
	m       map[string]Cursor
	onDisk  map[string]Cursor // as last saved
	dirty   bool
	savedAt time.Time
}

const cursorSaveEvery = 100 * time.Millisecond

// reset forgets every cursor (on disk too): the copy follows every peer
// again from the start, with a snapshot.
func (c *cursors) reset() {
	c.mu.Lock()
	c.m, c.onDisk, c.dirty = map[string]Cursor{}, map[string]Cursor{}, true
	c.mu.Unlock()
	c.save()
}

func loadCursors(dir string) (*cursors, error) {
	c := &cursors{path: filepath.Join(dir, "cursors"), m: map[string]Cursor{}, onDisk: map[string]Cursor{}}
	if left, _ := filepath.Glob(c.path + ".*.tmp"); len(left) > 0 { // a save a crash interrupted
		for _, f := range left {
			os.Remove(f)
		}
	}
	b, err := os.ReadFile(c.path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c.m); err != nil {
		// Forgetting cursors is safe: peers resend (or snapshot) what is missing.
		c.m = map[string]Cursor{}
		return c, fmt.Errorf("%s is malformed, starting without cursors: %w", c.path, err)
	}
	maps.Copy(c.onDisk, c.m)
	return c, nil
}

// ForgetCursor forgets this copy's cursor in peer's log (on disk too): the
// next stream from peer starts with a snapshot.
func (t *Table) ForgetCursor(peer string) {
	cs := t.cursors
	cs.mu.Lock()
	delete(cs.m, peer)
	delete(cs.onDisk, peer)
	cs.dirty = true
	err := cs.saveLocked()
	cs.mu.Unlock()
	if err != nil {
		t.opts.Logger.Warn("saving cursors", "table", t.opts.Name, "err", err)
	}
}

// Cursor returns this copy's cursor in the log of peer: none while the copy
// is rebuilding (Rebuild), so that every stream opened then asks for a
// snapshot, even if a stream that was running when Rebuild forgot the
// cursors saved one again as it ended.
func (t *Table) Cursor(peer string) (Cursor, bool) {
	if t.rebuilding.Load() {
		return Cursor{}, false
	}
	t.cursors.mu.Lock()
	defer t.cursors.mu.Unlock()
	c, ok := t.cursors.m[peer]
	return c, ok
}

// HasCursor reports whether this copy has followed any peer's log.
func (t *Table) HasCursor() bool {
	t.cursors.mu.Lock()
	defer t.cursors.mu.Unlock()
	return len(t.cursors.m) > 0
}

// SetCursor records that every entry of peer's log up to c.Offset has been
// applied here. Call it only after the Apply of those entries returned. It
// returns the cursor as saved on disk, which may be behind (saves are at
// most every 100 ms): acknowledge that one to the peer, so that after a
// crash this copy can resume from the peer's log rather than a snapshot.
func (t *Table) SetCursor(peer string, c Cursor) (Cursor, error) {
	cs := t.cursors
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.m[peer] = c
	cs.dirty = true
	var err error
	if time.Since(cs.savedAt) >= cursorSaveEvery {
		err = cs.saveLocked()
	}
	return cs.onDisk[peer], err
}

func (cs *cursors) saveLocked() error {
	if !cs.dirty {
		return nil
	}
	b, _ := json.Marshal(cs.m)
	if err := wal.WriteFileAtomic(cs.path, func(w io.Writer) error { _, err := w.Write(b); return err }); err != nil {
		return err
	}
	cs.dirty, cs.savedAt = false, time.Now()
	maps.Copy(cs.onDisk, cs.m)
	return nil
}

// SaveCursors writes the cursors that changed since the last save and
// returns the one of peer as saved.
func (t *Table) SaveCursors(peer string) (Cursor, error) {
	cs := t.cursors
	cs.mu.Lock()
	defer cs.mu.Unlock()
	err := cs.saveLocked()
	return cs.onDisk[peer], err
}

func (cs *cursors) save() error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return cs.saveLocked()
}

// acks keeps the offsets of this copy's log that subscribers acknowledged,
// so that log truncation keeps what a known holder has not applied yet.
type acks struct {
	mu sync.Mutex
	m  map[string]Ack
}

// Ack is how far a subscriber has applied this copy's log, and when it
// last said so.
type Ack struct {
	Offset uint64
	At     time.Time
}

// Ack records that subscriber has applied this copy's log up to offset (at
// most the last offset written: a subscriber cannot have more).
func (t *Table) Ack(subscriber string, offset uint64) {
	_, last := t.Bounds()
	offset = min(offset, last)
	t.acks.mu.Lock()
	defer t.acks.mu.Unlock()
	if t.acks.m == nil {
		t.acks.m = map[string]Ack{}
	}
	a := t.acks.m[subscriber]
	a.Offset, a.At = max(a.Offset, offset), time.Now()
	t.acks.m[subscriber] = a
}

// Acks returns every subscriber's acknowledged offset.
func (t *Table) Acks() map[string]uint64 {
	t.acks.mu.Lock()
	defer t.acks.mu.Unlock()
	out := make(map[string]uint64, len(t.acks.m))
	for k, v := range t.acks.m {
		out[k] = v.Offset
	}
	return out
}

// Subscribers returns every subscriber's acknowledgement.
func (t *Table) Subscribers() map[string]Ack {
	t.acks.mu.Lock()
	defer t.acks.mu.Unlock()
	out := make(map[string]Ack, len(t.acks.m))
	for k, v := range t.acks.m {
		out[k] = v
	}
	return out
}

// Cursors returns this copy's cursors in its peers' logs.
func (t *Table) Cursors() map[string]Cursor {
	t.cursors.mu.Lock()
	defer t.cursors.mu.Unlock()
	out := make(map[string]Cursor, len(t.cursors.m))
	for k, v := range t.cursors.m {
		out[k] = v
	}
	return out
}

// truncationPoint is the first offset the log must keep after a checkpoint
// at offset: the retention window, extended back to the lowest offset a
// subscriber acknowledged, but never more than 10 windows back (a holder
// gone that long gets a snapshot instead).
func (t *Table) truncationPoint(offset uint64) uint64 {
	keep := offset + 1
	if keep > t.opts.Retention {
		keep -= t.opts.Retention
	} else {
		keep = 1
	}
	floor := uint64(1)
	if offset+1 > 10*t.opts.Retention {
		floor = offset + 1 - 10*t.opts.Retention
	}
	for _, a := range t.Acks() {
		if a+1 < keep {
			keep = max(a+1, floor)
		}
	}
	return keep
}

// LeafDigests returns, for each given bucket, the digests of its 256
// leaves (leaf = Leaf(key)>>8 within the bucket). It reads the whole view.
func (t *Table) LeafDigests(buckets []int) (map[int]*[256]uint64, error) {
	out := map[int]*[256]uint64{}
	for _, b := range buckets {
		if b < 0 || b >= Buckets {
			return nil, fmt.Errorf("%w: bucket %d", ErrInvalid, b)
		}
		out[b] = new([256]uint64)
	}
	err := t.eachRecord(func(k, v string) {
		leaf := Leaf([]byte(k[len(userKeyPrefix):]))
		if d, ok := out[leaf%Buckets]; ok {
			d[leaf/Buckets] ^= recordHash(k, v)
		}
	})
	return out, err
}

// KeyHash names a record for repair: its key's hash (HashKey) and the hash
// the record adds to the digest.
type KeyHash struct {
	Key  uint64
	Hash uint64
}

// LeafHashes returns the key and record hashes of every record (tombstones
// included) in the given leaves.
func (t *Table) LeafHashes(leaves []int) ([]KeyHash, error) {
	want := map[int]bool{}
	for _, l := range leaves {
		want[l] = true
	}
	var out []KeyHash
	err := t.eachRecord(func(k, v string) {
		if h := HashKey([]byte(k[len(userKeyPrefix):])); want[int(h&0xffff)] {
			out = append(out, KeyHash{h, recordHash(k, v)})
		}
	})
	return out, err
}

// RecordsByKeyHash returns the records (tombstones included) whose keys
// hash (HashKey) to one of the given values.
func (t *Table) RecordsByKeyHash(hashes []uint64) ([]Record, error) {
	want := make(map[uint64]bool, len(hashes))
	for _, h := range hashes {
		want[h] = true
	}
	var out []Record
	var derr error
	err := t.eachRecord(func(k, v string) {
		if key := k[len(userKeyPrefix):]; want[HashKey([]byte(key))] && derr == nil {
			r, err := decodeRecord(key, v)
			derr = err
			out = append(out, r)
		}
	})
	if err == nil {
		err = derr
	}
	return out, err
}

// eachRecord calls fn for every record of the view (view key, encoding).
func (t *Table) eachRecord(fn func(k, v string)) error {
	return t.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", userKeyPrefix, func(k, v string) bool {
			if len(k) == 0 || k[:1] != userKeyPrefix {
				return false
			}
			fn(k, v)
			return true
		})
	})
}
