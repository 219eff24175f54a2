package repl

import (
	"errors"
	"fmt"

	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// subscription is the subscriber's side of one stream, as a state machine
// stepped with the publisher's frames: no I/O inside. Each step says what to
// do (Ready): the entries to apply, then the cursor to save and acknowledge
// once they are applied. A frame out of place is an error that ends the
// stream with nothing of it applied.
type subscription struct {
	asked      tables.Cursor // the cursor the request was made from
	logID      string        // the publisher's log, once it said
	next       uint64        // the next offset of its log expected; 0 until known
	snapOffset uint64        // during a snapshot: the offset it is as of
	snapFloor  uint64        // the snapshot's publisher is complete below this HLC
	relay      bool          // the publisher said it filters (frame Y)
}

// Ready is what the subscriber does after a step, in this order.
type Ready struct {
	Apply  []wal.Entry    // apply these (last-write-wins)
	Cursor *tables.Cursor // then save and acknowledge this cursor
	// Snapshot: Apply holds a snapshot's records, of a publisher complete
	// below Floor (tables.Table.ApplySnapshot).
	Snapshot bool
	Floor    uint64
	// SnapshotDone: the snapshot is complete (tables.Table.SnapshotDone).
	SnapshotDone bool
}

// newSubscription returns the state of a stream from the stored cursor
// (zero if none) and the request that opens it, which asks the publisher to
// filter by the claims have.
func newSubscription(table, tableID string, cur tables.Cursor, have map[string]Claim) (*subscription, request) {
	return &subscription{asked: cur}, request{Version: version, Table: table, TableID: tableID, LogID: cur.LogID, From: cur.Offset + 1, Relay: true, Have: have}
}

// Relay reports whether the publisher said it filters by claims: then the
// subscriber sends its claims as they change.
func (s *subscription) Relay() bool { return s.relay }

// Step takes the publisher's next frame.
func (s *subscription) Step(f frame) (Ready, error) {
	switch f.Type {
	case frameError:
		return Ready{}, fmt.Errorf("the publisher says: %s", f.Message)
	case frameRelay:
		if s.relay || s.logID != "" {
			return Ready{}, errors.New("relay frame out of place")
		}
		s.relay = true
		return Ready{}, nil
	case frameStart:
		if s.logID != "" || f.LogID != s.asked.LogID || f.Offset != s.asked.Offset+1 {
			return Ready{}, fmt.Errorf("publisher resumed at %s/%d, not at our cursor %s/%d", f.LogID, f.Offset, s.asked.LogID, s.asked.Offset+1)
		}
		s.logID, s.next = f.LogID, f.Offset
		// Tell the publisher where we are, even if nothing new comes.
		return Ready{Cursor: &tables.Cursor{LogID: s.logID, Offset: s.next - 1}}, nil
	case frameSnapBegin:
		if s.logID != "" {
			return Ready{}, errors.New("a second snapshot in one stream")
		}
		s.logID, s.snapOffset, s.snapFloor = f.LogID, f.Offset, f.Floor
		return Ready{}, nil
	case frameSnapRecs:
		if s.logID == "" || s.next != 0 {
			return Ready{}, errors.New("snapshot records outside a snapshot")
		}
		return Ready{Apply: f.Entries, Snapshot: true, Floor: s.snapFloor}, nil
	case frameSnapEnd:
		if s.logID == "" || s.next != 0 {
			return Ready{}, errors.New("snapshot end outside a snapshot")
		}
		s.next = s.snapOffset + 1
		return Ready{Cursor: &tables.Cursor{LogID: s.logID, Offset: s.snapOffset}, SnapshotDone: true, Floor: s.snapFloor}, nil
	case frameBatch:
		if s.next == 0 || f.Offset != s.next {
			return Ready{}, fmt.Errorf("batch at offset %d, expected %d", f.Offset, s.next)
		}
		s.next = f.Offset + uint64(len(f.Entries))
		return Ready{Apply: f.Entries, Cursor: &tables.Cursor{LogID: s.logID, Offset: s.next - 1}}, nil
	case frameFiltered:
		if !s.relay {
			return Ready{}, errors.New("a filtered batch from a publisher that did not say it filters")
		}
		if s.next == 0 || f.Offset != s.next {
			return Ready{}, fmt.Errorf("filtered batch at offset %d, expected %d", f.Offset, s.next)
		}
		s.next = f.Offset + f.Span
		return Ready{Apply: f.Entries, Cursor: &tables.Cursor{LogID: s.logID, Offset: s.next - 1}}, nil
	}
	return Ready{}, fmt.Errorf("unexpected frame %q", f.Type)
}
