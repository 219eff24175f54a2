package tables

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// request is one call waiting on the writer: a local write (versions to be
// stamped) or a batch of remote entries (versions kept, LWW decides).
type request struct {
	entries []wal.Entry
	remote  bool
	reply   chan reply
	// snapshot: the entries are a snapshot's records from a publisher
	// complete below pubFloor (floor.go).
	snapshot bool
	pubFloor uint64
	purge    *purgeReq // a purge (Purge, Rebuild): no entries
}

type reply struct {
	version wal.Version // local writes: the version stamped
	adopted int         // remote batches: how many entries were newer
	purged  int         // purges: how many records were dropped
	err     error
}

// A batch closes at this many entries or payload bytes.
const (
	maxBatchEntries = 4096
	maxBatchBytes   = 8 << 20
)

// Put sets key to value and returns the version of the write once it is in
// the log (on disk unless NoSync) and visible to readers.
func (t *Table) Put(ctx context.Context, key, value []byte) (wal.Version, error) {
	if err := t.opts.Limits.Check(key, value); err != nil {
		return wal.Version{}, fmt.Errorf("table %s: put: %w", t.opts.Name, err)
	}
	r, err := t.do(ctx, &request{entries: []wal.Entry{{Op: wal.OpPut, Key: key, Value: value}}})
	return r.version, err
}

// Delete replaces key with a tombstone (whether or not it held a value).
func (t *Table) Delete(ctx context.Context, key []byte) (wal.Version, error) {
	if err := t.opts.Limits.Check(key, nil); err != nil {
		return wal.Version{}, fmt.Errorf("table %s: delete: %w", t.opts.Name, err)
	}
	r, err := t.do(ctx, &request{entries: []wal.Entry{{Op: wal.OpDelete, Key: key}}})
	return r.version, err
}

// Apply adopts the entries of a peer that are newer than what their keys
// hold, appends those (with their original versions) to this copy's log, and
// returns how many it adopted. Applying an entry twice changes nothing.
// Entries that are not admitted (see admit) are skipped, counted in Stats
// and logged, and the others are applied: the error is then a *RefusedError
// (and the caller may go on), unless applying failed too.
func (t *Table) Apply(ctx context.Context, entries []wal.Entry) (int, error) {
	return t.apply(ctx, entries, false, 0)
}

// ApplySnapshot is Apply for the records of a snapshot from a publisher
// complete below publisherFloor (its Table.CompleteBelow): records older
// than this copy's floor are adopted only if publisherFloor covers it.
func (t *Table) ApplySnapshot(ctx context.Context, entries []wal.Entry, publisherFloor uint64) (int, error) {
	return t.apply(ctx, entries, true, publisherFloor)
}

func (t *Table) apply(ctx context.Context, entries []wal.Entry, snapshot bool, pubFloor uint64) (int, error) {
	kept, refused := entries, (*RefusedError)(nil)
	for i := range entries {
		if err := t.admit(&entries[i]); err != nil {
			if refused == nil { // the first refusal: keep what came before it
				kept, refused = append([]wal.Entry(nil), entries[:i]...), &RefusedError{Table: t.opts.Name, First: err}
			}
			refused.N++
			refused.Retry = refused.Retry || errors.Is(err, ErrFuture)
			t.refusals.add(t.opts.Logger, t.opts.Name, &entries[i], err)
		} else if refused != nil {
			kept = append(kept, entries[i])
		}
	}
	if len(kept) == 0 {
		return 0, refused.orNil()
	}
	r, err := t.do(ctx, &request{entries: kept, remote: true, snapshot: snapshot, pubFloor: pubFloor})
	if err == nil {
		err = refused.orNil()
	}
	return r.adopted, err
}

