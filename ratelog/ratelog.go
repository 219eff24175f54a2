// Package ratelog decides when to log an event that repeats: a remote that
// keeps knocking with a certificate of another mesh, a flood over a
// listener's limits. The first event of a key is reported at once, later
// ones are counted and reported with their number at most once an interval,
// so a remote retrying forever costs a line a minute, not a line a retry.
package ratelog

import (
	"context"
	"sync"
	"time"
)

// Log counts events by key. At most max keys are tracked; the events of any
// others count together under the key other, so that memory stays bounded
// whatever the remotes do.
type Log[K comparable] struct {
	interval time.Duration
	max      int
	other    K

	mu   sync.Mutex
	keys map[K]*entry
}

type entry struct {
	pending int       // events since the last report
	logged  time.Time // the last report
	err     error     // the latest event's
}

// Report is one line to log: N events of Key since its previous line, the
// latest with Err.
type Report[K comparable] struct {
	Key K
	N   int
	Err error
}

// New returns a Log that reports each key at most once per interval.
func New[K comparable](interval time.Duration, max int, other K) *Log[K] {
	return &Log[K]{interval: interval, max: max, other: other, keys: map[K]*entry{}}
}

// Note counts an event and returns the report to log now, if one is due.
func (l *Log[K]) Note(key K, err error, now time.Time) (Report[K], bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e := l.keys[key]
	if e == nil && len(l.keys) >= l.max {
		key = l.other
		e = l.keys[key]
	}
	if e == nil {
		e = &entry{}
		l.keys[key] = e
	}
	e.pending++
	e.err = err
	if !e.logged.IsZero() && now.Sub(e.logged) < l.interval {
		return Report[K]{}, false
	}
	rep := Report[K]{Key: key, N: e.pending, Err: err}
	e.pending, e.logged = 0, now
	return rep, true
}

// Flush returns the reports due (events counted but not reported, whose
// key's last report is an interval old) and forgets the keys with nothing
// to report for an interval.
func (l *Log[K]) Flush(now time.Time) []Report[K] {
	l.mu.Lock()
	defer l.mu.Unlock()
	var due []Report[K]
	for key, e := range l.keys {
		if now.Sub(e.logged) < l.interval {
			continue
		}
		if e.pending == 0 {
			delete(l.keys, key)
			continue
		}
		due = append(due, Report[K]{Key: key, N: e.pending, Err: e.err})
		e.pending, e.logged = 0, now
	}
	return due
}

// Run calls emit with the reports Flush finds due, once an interval, until
// ctx is done.
func (l *Log[K]) Run(ctx context.Context, emit func(Report[K])) {
	tick := time.NewTicker(l.interval)
	defer tick.Stop()
	for {
		select {
		case now := <-tick.C:
			for _, rep := range l.Flush(now) {
				emit(rep)
			}
		case <-ctx.Done():
			return
		}
	}
}
