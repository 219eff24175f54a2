package p2p

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// subKey names one subscription: a table (by id) from a peer.
type subKey struct {
	peer    peer.ID
	table   string
	tableID string
}

// replicate keeps one subscription per (connected peer, table) where both
// hold the table: this node by its open copies, the peer by the table's
// scope in this node's catalog. It re-decides whenever a connection comes or
// goes and whenever the catalog changes.
func (n *Node) replicate() {
	defer n.wg.Done()
	running := map[subKey]context.CancelFunc{}
	var published []string // the draining tables in our membership record
	defer func() {
		for _, cancel := range running {
			cancel()
		}
	}()
	for {
		n.mu.Lock()
		peersChanged := n.changed
		type ready struct {
			id   peer.ID
			name string
		}
		var peers []ready
		for id, p := range n.peers {
			if p.connected && p.measured {
				peers = append(peers, ready{id, p.name})
			}
		}
		n.mu.Unlock()
		catalogChanged := n.store.Changed()
		want := map[subKey]bool{}
		// A node that never synced the system tables gets them first, so
		// that identities and ACLs are checked locally from the start.
		systemReady := n.systemSynced()
		for _, info := range n.store.HeldInfo() {
			if !info.System() && !systemReady {
				continue
			}
			for _, p := range peers {
				if scope.Follows(info, p.name, n.draining(p.name)) {
					want[subKey{p.id, info.Name, info.ID}] = true
				}
			}
		}
		// Publish this node's own hand-offs, so that holders come and fetch.
		if draining := tableIDs(n.store.Draining()); !slices.Equal(draining, published) {
			if err := n.writeOwnRecord(n.ctx); err != nil {
				n.log.Warn("mesh: membership record", "err", err)
			} else {
				published = draining
			}
		}
		var tick, recheck <-chan time.Time
		if len(published) > 0 {
			// A copy being handed off is deleted once a holder acknowledged
			// all of it: look again every second.
			tick = time.After(time.Second)
		}
		if !systemReady && len(peers) > 0 {
			recheck = time.After(100 * time.Millisecond)
		}
		for k, cancel := range running {
			if !want[k] {
				cancel()
				delete(running, k)
			}
		}
		for k := range want {
			if _, ok := running[k]; !ok {
				ctx, cancel := context.WithCancel(n.ctx)
				running[k] = cancel
				n.wg.Add(1)
				go n.subscribe(ctx, k)
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-peersChanged:
		case <-catalogChanged:
			n.closeRevoked()
		case <-tick:
			if err := n.store.Reconcile(); err != nil {
				n.log.Warn("placement", "err", err)
			}
		case <-recheck:
		}
	}
}

// systemSynced reports whether every system table has followed some peer's
// log at least once (has a cursor).
func (n *Node) systemSynced() bool {
	for _, name := range scope.SystemTables {
		t, err := n.store.Table(name)
		if err != nil || !t.HasCursor() {
			return false
		}
	}
	return true
}

// draining returns the tables (ids) a peer says it is handing off, from its
// membership record.
func (n *Node) draining(peer string) []string {
	m, _ := n.member(peer)
	return m.Draining
}

func tableIDs(ts []scope.TableInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

// subscribe follows one table of one peer until ctx ends, resuming from
// the stored cursor after every interruption, with capped backoff.
func (n *Node) subscribe(ctx context.Context, k subKey) {
	defer n.wg.Done()
	b := newBackoff()
	for ctx.Err() == nil {
		progressed, err := n.subscribeOnce(ctx, k)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			b.Reset()
		}
		sleep := b.NextBackOff()
		n.log.Warn("repl: subscription interrupted", "table", k.table, "peer", n.peerName(k.peer), "err", err, "retry_in", sleep)
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		}
	}
}

