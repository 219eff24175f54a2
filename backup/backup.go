// Package backup owns the backup file format: a header, one section per
// table copy (its catalog record and the offset of its log the records are
// as of, then its records with their versions, then the section's count and
// SHA-256) and a trailer holding the whole manifest and the SHA-256 of every
// byte before it. Writer writes one as a stream (nothing held but one frame);
// Read reads and checks one as a stream and never panics, so a truncated or
// damaged file is detected, with the byte where it stops making sense.
//
// The file:
//
//	magic "CXBACKUP"
//	frame*   kind(1) uvarint(len) payload(len) crc32c(4) of kind, len and payload
//
// and the frames, in this order:
//
//	'H' header    JSON Header
//	per table:
//	'T' table     JSON TableMeta (without sha256)
//	'R' records   uvarint count, count x record        (any number of these)
//	'E' end       JSON {"records", "sha256"}: SHA-256 of the section's 'R' payloads
//	'M' manifest  JSON Manifest: every TableMeta with its sha256, and the SHA-256
//	              and size of every byte of the file before this frame
//
// A record is flags(1: bit 0 tombstone) uvarint(hlc) uvarint(len)+origin
// uvarint(len)+key uvarint(len)+value. A node that cannot finish a backup it
// is streaming writes an 'X' frame (JSON {"error"}) instead, which Read
// reports as that error.
package backup

import (
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Format is the version of the format Writer writes and Read reads.
const Format = 1

// Magic opens every backup file.
const Magic = "CXBACKUP"

// ErrCorrupt is wrapped by every error about a file that is not an intact
// backup: truncated, damaged, or not a backup file at all.
var ErrCorrupt = errors.New("backup file damaged")

// ErrAborted is wrapped when the node that wrote the file stopped it part
// way (the file ends with its reason).
var ErrAborted = errors.New("the backup was stopped by the node that made it")

// Header opens a backup: who made it, when, and of which tables.
type Header struct {
	Format  int       `json:"format"`
	Node    string    `json:"node"`
	Created time.Time `json:"created"`
	// Prefix, if set, says the file holds only the keys starting with it
	// (an export); a full backup has none.
	Prefix []byte   `json:"prefix,omitempty"`
	Tables []string `json:"tables"`
}

// TableMeta describes one table's section: the table's catalog record, the
// log of the copy it was read from and the offset of that log the records
// are as of, how many records (tombstones included) and their SHA-256.
type TableMeta struct {
	Name    string      `json:"name"`
	ID      string      `json:"id"`
	Scope   scope.Scope `json:"scope"`
	Home    string      `json:"home"`
	LogID   string      `json:"log_id"`
	AsOf    uint64      `json:"as_of"`
	Records uint64      `json:"records"`
	SHA256  string      `json:"sha256,omitempty"`
}

// Info is the table's catalog record as the section gives it.
func (m TableMeta) Info() scope.TableInfo {
	return scope.TableInfo{Name: m.Name, ID: m.ID, Scope: m.Scope, Home: m.Home}
}

// Manifest is the trailer: the header's fields, every section, and the
// SHA-256 and size of the file up to the trailer.
type Manifest struct {
	Format  int         `json:"format"`
	Node    string      `json:"node"`
	Created time.Time   `json:"created"`
	Prefix  []byte      `json:"prefix,omitempty"`
	Tables  []TableMeta `json:"tables"`
	SHA256  string      `json:"sha256"`
	Size    int64       `json:"size"`
}

// Record is one key's record: its value (none for a tombstone) and its
// version, which a restore keeps, so last-write-wins decides as it would
// have on the node the backup came from.
type Record struct {
	Key     []byte
	Value   []byte
	Deleted bool
	HLC     uint64
	Origin  string
}

// Entry is the change that makes r, as a peer would send it.
func (r Record) Entry() wal.Entry {
	e := wal.Entry{Op: wal.OpPut, Key: r.Key, Value: r.Value, Version: wal.Version{HLC: r.HLC, Origin: r.Origin}}
	if r.Deleted {
		e.Op, e.Value = wal.OpDelete, nil
	}
	return e
}

// FromTable is a table copy's record as a backup record.
func FromTable(r tables.Record) Record {
	return Record{Key: r.Key, Value: r.Value, Deleted: r.Deleted, HLC: r.Version.HLC, Origin: r.Version.Origin}
}

// Check says what is wrong with a record no node would hold: an empty or
// too long key or origin, a too large value, a tombstone with a value, a
// version of zero.
func (r Record) Check() error {
	if r.HLC == 0 {
		return errors.New("a version (hlc) of 0")
	}
	if r.Deleted && len(r.Value) > 0 {
		return errors.New("a tombstone with a value")
	}
	e := r.Entry()
	return e.Check()
}

// checkMeta checks a section's table: a user table's catalog record (never
// a system table's), a log id.
func checkMeta(m TableMeta) error {
	if scope.IsSystem(m.Name) {
		return fmt.Errorf("table %s is a system table: backups never hold system tables", m.Name)
	}
	if err := m.Info().Validate(); err != nil {
		return err
	}
	if m.LogID == "" || len(m.LogID) > 64 {
		return fmt.Errorf("table %s: log id of %d bytes", m.Name, len(m.LogID))
	}
	return nil
}
