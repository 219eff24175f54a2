package repl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// writeTimeout drops a subscriber that does not read for this long.
const writeTimeout = 60 * time.Second

// requestTimeout bounds how long a subscriber may take to send its request.
const requestTimeout = 10 * time.Second

// serve is the publisher side of ID: it serves a table this node holds to
// a subscriber that belongs in the table's scope by this node's catalog. A
// node outside the scope gets a refusal and not a byte of data.
func (r *Replicator) serve(peerName string, s mesh.Stream) {
	defer s.Close()
	r.mu.Lock()
	if r.closed { // Close is waiting for the streams: take no new one
		r.mu.Unlock()
		s.Reset()
		return
	}
	r.wg.Add(1)
	r.mu.Unlock()
	defer r.wg.Done()
	s.SetReadDeadline(time.Now().Add(requestTimeout))
	b, err := mesh.ReadFrame(s, 64<<10)
	if err != nil {
		r.log.Warn("repl: no request", "peer", peerName, "err", err)
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Time{})
	req, err := decodeRequest(b)
	var t *tables.Table
	if err == nil {
		t, err = r.store.CopyFor(peerName, req.Table, req.TableID)
	}
	if err != nil {
		r.log.Warn("repl: refused a subscriber", "peer", peerName, "table", req.Table, "err", err)
		if req.Table != "" {
			r.count(req.Table, Stats{Refused: 1})
		}
		send(s, &frame{Type: frameError, Message: err.Error()})
		return
	}
	// A cursor in this copy's log past what this copy could have given the
	// subscriber: the copy was restored from older files. A new log id
	// makes the cursor one of another log, answered with a snapshot.
	if req.LogID != "" && req.From > 0 {
		if _, err := t.CheckClaim(tables.LogClaim{Peer: peerName, LogID: req.LogID, Offset: req.From - 1, Source: "replication request"}); err != nil {
			r.log.Error("repl: giving the log a new id", "table", req.Table, "err", err)
			send(s, &frame{Type: frameError, Message: "the publisher's log is behind this cursor and could not be given a new id"})
			return
		}
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	go func() { // acknowledgements, until the subscriber goes away
		defer cancel()
		for {
			b, err := mesh.ReadFrame(s, 64)
			if err != nil {
				return
			}
			f, err := decodeFrame(b)
			if err != nil || f.Type != frameAck {
				r.log.Warn("repl: bad frame from subscriber", "peer", peerName, "table", req.Table, "err", err)
				s.Reset()
				return
			}
			t.Ack(peerName, f.Offset)
		}
	}()
	// A catalog change may take the subscriber out of the table's scope (or
	// drop the table): then the stream ends before another entry is sent.
	revoked := make(chan error, 1)
	go func() {
		for {
			changed := r.store.Changed()
			if _, err := r.store.CopyFor(peerName, req.Table, req.TableID); err != nil {
				revoked <- err
				cancel()
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-changed:
			}
		}
	}()
	err = r.publish(ctx, s, t, peerName, req)
	select {
	case err = <-revoked:
		r.log.Info("repl: subscriber no longer admitted", "peer", peerName, "table", req.Table, "err", err)
	default:
		if ctx.Err() != nil {
			return
		}
		r.log.Info("repl: stream ended", "peer", peerName, "table", req.Table, "err", err)
	}
	send(s, &frame{Type: frameError, Message: err.Error()})
}

// publish sends a snapshot if the cursor is not in this copy's log, then
// the log from the cursor, then every entry as it becomes durable.
func (r *Replicator) publish(ctx context.Context, s mesh.Stream, t *tables.Table, peer string, req request) error {
	logID := t.LogID()
	from := req.From
	// A cursor past this log's end means the log lost entries the
	// subscriber has (a data directory restored from a backup): start over.
	if first, last := t.Bounds(); NeedsSnapshot(req.LogID, from, logID, first, last) {
		floor := t.CompleteBelow() // before the records: the floor only rises
		recs, offset, err := t.Snapshot()
		if err != nil {
			return err
		}
		t.Served(peer, logID, offset)
		if err := send(s, &frame{Type: frameSnapBegin, LogID: logID, Offset: offset, Floor: floor}); err != nil {
			return err
		}
		if err := sendRecords(s, recs); err != nil {
			return err
		}
		r.count(t.Name(), Stats{SnapshotsSent: 1})
		from = offset + 1
	} else if err := send(s, &frame{Type: frameStart, LogID: logID, Offset: from}); err != nil {
		return err
	}
	for {
		recs, err := t.Changes(ctx, from, maxBatchCount)
		if errors.Is(err, wal.ErrTruncated) {
			return fmt.Errorf("offset %d left the log: subscribe again for a snapshot", from)
		}
		if err != nil {
			return err
		}
		entries := make([]wal.Entry, len(recs))
		for i := range recs {
			entries[i] = recs[i].Entry
		}
		t.Served(peer, logID, recs[len(recs)-1].Offset)
		if err := send(s, &frame{Type: frameBatch, Offset: from, Entries: entries}); err != nil {
			return err
		}
		from = recs[len(recs)-1].Offset + 1
	}
}

func send(s mesh.Stream, f *frame) error {
	s.SetWriteDeadline(time.Now().Add(writeTimeout))
	return mesh.WriteFrame(s, encodeFrame(f))
}

// sendRecords sends records as snapshot frames (at most maxBatchCount or
// about maxBatchBytes each), then the end frame.
func sendRecords(s mesh.Stream, recs []tables.Record) error {
	for len(recs) > 0 {
		var entries []wal.Entry
		size := 0
		for len(recs) > 0 && len(entries) < maxBatchCount && size < maxBatchBytes {
			entries = append(entries, recs[0].Entry())
			size += len(recs[0].Key) + len(recs[0].Value)
			recs = recs[1:]
		}
		if err := send(s, &frame{Type: frameSnapRecs, Entries: entries}); err != nil {
			return err
		}
	}
	return send(s, &frame{Type: frameSnapEnd})
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
