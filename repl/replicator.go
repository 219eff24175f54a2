// Package repl owns replication: the stream protocol (/cortex/repl/1, frame.go)
// by which a node follows a peer's log of a table from a cursor, the
// publisher that serves this node's copies, and the subscriber that follows
// its peers' (a state machine stepped with frames, subscription.go). Which
// subscriptions should exist and how a cursor is answered are pure
// functions (plan.go); the Replicator does the I/O over a mesh.Transport.
package repl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Replicator keeps every copy this node holds following the peers that
// hold it too, and serves this node's copies to them.
type Replicator struct {
	mesh  mesh.Transport
	store *store.Store
	log   *slog.Logger

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	running map[string]running // by Sub.key
	stats   map[string]Stats   // by table name
	claims  map[string]*claims // by copy: its directory and log id
	closed  bool               // Close was called: no stream is served any more

	hold atomic.Int64 // how long a relay is held (relayHold), in ns
}

// Stats counts, per table since the start, what replication did: the
// subscriptions this node opened (as a subscriber) and the subscribers it
// refused (as a publisher), the snapshots it sent to subscribers in full and
// those it received in full, and the log entries it sent to subscribers
// (in all and per subscriber) and skipped because they claimed them.
type Stats struct {
	Subscribed        int            `json:"subscribed"`
	Refused           int            `json:"refused"`
	SnapshotsSent     int            `json:"snapshots_sent"`
	SnapshotsReceived int            `json:"snapshots_received"`
	EntriesSent       int            `json:"entries_sent"`
	EntriesSkipped    int            `json:"entries_skipped"`
	SentTo            map[string]int `json:"sent_to,omitempty"`
}

// count adds to a table's stats.
func (r *Replicator) count(table string, add Stats) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats[table]
	st.Subscribed += add.Subscribed
	st.Refused += add.Refused
	st.SnapshotsSent += add.SnapshotsSent
	st.SnapshotsReceived += add.SnapshotsReceived
	st.EntriesSent += add.EntriesSent
	st.EntriesSkipped += add.EntriesSkipped
	for p, n := range add.SentTo {
		if st.SentTo == nil {
			st.SentTo = map[string]int{}
		}
		st.SentTo[p] += n
	}
	r.stats[table] = st
}

// countSent counts log entries sent to, and skipped for, a subscriber.
func (r *Replicator) countSent(table, peer string, sent, skipped int) {
	if sent == 0 && skipped == 0 {
		return
	}
	r.count(table, Stats{EntriesSent: sent, EntriesSkipped: skipped, SentTo: map[string]int{peer: sent}})
}

// Stats returns the counts of every table with any.
func (r *Replicator) Stats() map[string]Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]Stats, len(r.stats))
	for k, v := range r.stats {
		v.SentTo = maps.Clone(v.SentTo)
		out[k] = v
	}
	return out
}

// claimsOf returns the claims of a copy (made empty on first use).
func (r *Replicator) claimsOf(t *tables.Table) *claims {
	r.mu.Lock()
	defer r.mu.Unlock()
	k := t.Dir() + "\x00" + t.LogID()
	c, ok := r.claims[k]
	if !ok {
		c = newClaims(r.mesh.Name())
		r.claims[k] = c
	}
	return c
}

type running struct {
	sub    Sub
	cancel context.CancelFunc
	up     *atomic.Bool // a stream is open and the publisher answered
}

// SubState is a subscription that should run, and whether its stream is up
// now (open, and the publisher answered it) or not (being opened, or
// waiting to retry after an interruption).
type SubState struct {
	Sub
	Up bool
}

// SubscriptionStates lists the subscriptions running now and whether each
// one's stream is up.
func (r *Replicator) SubscriptionStates() []SubState {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]SubState, 0, len(r.running))
	for _, s := range r.running {
		out = append(out, SubState{s.sub, s.up.Load()})
	}
	return out
}