// subscribeOnce runs one replication stream. It reports whether anything
// was applied, so that a working stream that breaks is retried at once.
func (n *Node) subscribeOnce(ctx context.Context, k subKey) (progressed bool, err error) {
	info, err := n.store.Lookup(k.table, k.tableID)
	if err != nil {
		return false, err
	}
	t, ok := n.store.Copy(info)
	if !ok || !n.store.Holds(info) {
		return false, fmt.Errorf("%w: %s", store.ErrNotHeld, k.table)
	}
	peerName := n.peerName(k.peer)
	var drainOnly *scope.TableInfo
	if !scope.Holds(info, peerName) {
		drainOnly = &info
	}
	s, err := n.host.NewStream(ctx, k.peer, ReplID)
	if err != nil {
		return false, err
	}
	defer s.Close()
	stop := context.AfterFunc(ctx, func() { s.Reset() })
	defer stop()
	cur, _ := t.Cursor(peerName)
	req := replRequest{Version: replVersion, Table: k.table, TableID: k.tableID, LogID: cur.LogID, From: cur.Offset + 1}
	if err := WriteFrame(s, mustJSON(req)); err != nil {
		return false, err
	}
	n.log.Info("repl: subscribed", "table", k.table, "peer", peerName, "log_id", cur.LogID, "from", req.From)
	var logID string
	var next, snapOffset uint64
	ack := &acker{n: n, s: s, t: t, peerName: peerName}
	defer ack.stop()
	for {
		b, err := ReadFrame(s, maxReplFrame)
		if err != nil && !errors.Is(err, ErrFrameTooLarge) {
			return progressed, err
		}
		var f replFrame
		if err == nil { // a length over the limit is a malformed frame too
			f, err = decodeFrame(b)
		}
		if err != nil {
			n.log.Error("repl: malformed frame: closing the stream, nothing of it applied", "table", k.table, "peer", peerName, "err", err)
			s.Reset()
			return progressed, err
		}
		switch f.Type {
		case frameError:
			return progressed, fmt.Errorf("the publisher says: %s", f.Message)
		case frameStart:
			if f.LogID != cur.LogID || f.Offset != req.From {
				return progressed, fmt.Errorf("publisher resumed at %s/%d, not at our cursor %s/%d", f.LogID, f.Offset, cur.LogID, req.From)
			}
			logID, next = f.LogID, f.Offset
			// Tell the publisher where we are, even if nothing new comes.
			if err := ack.advance(logID, next-1); err != nil {
				return progressed, err
			}
		case frameSnapBegin:
			logID, snapOffset = f.LogID, f.Offset
			n.log.Info("repl: receiving a snapshot", "table", k.table, "peer", peerName, "as_of", snapOffset)
		case frameSnapRecs:
			if logID == "" || next != 0 {
				return progressed, errors.New("snapshot records outside a snapshot")
			}
			if err := n.apply(ctx, t, f, drainOnly); err != nil {
				return progressed, err
			}
			progressed = true
		case frameSnapEnd:
			if logID == "" || next != 0 {
				return progressed, errors.New("snapshot end outside a snapshot")
			}
			if err := ack.advance(logID, snapOffset); err != nil {
				return progressed, err
			}
			next = snapOffset + 1
		case frameBatch:
			if next == 0 || f.Offset != next {
				return progressed, fmt.Errorf("batch at offset %d, expected %d", f.Offset, next)
			}
			if err := n.apply(ctx, t, f, drainOnly); err != nil {
				return progressed, err
			}
			progressed = true
			next = f.Offset + uint64(len(f.Entries))
			if err := ack.advance(logID, next-1); err != nil {
				return progressed, err
			}
		default:
			return progressed, fmt.Errorf("unexpected frame %q", f.Type)
		}
	}
}

// apply adopts a frame's entries (LWW); a catalog change is acted on at once.
func (n *Node) apply(ctx context.Context, t *tables.Table, f replFrame, drainOnly *scope.TableInfo) error {
	entries := f.Entries
	if drainOnly != nil { // a peer followed while it hands its copy off
		entries = slices.DeleteFunc(slices.Clone(entries), func(e wal.Entry) bool { return !scope.FromDraining(*drainOnly, e.Version.HLC) })
		if k := len(f.Entries) - len(entries); k > 0 {
			n.log.Warn("repl: refused entries a draining peer made after it was taken out of the scope", "table", t.Name(), "refused", k)
		}
	}
	adopted, err := t.Apply(ctx, entries)
	if !tables.OnlyRefused(err) { // refused entries are skipped (and logged)
		return err
	}
	if adopted > 0 && t.Name() == scope.MetaTable {
		if err := n.store.Reconcile(); err != nil {
			n.log.Error("repl: applying the catalog", "err", err)
		}
	}
	return nil
}

// acker stores a subscription's cursor and acknowledges to the publisher
// what the saved cursor covers. A cursor not yet saved (saves are at most
// every 100 ms) is saved and acknowledged shortly after, even if no other
// batch comes: a publisher handing its copy off waits for that.
type acker struct {
	n        *Node
	s        network.Stream
	t        *tables.Table
	peerName string

	mu      sync.Mutex // serialises ack frames and guards the fields below
	logID   string
	acked   uint64
	pending *time.Timer
}

func (a *acker) advance(logID string, offset uint64) error {
	saved, err := a.t.SetCursor(a.peerName, tables.Cursor{LogID: logID, Offset: offset})
	if err != nil {
		a.n.log.Warn("repl: saving cursor", "table", a.t.Name(), "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logID = logID
	if saved.Offset < offset && a.pending == nil {
		a.pending = time.AfterFunc(2*cursorFlushDelay, a.flush)
	}
	return a.sendLocked(saved)
}

func (a *acker) flush() {
	saved, err := a.t.SaveCursors(a.peerName)
	if err != nil {
		a.n.log.Warn("repl: saving cursor", "table", a.t.Name(), "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.pending = nil
	a.sendLocked(saved)
}

func (a *acker) sendLocked(saved tables.Cursor) error {
	if saved.LogID != a.logID || saved.Offset <= a.acked {
		return nil
	}
	a.acked = saved.Offset
	return a.n.send(a.s, &replFrame{Type: frameAck, Offset: saved.Offset})
}

func (a *acker) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pending != nil {
		a.pending.Stop()
	}
}

// cursorFlushDelay is how long a saved cursor may stay behind.
const cursorFlushDelay = 100 * time.Millisecond
