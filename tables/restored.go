package tables

import (
	"fmt"
	"sync"
)

// A data directory restored by copying files (or a log that lost its last
// entries in a crash under fsync=never) holds a log that ends before what
// its peers applied of it. The offsets after its end are then given to new
// entries, which a peer holding a cursor past them would skip. The copy
// finds out from its peers' word about its log (LogClaim: a subscriber's
// cursor when it asks for the log, an acknowledgement recorded in the
// table's purge horizon) and then gives its log a new id (wal.Log.NewID):
// every peer's cursor in the old id is answered with a snapshot, so nothing
// is skipped; the log's entries and checkpoints stay.

// LogClaim is a peer's word that it has applied the log LogID of this copy
// up to Offset.
type LogClaim struct {
	Peer   string
	LogID  string
	Offset uint64
	Source string // where the claim came from, for the log line
}

// LogPosition is what this copy knows of its log for one peer: its id, its
// last offset when this process opened the copy (or gave the log this id),
// and the highest offset of it this process has served to the peer.
type LogPosition struct {
	ID         string
	OpenedLast uint64
	Served     uint64
}

// LostEntries decides whether a claim shows that this copy's log lost
// entries the peer has applied. A peer can have applied an offset of this
// log only if this copy had it when it was opened (entries are served once
// durable), or if this process served it since. A claim past both, in this
// log, is of entries this copy no longer has: even if the log has since
// grown past the claim, its entries at those offsets are other ones.
func LostEntries(c LogClaim, p LogPosition) bool {
	return c.LogID != "" && c.LogID == p.ID && c.Offset > max(p.OpenedLast, p.Served)
}

// logWatch is the state LostEntries decides from, for the log's current id.
type logWatch struct {
	mu         sync.Mutex
	openedLast uint64
	served     map[string]uint64
}

// Served records that offsets of the log logID up to offset are being sent
// to peer (call it before sending them: a peer can claim nothing it was not
// sent). It is ignored if logID is no longer the log's id.
func (t *Table) Served(peer, logID string, offset uint64) {
	w := &t.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	if logID != t.LogID() {
		return
	}
	if w.served == nil {
		w.served = map[string]uint64{}
	}
	w.served[peer] = max(w.served[peer], offset)
}

// CheckClaim gives the log a new id if c shows that it lost entries the
// peer has (LostEntries), and returns the new id ("" if nothing changed).
// The change is logged as a warning naming the peer, the offsets and the
// new id; a checkpoint of the new id follows.
func (t *Table) CheckClaim(c LogClaim) (string, error) {
	id, err := t.checkClaim(c)
	if id != "" {
		if err := t.checkpointNow(); err != nil {
			// The checkpoints of the old id stay valid: only log it.
			t.opts.Logger.Warn("checkpoint after the new log id", "table", t.opts.Name, "err", err)
		}
	}
	return id, err
}

func (t *Table) checkClaim(c LogClaim) (string, error) {
	w := &t.watch
	w.mu.Lock()
	defer w.mu.Unlock()
	l := t.current()
	old := l.ID()
	_, last := l.Bounds()
	pos := LogPosition{ID: old, OpenedLast: w.openedLast, Served: w.served[c.Peer]}
	if !LostEntries(c, pos) {
		return "", nil
	}
	id, err := l.NewID()
	if err != nil {
		return "", fmt.Errorf("table %s: %w", t.opts.Name, err)
	}
	w.openedLast, w.served = last, map[string]uint64{}
	t.opts.Logger.Warn(fmt.Sprintf("this copy of %s is behind what %s acknowledged (offset %d > last %d): the data directory was restored from a copy; new log id %s",
		t.opts.Name, c.Peer, c.Offset, max(pos.OpenedLast, pos.Served), id),
		"table", t.opts.Name, "peer", c.Peer, "acknowledged", c.Offset, "last_at_open", pos.OpenedLast, "served", pos.Served,
		"last_now", last, "source", c.Source, "old_log_id", old, "new_log_id", id)
	return id, nil
}
