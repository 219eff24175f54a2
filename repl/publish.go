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
	if !r.enter() {
		s.Reset()
		return
	}
	defer r.wg.Done()
	defer s.Close()
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
	have := newHaveVec(req.Have)
	limit := 64
	if req.Relay {
		limit = maxHaveFrame
	}
	go func() { // acknowledgements and claims, until the subscriber goes away
		defer cancel()
		for {
			b, err := mesh.ReadFrame(s, limit)
			if err != nil {
				return
			}
			f, err := decodeFrame(b)
			switch {
			case err == nil && f.Type == frameAck:
				t.Ack(peerName, f.Offset)
			case err == nil && f.Type == frameHave && req.Relay:
				have.Set(f.Have)
			default:
				if err == nil {
					err = fmt.Errorf("unexpected frame %q", f.Type)
				}
				r.log.Warn("repl: bad frame from subscriber", "peer", peerName, "table", req.Table, "err", err)
				s.Reset()
				return
			}
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
	err = r.publish(ctx, s, t, req, peerName, have)
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
// the log from the cursor, then every entry as it becomes durable: to a
// subscriber that asked for it, filtered by its claims (publishFiltered).
func (r *Replicator) publish(ctx context.Context, s mesh.Stream, t *tables.Table, req request, peer string, have *haveVec) error {
	logID := t.LogID()
	from := req.From
	if req.Relay {
		if err := send(s, &frame{Type: frameRelay}); err != nil {
			return err
		}
	}
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
	if req.Relay {
		return r.publishFiltered(ctx, s, t, logID, from, peer, have)
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
		r.countSent(t.Name(), peer, len(entries), 0)
		from = recs[len(recs)-1].Offset + 1
	}
}

// relayHold is how long a publisher at the end of its log holds an entry
// of a third origin that the subscriber follows directly, waiting for the
// subscriber to claim it (it normally has it from the origin within a
// round trip and a commit). After that the entry is sent. (A test that
// counts sends holds longer, through Replicator.hold, so that a slow
// machine does not turn a skip into a send.)
const relayHold = 500 * time.Millisecond

// skipReport is how long a publisher may leave offsets it skipped
// unreported when nothing else is to be sent: then a filtered batch with
// no entries moves the subscriber's cursor (and so its acknowledgement,
// which sync status and the purge horizon read) past them.
const skipReport = 20 * time.Millisecond

// publishFiltered streams the log from offset from to a subscriber that
// sends its claims: every entry Relay says to send, in log order, in
// filtered batches that also cover the offsets skipped before them.
func (r *Replicator) publishFiltered(ctx context.Context, s mesh.Stream, t *tables.Table, logID string, from uint64, peer string, have *haveVec) error {
	self := r.mesh.Name()
	base := from // the first offset not yet covered by a frame sent
	flush := func(entries []wal.Entry) error {
		if from > base {
			t.Served(peer, logID, from-1)
		}
		if err := send(s, &frame{Type: frameFiltered, Offset: base, Span: from - base, Entries: entries}); err != nil {
			return err
		}
		base = from
		return nil
	}
	for {
		wctx, wcancel := ctx, context.CancelFunc(func() {})
		if base < from {
			wctx, wcancel = context.WithTimeout(ctx, skipReport)
		}
		recs, err := t.Changes(wctx, from, maxBatchCount)
		wcancel()
		if err != nil && ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
			if err := flush(nil); err != nil { // quiet: report what was skipped
				return err
			}
			continue
		}
		if errors.Is(err, wal.ErrTruncated) {
			return fmt.Errorf("offset %d left the log: subscribe again for a snapshot", from)
		}
		if err != nil {
			return err
		}
		_, last := t.Bounds()
		tail := recs[len(recs)-1].Offset >= last
		deadline := time.Now().Add(time.Duration(r.hold.Load()))
		vs := make([]wal.Version, len(recs))
		for i := range recs {
			vs[i] = recs[i].Entry.Version
		}
		for len(recs) > 0 {
			claims, changed := have.Get()
			plan, n := PlanBatch(vs, self, peer, claims, tail && time.Now().Before(deadline))
			var entries []wal.Entry
			for i := range n {
				if plan[i] {
					entries = append(entries, recs[i].Entry)
				}
			}
			if n > 0 {
				from = recs[n-1].Offset + 1
				r.countSent(t.Name(), peer, len(entries), n-len(entries))
			}
			if len(entries) > 0 || from-base >= maxFilteredSpan-maxBatchCount {
				if err := flush(entries); err != nil {
					return err
				}
			}
			recs, vs = recs[n:], vs[n:]
			if len(recs) == 0 {
				break
			}
			// A held entry: wait for the subscriber's claims to move, or
			// for the deadline, then plan the rest again.
			wait := time.NewTimer(time.Until(deadline))
			select {
			case <-ctx.Done():
				wait.Stop()
				return ctx.Err()
			case <-changed:
			case <-wait.C:
			}
			wait.Stop()
		}
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