// admit checks a remote entry before it may be applied: it must be well
// formed, within this node's key and value limits, not from further in the
// future than MaxFuture, and pass Options.Admit.
func (t *Table) admit(e *wal.Entry) error {
	if err := e.Check(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if err := t.opts.Limits.Check(e.Key, e.Value); err != nil {
		return err
	}
	if h := t.opts.Clock.Horizon(); e.Version.HLC > h {
		at, _ := HLCTime(e.Version.HLC)
		return fmt.Errorf("%w: timestamp %s is more than %s ahead of this node's clock", ErrFuture, at.Format(time.RFC3339), MaxFuture+MaxDrift)
	}
	if t.opts.Admit != nil {
		return t.opts.Admit(e)
	}
	return nil
}

// do hands a request to the writer and waits for its answer. If ctx ends
// first the write may still happen.
func (t *Table) do(ctx context.Context, r *request) (reply, error) {
	r.reply = make(chan reply, 1)
	t.closeMu.RLock()
	if t.closed {
		t.closeMu.RUnlock()
		return reply{}, fmt.Errorf("table %s: %w", t.opts.Name, ErrClosed)
	}
	select {
	case t.reqs <- r:
	case <-ctx.Done():
		t.closeMu.RUnlock()
		return reply{}, ctx.Err()
	}
	t.closeMu.RUnlock()
	select {
	case rep := <-r.reply:
		return rep, rep.err
	case <-ctx.Done():
		return reply{}, ctx.Err()
	}
}

// Writes flow through three goroutines, so that the disk and the CPU work
// at the same time: the writer gathers the waiting requests, stamps and
// decides them and writes the batch to the log; the syncer makes every batch
// written so far durable with one fsync; the applier applies each durable
// batch to the view and only then answers its callers.

// batch is one group of requests on its way through the pipeline.
type batch struct {
	seq     uint64
	reqs    []*request
	replies []reply
	entries []wal.Entry // adopted, in log order
	recs    []string    // their view encodings
	first   uint64      // log offset of entries[0]
	purge   []purgeAt   // purges, each after the entries decided before it
	err     error
}

// purgeAt is a purge in a batch: it runs after the batch's first n entries.
type purgeAt struct {
	req purgeReq
	n   int
	i   int // its request
}

// decided is the newest version the writer adopted for a key, and the batch
// that carries it: until that batch is applied the view does not show it.
type decided struct {
	version wal.Version
	seq     uint64
	sum     uint64 // contentSum of its view encoding, for the rare tie of equal versions
}

// The writer forgets applied decisions once it remembers this many.
const maxPending = 1 << 16

func (t *Table) writer() {
	defer close(t.syncCh)
	pending := map[string]decided{}
	var seq, gen uint64
	sinceCk := 0
	for {
		reqs, more := t.gather()
		if len(reqs) > 0 {
			seq++
			b := &batch{seq: seq, reqs: reqs, replies: make([]reply, len(reqs))}
			// Under logMu: the log is not replaced (fault.go) between the
			// decision and the write, nor while the batch is in flight.
			t.logMu.RLock()
			if b.err = t.failure(); b.err == nil {
				if g := t.gen.Load(); g != gen {
					// A reopened log: decisions of failed batches were never
					// applied.
					clear(pending)
					gen = g
				}
				if b.err = t.decide(b, pending); b.err == nil && len(b.entries) > 0 {
					b.first, b.err = t.log.Write(b.entries)
				}
				if b.err != nil {
					b.err = t.fail(b.err)
				}
			}
			t.inflight.Add(1)
			t.logMu.RUnlock()
			t.syncCh <- b
			if sinceCk += len(b.entries); t.opts.CheckpointEvery > 0 && sinceCk >= t.opts.CheckpointEvery {
				sinceCk = 0
				select {
				case t.ckptKick <- struct{}{}:
				default:
				}
			}
			if len(pending) > maxPending {
				applied := t.appliedSeq.Load()
				for k, d := range pending {
					if d.seq <= applied {
						delete(pending, k)
					}
				}
			}
		}
		if !more {
			return
		}
	}
}

// gather waits for a request and takes every other one waiting, up to the
// batch limits. After Close it returns what is left and more == false.
func (t *Table) gather() (reqs []*request, more bool) {
	select {
	case r := <-t.reqs:
		reqs = append(reqs, r)
	case <-t.quit:
		// Close waited for every sender: drain what is queued, then stop.
		for {
			select {
			case r := <-t.reqs:
				reqs = append(reqs, r)
			default:
				return reqs, false
			}
		}
	}
	n, size := len(reqs[0].entries), requestSize(reqs[0])
	for n < maxBatchEntries && size < maxBatchBytes {
		select {
		case r := <-t.reqs:
			reqs = append(reqs, r)
			n += len(r.entries)
			size += requestSize(r)
		default:
			return reqs, true
		}
	}
	return reqs, true
}

func requestSize(r *request) int {
	n := 0
	for i := range r.entries {
		n += len(r.entries[i].Key) + len(r.entries[i].Value)
	}
	return n
}

// decide stamps local writes with new versions and keeps the remote entries
// that are newer than what their keys hold, in the view or in batches not
// yet applied.
func (t *Table) decide(b *batch, pending map[string]decided) error {
	return t.db.View(func(tx *buntdb.Tx) error {
		for i, r := range b.reqs {
			if r.purge != nil {
				// Decisions after this one refuse what is older than the
				// new floor; the applier drops the view's old records
				// after the entries decided before it.
				t.floor.Store(max(t.floor.Load(), r.purge.tomb))
				b.purge = append(b.purge, purgeAt{req: *r.purge, n: len(b.entries), i: i})
				// What was decided before is applied, then dropped if older
				// than a rebuild's floor: it no longer makes the same
				// version a duplicate (a rebuilt copy takes it again from
				// a snapshot).
				for k, d := range pending {
					if d.version.HLC < r.purge.all {
						delete(pending, k)
					}
				}
				continue
			}
			for _, e := range r.entries {
				if !r.remote && t.fenced.Load() {
					b.replies[i].err = fmt.Errorf("table %s: %w", t.opts.Name, ErrFenced)
					break
				}
				if !r.remote {
					e.Version = wal.Version{HLC: t.opts.Clock.Now(), Origin: t.opts.Node}
					b.replies[i].version = e.Version
				} else {
					if belowFloor(e.Version.HLC, t.floor.Load(), r.snapshot, r.pubFloor) {
						t.below.Add(1)
						continue
					}
					t.opts.Clock.ObserveRemote(e.Version.HLC)
					d, ok := pending[string(e.Key)]
					cur, curSum := d.version, d.sum
					if !ok {
						if s, err := tx.Get(viewKey(e.Key)); err == nil {
							cur, ok = recordVersion(s)
							curSum = contentSum(s)
						} else if !errors.Is(err, buntdb.ErrNotFound) {
							return err
						}
					}
					if !AdoptRecord(e.Version, cur, ok, func() uint64 { return contentSum(encodeRecord(&e)) }, curSum) {
						continue
					}
					b.replies[i].adopted++
				}
				b.entries = append(b.entries, e)
				last := &b.entries[len(b.entries)-1] // e itself must not escape
				if !r.remote && t.opts.Sign != nil {
					last.Proof = t.opts.Sign(last) // signed as it is in the log
				}
				rec := encodeRecord(last)
				b.recs = append(b.recs, rec)
				pending[string(e.Key)] = decided{version: e.Version, seq: b.seq, sum: contentSum(rec)}
			}
		}
		return nil
	})
}

// syncer makes written batches durable: one fsync for all that are waiting.
// Callers answered by one fsync come back at slightly different times; so
// that the first of them does not take the next fsync alone, the syncer
// waits up to commitDelay for as many callers as the previous fsync served.
func (t *Table) syncer() {
	defer close(t.applyCh)
	var group []*batch
	lastCallers := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for b := range t.syncCh {
		group = append(group[:0], b)
		callers := len(b.reqs)
		waiting := false
		add := func(b *batch, ok bool) bool {
			if ok {
				group = append(group, b)
				callers += len(b.reqs)
			}
			return ok
		}
	gather:
		for {
			var more <-chan time.Time
			if callers < lastCallers && !t.opts.NoSync {
				if !waiting {
					timer.Reset(commitDelay)
					waiting = true
				}
				more = timer.C
			}
			select { // take what is there first
			case b, ok := <-t.syncCh:
				if !add(b, ok) {
					break gather
				}
				continue
			default:
			}
			if more == nil {
				break
			}
			select {
			case b, ok := <-t.syncCh:
				if !add(b, ok) {
					break gather
				}
			case <-more:
				waiting = false
				break gather
			}
		}
		if waiting && !timer.Stop() {
			<-timer.C
		}
		lastCallers = callers
		if !t.opts.NoSync && t.failure() == nil {
			entries := 0
			for _, b := range group {
				if b.err == nil {
					entries += len(b.entries)
				}
			}
			start := time.Now()
			if err := t.current().Sync(); err != nil {
				t.fail(err)
			} else if entries > 0 && t.opts.Observer != nil { // no entries: Sync had nothing to do
				t.opts.Observer.Synced(t.opts.Name, time.Since(start), entries)
			}
		}
		for _, b := range group {
			if b.err == nil {
				b.err = t.failure()
			}
			t.applyCh <- b
		}
	}
}

// commitDelay bounds how long a sync waits for more callers (see syncer).
const commitDelay = 200 * time.Microsecond

// applier applies durable batches to the view and answers their callers.
func (t *Table) applier() {
	defer close(t.done)
	for b := range t.applyCh {
		if b.err == nil && (len(b.entries) > 0 || len(b.purge) > 0) {
			err := t.db.Update(func(tx *buntdb.Tx) error {
				done := 0
				for _, p := range b.purge {
					for ; done < p.n; done++ {
						if err := t.setRec(tx, b.entries[done].Key, b.recs[done], b.entries[done].Op); err != nil {
							return err
						}
					}
					n, err := t.purgeView(tx, p.req)
					if err != nil {
						return err
					}
					b.replies[p.i].purged = n
				}
				for ; done < len(b.entries); done++ {
					if err := t.setRec(tx, b.entries[done].Key, b.recs[done], b.entries[done].Op); err != nil {
						return err
					}
				}
				if len(b.entries) > 0 {
					t.applied = b.first + uint64(len(b.entries)) - 1
				}
				return nil
			})
			if err != nil {
				b.err = t.fail(err)
			}
		}
		t.appliedSeq.Store(b.seq)
		for i, r := range b.reqs {
			if b.err != nil {
				b.replies[i] = reply{err: fmt.Errorf("table %s: write: %w", t.opts.Name, b.err)}
			}
			t.count(r, b.replies[i])
			r.reply <- b.replies[i]
		}
		t.inflight.Add(-1)
	}
}

// count adds a request answered without error to the copy's counters.
func (t *Table) count(r *request, rep reply) {
	switch {
	case rep.err != nil:
	case r.remote:
		t.counts.adopted.Add(int64(rep.adopted))
		t.counts.rejected.Add(int64(len(r.entries) - rep.adopted))
	case len(r.entries) == 1 && r.entries[0].Op == wal.OpDelete:
		t.counts.deletes.Add(1)
	default:
		t.counts.puts.Add(int64(len(r.entries)))
	}
}

// Fence stops the copy taking local writes (they fail with ErrFenced; what
// peers send is still applied) and returns a timestamp later than the
// version of every local write it took: a copy being handed off says with
// it which of its entries its keepers must take. Unfence undoes it.
func (t *Table) Fence(ctx context.Context) (uint64, error) {
	t.fenced.Store(true)
	// An empty batch through the writer: every local write stamped before
	// the flag was seen is ahead of it.
	if _, err := t.do(ctx, &request{remote: true}); err != nil {
		return 0, err
	}
	return t.opts.Clock.Now(), nil
}

// Unfence lets the copy take local writes again.
func (t *Table) Unfence() { t.fenced.Store(false) }