// Start serves the replication protocol on t and starts following peers.
func Start(t mesh.Transport, st *store.Store, log *slog.Logger) *Replicator {
	if log == nil {
		log = slog.Default()
	}
	r := &Replicator{mesh: t, store: st, log: log, running: map[string]running{}, stats: map[string]Stats{}, claims: map[string]*claims{}}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.hold.Store(int64(relayHold))
	t.Handle(ID, r.serve)
	r.wg.Add(1)
	go r.loop()
	return r
}

// Close stops every subscription and every stream served, and waits for
// them.
func (r *Replicator) Close() {
	r.mu.Lock()
	r.closed = true // no wg.Add after this: Wait may begin
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// enter counts a served stream in, unless the Replicator is closed.
func (r *Replicator) enter() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	return true
}

// Subscriptions lists the subscriptions running now.
func (r *Replicator) Subscriptions() []Sub {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Sub, 0, len(r.running))
	for _, s := range r.running {
		out = append(out, s.sub)
	}
	return out
}

// loop keeps the running subscriptions equal to Want, deciding again
// whenever the ready peers or the catalog change.
func (r *Replicator) loop() {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		for _, s := range r.running {
			s.cancel()
		}
		r.mu.Unlock()
	}()
	for {
		peersChanged, catalogChanged := r.mesh.Changed(), r.store.Changed()
		ready := r.mesh.Ready()
		peers := make([]Peer, len(ready))
		for i, name := range ready {
			m, _ := r.store.Member(name)
			peers[i] = Peer{Name: name, Draining: m.Draining}
		}
		systemReady := r.systemSynced()
		want := map[string]Sub{}
		for _, s := range Want(r.store.HeldInfo(), peers, systemReady) {
			want[s.key()] = s
		}
		r.mu.Lock()
		for k, s := range r.running {
			if _, ok := want[k]; !ok {
				s.cancel()
				delete(r.running, k)
			}
		}
		for k, s := range want {
			if _, ok := r.running[k]; !ok {
				ctx, cancel := context.WithCancel(r.ctx)
				up := new(atomic.Bool)
				r.running[k] = running{s, cancel, up}
				r.wg.Add(1)
				go r.subscribe(ctx, s, up)
			}
		}
		r.mu.Unlock()
		var tick, recheck <-chan time.Time
		if len(r.store.Draining()) > 0 {
			// A copy being handed off is deleted once a holder acknowledged
			// all of it: look again every second.
			tick = time.After(time.Second)
		}
		if !systemReady && len(peers) > 0 {
			recheck = time.After(100 * time.Millisecond)
		}
		select {
		case <-r.ctx.Done():
			return
		case <-peersChanged:
		case <-catalogChanged:
		case <-tick:
			if err := r.store.Reconcile(); err != nil {
				r.log.Warn("placement", "err", err)
			}
		case <-recheck:
		}
	}
}

// systemSynced reports whether every system table has followed some peer's
// log at least once (has a cursor).
func (r *Replicator) systemSynced() bool {
	for _, name := range scope.SystemTables {
		t, err := r.store.Table(name)
		if err != nil || !t.HasCursor() {
			return false
		}
	}
	return true
}

// subscribe follows one table of one peer until ctx ends, resuming from
// the stored cursor after every interruption, with capped backoff.
func (r *Replicator) subscribe(ctx context.Context, s Sub, up *atomic.Bool) {
	defer r.wg.Done()
	b := mesh.NewBackoff()
	for ctx.Err() == nil {
		progressed, err := r.subscribeOnce(ctx, s, up)
		if ctx.Err() != nil {
			return
		}
		if progressed {
			b.Reset()
		}
		sleep := b.NextBackOff()
		r.log.Warn("repl: subscription interrupted", "table", s.Table.Name, "peer", s.Peer, "err", err, "retry_in", sleep)
		select {
		case <-ctx.Done():
			return
		case <-time.After(sleep):
		}
	}
}

