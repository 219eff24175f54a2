package tables

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/tidwall/buntdb"

	"github.com/cortex-mesh/cortex/wal"
)

// Write failures. When an append or an fsync fails (a full disk, an I/O
// error), the log closes itself: nothing written since its last good fsync
// can be trusted. The table then refuses writes with a clear error, and the
// recoverer probes the disk (a small file written and fsynced in the copy's
// directory) with capped backoff. Once that works, and no batch is still in
// the pipeline, it reopens the log from disk (the torn-tail rule cuts a
// partial append), cuts back what follows the last entry the view holds (so
// a write its caller was told failed is not in the log), and writes resume:
// no restart is needed. Reads go on throughout; the change feed (Changes)
// waits for the reopened log and goes on from there.

// fail records the first write error; writes are refused until the log is
// reopened. It returns the error every later write gets.
func (t *Table) fail(err error) error {
	t.failMu.Lock()
	defer t.failMu.Unlock()
	if t.failed == nil {
		t.failed = fmt.Errorf("table %s cannot write: %w (writes resume by themselves once the disk takes them again)", t.opts.Name, err)
		t.opts.Logger.Error("table writes failed: refusing writes until the log can be appended again", "table", t.opts.Name, "err", err)
		select {
		case t.recoverKick <- struct{}{}:
		default:
		}
	}
	return t.failed
}

func (t *Table) failure() error {
	t.failMu.Lock()
	defer t.failMu.Unlock()
	return t.failed
}

// probeSize is how much a probe writes: more than a batch of small writes
// needs, so that a disk with a few bytes free does not flap.
const probeSize = 1 << 20

// recoverer waits for a failure and then tries to resume, until it does or
// the table closes.
func (t *Table) recoverer() {
	defer close(t.recoverDone)
	for {
		select {
		case <-t.quit:
			return
		case <-t.recoverKick:
		}
		b := &backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond, RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: 5 * time.Second}
		for t.failure() != nil {
			select {
			case <-t.quit:
				return
			case <-time.After(b.NextBackOff()):
			}
			if err := t.resume(); err != nil {
				t.opts.Logger.Debug("table writes still failing", "table", t.opts.Name, "err", err)
			}
		}
	}
}

// resume reopens the log if the disk takes writes again.
func (t *Table) resume() error {
	if err := probeDisk(t.dir); err != nil {
		return err
	}
	t.closeMu.RLock()
	defer t.closeMu.RUnlock()
	if t.closed {
		return ErrClosed
	}
	t.logMu.Lock()
	defer t.logMu.Unlock()
	if n := t.inflight.Load(); n != 0 { // the writer holds logMu to send more
		return fmt.Errorf("%d batches still in the pipeline", n)
	}
	t.log.Close()
	l, err := t.openLog()
	if err != nil {
		return err
	}
	var applied uint64
	t.db.View(func(*buntdb.Tx) error { applied = t.applied; return nil })
	if _, last := l.Bounds(); last < applied {
		l.Close()
		return fmt.Errorf("the reopened log ends at %d, before the %d entries the view holds", last, applied)
	}
	if err := l.TruncateBack(applied); err != nil {
		l.Close()
		return err
	}
	t.log = l
	t.gen.Add(1)
	close(t.logSwap)
	t.logSwap = make(chan struct{})
	t.failMu.Lock()
	t.failed = nil
	t.failMu.Unlock()
	t.opts.Logger.Info("table writes resume: the log was reopened", "table", t.opts.Name, "last", applied)
	return nil
}

// probeDisk writes probeSize bytes to a new file in dir, fsyncs and removes it.
func probeDisk(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, probeSize))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Changes is the copy's change feed: up to max durable entries of its log
// from offset from on, waiting until at least one exists. A damaged entry is
// never served: the good ones before it come first, then the log is cut
// behind a checkpoint and the error wraps wal.ErrTruncated (the subscriber
// gets a snapshot). While writes are failing it waits for the reopened log.
// It returns ctx's error when ctx ends, and ErrClosed once the table closes.
func (t *Table) Changes(ctx context.Context, from uint64, max int) ([]wal.Record, error) {
	for {
		t.logMu.RLock()
		l, swapped := t.log, t.logSwap
		t.logMu.RUnlock()
		recs, err := l.Tail(ctx, from, max)
		var ce *wal.CorruptError
		switch {
		case errors.As(err, &ce) && len(recs) > 0:
			return recs, nil
		case errors.As(err, &ce):
			if cerr := t.cutDamage(ce); cerr != nil {
				return nil, fmt.Errorf("table %s: %w (%v)", t.opts.Name, err, cerr)
			}
			return nil, fmt.Errorf("table %s: offset %d was cut from the log: %w", t.opts.Name, ce.Offset, wal.ErrTruncated)
		case errors.Is(err, wal.ErrClosed):
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-swapped:
			}
			if t.isClosed() {
				return nil, fmt.Errorf("table %s: %w", t.opts.Name, ErrClosed)
			}
			continue
		}
		return recs, err
	}
}

func (t *Table) isClosed() bool {
	t.closeMu.RLock()
	defer t.closeMu.RUnlock()
	return t.closed
}
