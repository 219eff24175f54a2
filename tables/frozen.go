package tables

import (
	"bytes"
	"fmt"

	"github.com/cortex-mesh/cortex/wal"
	"github.com/tidwall/buntdb"
)

// Frozen is a copy's view as of one log offset: the references to its
// records gathered in one BuntDB read transaction, which also reads the
// offset the view reflects. Their bytes are not copied (BuntDB never changes
// a stored string; a later write stores a new one), and they are decoded
// one at a time by Each, so writes go on while a snapshot or a backup of a
// large table is sent. Applying its records and then the log after Offset
// rebuilds the copy.
type Frozen struct {
	Name   string // the table's name
	LogID  string // the copy's log
	Offset uint64 // the last log offset the records reflect
	items  []frozenItem
}

type frozenItem struct{ k, v string }

// Freeze returns the copy's view as it is now.
func (t *Table) Freeze() *Frozen {
	f := &Frozen{Name: t.opts.Name, LogID: t.LogID()}
	t.db.View(func(tx *buntdb.Tx) error {
		f.Offset = t.applied
		f.items = make([]frozenItem, 0, t.keys+t.tombstones)
		return tx.AscendGreaterOrEqual("", userKeyPrefix, func(k, v string) bool {
			if len(k) == 0 || k[:1] != userKeyPrefix {
				return false
			}
			f.items = append(f.items, frozenItem{k, v})
			return true
		})
	})
	return f
}

// Len is the number of records, tombstones included.
func (f *Frozen) Len() int { return len(f.items) }

// Count is the number of records whose keys start with prefix.
func (f *Frozen) Count(prefix []byte) int {
	if len(prefix) == 0 {
		return len(f.items)
	}
	n := 0
	for _, it := range f.items {
		if bytes.HasPrefix([]byte(it.k[len(userKeyPrefix):]), prefix) {
			n++
		}
	}
	return n
}

// Each calls fn with every record (tombstones included) whose key starts
// with prefix, in key order, until fn returns an error, which Each returns.
// The records do not alias the view.
func (f *Frozen) Each(prefix []byte, fn func(Record) error) error {
	for _, it := range f.items {
		key := it.k[len(userKeyPrefix):]
		if len(prefix) > 0 && !bytes.HasPrefix([]byte(key), prefix) {
			continue
		}
		r, err := decodeRecord(key, it.v)
		if err != nil {
			return fmt.Errorf("table %s: %w", f.Name, err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

// Admissible reports whether Apply would take a remote entry (well formed,
// within this node's limits and clock horizon, and Options.Admit), without
// counting or logging a refusal: a restore checks every entry of a file
// before it applies any.
func (t *Table) Admissible(e *wal.Entry) error {
	if err := t.admit(e); err != nil {
		return fmt.Errorf("table %s: %w", t.opts.Name, err)
	}
	return nil
}