// subscribeOnce runs one replication stream: it steps the subscription with
// each frame and does what each step says. It reports whether anything was
// applied, so that a working stream that breaks is retried at once.
func (r *Replicator) subscribeOnce(ctx context.Context, s Sub, up *atomic.Bool) (progressed bool, err error) {
	info, err := r.store.Lookup(s.Table.Name, s.Table.ID)
	if err != nil {
		return false, err
	}
	t, ok := r.store.Copy(info)
	if !ok || !r.store.Holds(info) {
		return false, fmt.Errorf("%w: %s", store.ErrNotHeld, info.Name)
	}
	st, err := r.mesh.Open(ctx, s.Peer, ID)
	if err != nil {
		return false, err
	}
	defer st.Close()
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	defer stop()
	// A copy that forgets its cursors (it is rebuilt) follows again from a
	// snapshot: end this stream.
	resync := t.Resync()
	rctx, rcancel := context.WithCancel(ctx)
	defer rcancel()
	go func() {
		select {
		case <-resync:
			st.Reset()
		case <-rctx.Done():
		}
	}()
	cur, _ := t.Cursor(s.Peer)
	cl := r.claimsOf(t)
	sub, req := newSubscription(info.Name, info.ID, cur, cl.Vector())
	if err := mesh.WriteFrame(st, mustJSON(req)); err != nil {
		return false, err
	}
	r.log.Info("repl: subscribed", "table", info.Name, "peer", s.Peer, "log_id", cur.LogID, "from", req.From)
	r.count(info.Name, Stats{Subscribed: 1})
	ack := &acker{r: r, s: st, t: t, peer: s.Peer}
	defer ack.stop()
	defer up.Store(false)
	var snapGen uint64 // the copy's rebuild generation when the snapshot began
	var claimsSent sync.WaitGroup
	defer claimsSent.Wait()
	defer rcancel() // before the wait: ends the claims sender
	live := false
	defer func() {
		if live {
			cl.Live(s.Peer, false)
		}
	}()
	for {
		b, err := mesh.ReadFrame(st, maxReplFrame)
		if err != nil && !errors.Is(err, mesh.ErrFrameTooLarge) {
			return progressed, err
		}
		var f frame
		if err == nil { // a length over the limit is a malformed frame too
			f, err = decodeFrame(b)
		}
		if err != nil {
			r.log.Error("repl: malformed frame: closing the stream, nothing of it applied", "table", info.Name, "peer", s.Peer, "err", err)
			st.Reset()
			return progressed, err
		}
		if f.Type == frameSnapBegin {
			r.log.Info("repl: receiving a snapshot", "table", info.Name, "peer", s.Peer, "as_of", f.Offset)
			snapGen = t.RebuildGeneration()
		}
		ready, err := sub.Step(f)
		if err != nil {
			return progressed, err
		}
		up.Store(true)
		if f.Type == frameRelay {
			claimsSent.Add(1)
			go func() {
				defer claimsSent.Done()
				ack.sendClaims(rctx, cl, req.Have)
			}()
		}
		if !live && (f.Type == frameStart || f.Type == frameSnapBegin) {
			live = true
			cl.Live(s.Peer, true)
		}
		if len(ready.Apply) > 0 {
			refused, err := r.apply(ctx, t, s, ready)
			if err != nil {
				return progressed, err
			}
			switch {
			case refused:
				cl.Refused(s.Peer)
			case !ready.Snapshot:
				cl.Applied(s.Peer, ready.Apply)
			}
			progressed = true
		}
		if ready.Cursor != nil {
			if err := ack.advance(*ready.Cursor); err != nil {
				return progressed, err
			}
		}
		if f.Type == frameSnapEnd {
			r.count(info.Name, Stats{SnapshotsReceived: 1})
		}
		if ready.SnapshotDone {
			still, err := t.SnapshotDone(ready.Floor, snapGen)
			if err != nil {
				return progressed, err
			}
			if still {
				// This copy is rebuilding and the publisher is not yet at
				// its floor: ask it again later, for a snapshot that is.
				t.ForgetCursor(s.Peer)
				return false, fmt.Errorf("the copy is rebuilding and %s is not yet complete below its floor: asking for a snapshot again", s.Peer)
			}
		}
	}
}

