package p2p

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/libp2p/go-libp2p/core/network"
)

// writeTimeout drops a subscriber that does not read for this long.
const writeTimeout = 60 * time.Second

// handleRepl is the publisher side of ReplID: it serves a table this node
// holds to a subscriber that belongs in the table's scope by this node's
// catalog. A node outside the scope gets a refusal and not a byte of data.
func (n *Node) handleRepl(s network.Stream) {
	defer s.Close()
	peerName := n.peerName(s.Conn().RemotePeer())
	s.SetReadDeadline(time.Now().Add(handshakeTimeout))
	b, err := ReadFrame(s, 64<<10)
	if err != nil {
		n.log.Warn("repl: no request", "peer", peerName, "err", err)
		s.Reset()
		return
	}
	s.SetReadDeadline(time.Time{})
	req, err := decodeReplRequest(b)
	var t *tables.Table
	if err == nil {
		t, err = n.admit(peerName, req)
	}
	if err != nil {
		n.log.Warn("repl: refused a subscriber", "peer", peerName, "table", req.Table, "err", err)
		n.send(s, &replFrame{Type: frameError, Message: err.Error()})
		return
	}
	ctx, cancel := context.WithCancel(n.ctx)
	defer cancel()
	go func() { // acknowledgements, until the subscriber goes away
		defer cancel()
		for {
			b, err := ReadFrame(s, 64)
			if err != nil {
				return
			}
			f, err := decodeFrame(b)
			if err != nil || f.Type != frameAck {
				n.log.Warn("repl: bad frame from subscriber", "peer", peerName, "table", req.Table, "err", err)
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
			changed := n.store.Changed()
			if _, err := n.admit(peerName, req); err != nil {
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
	err = n.publish(ctx, s, t, req)
	select {
	case err = <-revoked:
		n.log.Info("repl: subscriber no longer admitted", "peer", peerName, "table", req.Table, "err", err)
	default:
		if ctx.Err() != nil {
			return
		}
		n.log.Info("repl: stream ended", "peer", peerName, "table", req.Table, "err", err)
	}
	n.send(s, &replFrame{Type: frameError, Message: err.Error()})
}

// admit decides whether a peer may have (or send into) a table: this node
// holds a copy of that very table (name and id), and the table's scope by
// this node's catalog selects the peer.
func (n *Node) admit(peerName string, req replRequest) (*tables.Table, error) {
	info, err := n.store.Lookup(req.Table, req.TableID)
	if err != nil {
		return nil, err
	}
	if !scope.Holds(info, peerName) {
		return nil, fmt.Errorf("%s is not in the scope of table %s (%s)", peerName, req.Table, info.Scope)
	}
	t, ok := n.store.Copy(info) // held, or draining until handed off
	if !ok {
		return nil, fmt.Errorf("%w: %s", store.ErrNotHeld, req.Table)
	}
	return t, nil
}

// publish sends a snapshot if the cursor is not in this copy's log, then
// the log from the cursor, then every entry as it becomes durable.
func (n *Node) publish(ctx context.Context, s network.Stream, t *tables.Table, req replRequest) error {
	logID := t.LogID()
	from := req.From
	// A cursor past this log's end means the log lost entries the
	// subscriber has (a data directory restored from a backup): start over.
	if first, last := t.Bounds(); req.LogID != logID || from == 0 || from < first || from > last+1 {
		recs, offset, err := t.Snapshot()
		if err != nil {
			return err
		}
		if err := n.send(s, &replFrame{Type: frameSnapBegin, LogID: logID, Offset: offset}); err != nil {
			return err
		}
		if err := n.sendRecords(s, recs); err != nil {
			return err
		}
		from = offset + 1
	} else if err := n.send(s, &replFrame{Type: frameStart, LogID: logID, Offset: from}); err != nil {
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
		if err := n.send(s, &replFrame{Type: frameBatch, Offset: from, Entries: entries}); err != nil {
			return err
		}
		from = recs[len(recs)-1].Offset + 1
	}
}

func (n *Node) send(s network.Stream, f *replFrame) error {
	s.SetWriteDeadline(time.Now().Add(writeTimeout))
	return WriteFrame(s, encodeFrame(f))
}
