package tables

import (
	"context"
	"errors"
	"fmt"

	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// request is one call waiting on the writer: a local write (versions to be
// stamped) or a batch of remote entries (versions kept, LWW decides).
type request struct {
	entries []wal.Entry
	remote  bool
	reply   chan reply
}

type reply struct {
	version wal.Version // local writes: the version stamped
	adopted int         // remote batches: how many entries were newer
	err     error
}

// Batches close at this many entries or payload bytes.
const (
	maxBatchEntries = 4096
	maxBatchBytes   = 8 << 20
)

// Put sets key to value and returns the version of the write once it is in
// the log (on disk unless NoSync) and visible to readers.
func (t *Table) Put(ctx context.Context, key, value []byte) (wal.Version, error) {
	if err := t.opts.Limits.check(key, value); err != nil {
		return wal.Version{}, fmt.Errorf("table %s: put: %w", t.opts.Name, err)
	}
	r, err := t.do(ctx, &request{entries: []wal.Entry{{Op: wal.OpPut, Key: key, Value: value}}})
	return r.version, err
}

// Delete replaces key with a tombstone (whether or not it held a value).
func (t *Table) Delete(ctx context.Context, key []byte) (wal.Version, error) {
	if err := t.opts.Limits.check(key, nil); err != nil {
		return wal.Version{}, fmt.Errorf("table %s: delete: %w", t.opts.Name, err)
	}
	r, err := t.do(ctx, &request{entries: []wal.Entry{{Op: wal.OpDelete, Key: key}}})
	return r.version, err
}

// Apply adopts the entries of a peer that are newer than what their keys
// hold, appends those (with their original versions) to this copy's log, and
// returns how many it adopted. Applying an entry twice changes nothing.
func (t *Table) Apply(ctx context.Context, entries []wal.Entry) (int, error) {
	for i := range entries {
		if err := entries[i].Check(); err != nil {
			return 0, fmt.Errorf("table %s: apply: %w: entry %d: %v", t.opts.Name, ErrInvalid, i, err)
		}
	}
	if len(entries) == 0 {
		return 0, nil
	}
	r, err := t.do(ctx, &request{entries: entries, remote: true})
	return r.adopted, err
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

// writer is the table's only writer. It gathers the requests waiting,
// stamps and decides them, appends the batch to the log with one fsync,
// applies it to the view and only then answers.
func (t *Table) writer() {
	defer close(t.done)
	var (
		batch   []*request
		failed  error
		sinceCk int
		w       = batchWriter{pending: map[string]wal.Version{}}
	)
	for {
		batch = batch[:0]
		select {
		case r := <-t.reqs:
			batch = append(batch, r)
		case <-t.quit:
			// Close waited for every sender: drain what is queued, then stop.
			for {
				select {
				case r := <-t.reqs:
					batch = append(batch, r)
					continue
				default:
				}
				break
			}
			if len(batch) > 0 {
				t.commit(&w, batch, failed)
			}
			return
		}
		n, size := len(batch[0].entries), batchSize(batch[0])
	gather:
		for n < maxBatchEntries && size < maxBatchBytes {
			select {
			case r := <-t.reqs:
				batch = append(batch, r)
				n += len(r.entries)
				size += batchSize(r)
			default:
				break gather
			}
		}
		written, err := t.commit(&w, batch, failed)
		if err != nil && failed == nil {
			failed = fmt.Errorf("table %s stopped after a write error (restart the node to recover from the log): %w", t.opts.Name, err)
			t.opts.Logger.Error("table writer failed", "table", t.opts.Name, "err", err)
		}
		if sinceCk += written; t.opts.CheckpointEvery > 0 && sinceCk >= t.opts.CheckpointEvery {
			sinceCk = 0
			select {
			case t.ckptKick <- struct{}{}:
			default:
			}
		}
	}
}

func batchSize(r *request) int {
	n := 0
	for i := range r.entries {
		n += len(r.entries[i].Key) + len(r.entries[i].Value)
	}
	return n
}

// batchWriter holds the writer's reusable buffers.
type batchWriter struct {
	entries []wal.Entry
	pending map[string]wal.Version // versions decided earlier in this batch
}

// commit writes one batch and answers its requests. It returns how many
// entries went to the log.
func (t *Table) commit(w *batchWriter, batch []*request, failed error) (int, error) {
	if failed != nil {
		for _, r := range batch {
			r.reply <- reply{err: failed}
		}
		return 0, nil
	}
	w.entries = w.entries[:0]
	clear(w.pending)
	replies := make([]reply, len(batch))
	err := t.db.View(func(tx *buntdb.Tx) error {
		for i, r := range batch {
			for _, e := range r.entries {
				if !r.remote {
					e.Version = wal.Version{HLC: t.opts.Clock.Now(), Origin: t.opts.Node}
					replies[i].version = e.Version
				} else {
					t.opts.Clock.Observe(e.Version.HLC)
					cur, ok := w.pending[string(e.Key)]
					if !ok {
						if s, err := tx.Get(viewKey(e.Key)); err == nil {
							cur, ok = recordVersion(s)
						} else if !errors.Is(err, buntdb.ErrNotFound) {
							return err
						}
					}
					if !Adopt(e.Version, cur, ok) {
						continue
					}
					replies[i].adopted++
				}
				w.pending[string(e.Key)] = e.Version
				w.entries = append(w.entries, e)
			}
		}
		return nil
	})
	if err == nil && len(w.entries) > 0 {
		var first uint64
		if first, err = t.log.Append(w.entries); err == nil {
			err = t.db.Update(func(tx *buntdb.Tx) error {
				for i := range w.entries {
					if err := t.set(tx, &w.entries[i]); err != nil {
						return err
					}
				}
				t.applied = first + uint64(len(w.entries)) - 1
				return nil
			})
		}
	}
	for i, r := range batch {
		if err != nil {
			replies[i] = reply{err: fmt.Errorf("table %s: write: %w", t.opts.Name, err)}
		}
		r.reply <- replies[i]
	}
	if err != nil {
		return 0, err
	}
	return len(w.entries), nil
}