// apply adopts entries (LWW); a catalog change is acted on at once. The
// table's record is read again for every batch: a peer the scope no longer
// selects (it hands its copy off) gives only what it wrote before the
// change, even on a stream that began while it was a holder. It reports
// whether any entry was refused (for good: the stream goes on past it).
func (r *Replicator) apply(ctx context.Context, t *tables.Table, s Sub, ready Ready) (refused bool, err error) {
	entries := ready.Apply
	info, err := r.store.Lookup(s.Table.Name, s.Table.ID)
	if err != nil {
		return false, err
	}
	if !scope.Holds(info, s.Peer) {
		n := len(entries)
		entries = slices.DeleteFunc(slices.Clone(entries), func(e wal.Entry) bool { return !scope.FromDraining(info, e.Version.HLC) })
		if k := n - len(entries); k > 0 {
			refused = true
			r.log.Warn("repl: refused entries a draining peer made after it was taken out of the scope", "table", t.Name(), "refused", k)
		}
	}
	var adopted int
	if ready.Snapshot {
		adopted, err = t.ApplySnapshot(ctx, entries, ready.Floor)
	} else {
		adopted, err = t.Apply(ctx, entries)
	}
	if !tables.OnlyRefused(err) { // entries refused for good are skipped (and logged)
		return refused, err
	}
	refused = refused || err != nil
	if adopted > 0 && t.Name() == scope.MetaTable {
		if err := r.store.Reconcile(); err != nil {
			r.log.Error("repl: applying the catalog", "err", err)
		}
	}
	return refused, nil
}

// acker stores a subscription's cursor and acknowledges to the publisher
// what the saved cursor covers. A cursor not yet saved (saves are at most
// every 100 ms) is saved and acknowledged shortly after, even if no other
// batch comes: a publisher handing its copy off waits for that.
type acker struct {
	r    *Replicator
	s    mesh.Stream
	t    *tables.Table
	peer string

	mu      sync.Mutex // serialises ack frames and guards the fields below
	logID   string
	acked   uint64
	pending *time.Timer
}

func (a *acker) advance(c tables.Cursor) error {
	saved, err := a.t.SetCursor(a.peer, c)
	if err != nil {
		a.r.log.Warn("repl: saving cursor", "table", a.t.Name(), "err", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.logID = c.LogID
	if saved.Offset < c.Offset && a.pending == nil {
		a.pending = time.AfterFunc(2*cursorFlushDelay, a.flush)
	}
	return a.sendLocked(saved)
}

func (a *acker) flush() {
	saved, err := a.t.SaveCursors(a.peer)
	if err != nil {
		a.r.log.Warn("repl: saving cursor", "table", a.t.Name(), "err", err)
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
	return send(a.s, &frame{Type: frameAck, Offset: saved.Offset})
}

// claimsEvery is the shortest time between two claims frames of a
// stream: claims change with every batch applied from any peer, and one
// frame then says what a burst of them did.
const claimsEvery = 10 * time.Millisecond

// sendClaims sends the copy's claims to the publisher whenever they change
// (at most every claimsEvery), until ctx ends or the stream fails. sent is
// what the request already said.
func (a *acker) sendClaims(ctx context.Context, cl *claims, sent map[string]Claim) {
	for {
		changed := cl.Changed()
		if v := cl.Vector(); !maps.Equal(v, sent) {
			a.mu.Lock()
			err := send(a.s, &frame{Type: frameHave, Have: v})
			a.mu.Unlock()
			if err != nil {
				return
			}
			sent = v
		}
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		pause := time.NewTimer(claimsEvery)
		select {
		case <-ctx.Done():
			pause.Stop()
			return
		case <-pause.C:
		}
	}
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
