package tables

import (
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/ratelog"
	"github.com/cortex-mesh/cortex/wal"
)

// ErrRefused is wrapped by the reasons a remote entry is not admitted.
var ErrRefused = errors.New("refused")

// ErrFuture is a remote entry stamped beyond the clock's Horizon: it may be
// admitted later (a clock stepped back), so a stream should not go past it.
var ErrFuture = fmt.Errorf("%w: from the future", ErrRefused)

// RefusedError reports the entries of an Apply that were not admitted; the
// others were applied. It wraps the first reason.
type RefusedError struct {
	Table string
	N     int   // entries refused
	First error // the first one's reason
	// Retry: some entry was refused only for now (ErrFuture): a stream
	// must not go past it, but resume before it later.
	Retry bool
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("table %s: %d entries refused: %v", e.Table, e.N, e.First)
}

func (e *RefusedError) Unwrap() error { return e.First }

// OnlyRefused reports whether err is nil or says only that some entries of
// an Apply were refused for good (the others were applied): a stream goes
// on past them. Refused for now (RefusedError.Retry) is not.
func OnlyRefused(err error) bool {
	var re *RefusedError
	return err == nil || errors.As(err, &re) && !re.Retry
}

// orNil returns e as an error, nil when there is none (a nil *RefusedError
// must not become a non-nil error).
func (e *RefusedError) orNil() error {
	if e == nil {
		return nil
	}
	return e
}

// refusals counts the remote entries a copy did not admit and logs them:
// the first from each origin at once, then at most once a minute per origin
// with how many were refused meanwhile, so that a peer sending bad entries
// in a loop cannot flood the log.
type refusals struct {
	count atomic.Int64
	log   *ratelog.Log[string] // by origin (peer data: at most 1024 tracked)
}

func (r *refusals) add(log *slog.Logger, table string, e *wal.Entry, err error) {
	r.count.Add(1)
	rep, ok := r.log.Note(e.Version.Origin, err, time.Now())
	if !ok {
		return
	}
	log.Warn("refused a remote entry: not applied, not relayed", "table", table, "origin", rep.Key,
		"key", string(e.Key[:min(len(e.Key), 64)]), "refused", rep.N, "err", err)
}
