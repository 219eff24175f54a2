package tables

import (
	"encoding/binary"
	"fmt"

	"github.com/cortex-mesh/cortex/wal"
)

// Record is the current state of one key: its value and the version of the
// change that set it. A deleted key is a tombstone: Deleted with no value.
type Record struct {
	Key     []byte
	Value   []byte
	Version wal.Version
	Deleted bool
	Proof   []byte // the proof the change carried (system tables), if any
}

// Entry returns the change that produces r.
func (r Record) Entry() wal.Entry {
	if r.Deleted {
		return wal.Entry{Op: wal.OpDelete, Key: r.Key, Version: r.Version, Proof: r.Proof}
	}
	return wal.Entry{Op: wal.OpPut, Key: r.Key, Value: r.Value, Version: r.Version, Proof: r.Proof}
}

// Keys in the BuntDB view carry a one-byte namespace so that user keys never
// meet the table's own bookkeeping.
const userKeyPrefix = "k"

func viewKey(key []byte) string { return userKeyPrefix + string(key) }

const (
	flagTombstone = 1
	flagProof     = 2
)

// encodeRecord is the form of a record's value in the view:
// flags(1) hlc(8) len(origin)(1) origin [uvarint len + proof] value, the
// proof only with flagProof.
func encodeRecord(e *wal.Entry) string {
	b := make([]byte, 0, 10+len(e.Version.Origin)+len(e.Value)+len(e.Proof))
	var flags byte
	if e.Op == wal.OpDelete {
		flags = flagTombstone
	}
	if len(e.Proof) > 0 {
		flags |= flagProof
	}
	b = append(b, flags)
	b = binary.LittleEndian.AppendUint64(b, e.Version.HLC)
	b = append(b, byte(len(e.Version.Origin)))
	b = append(b, e.Version.Origin...)
	if len(e.Proof) > 0 {
		b = binary.AppendUvarint(b, uint64(len(e.Proof)))
		b = append(b, e.Proof...)
	}
	b = append(b, e.Value...)
	return string(b)
}

// decodeRecord parses a view value. The returned slices do not alias s.
func decodeRecord(key, s string) (Record, error) {
	bad := fmt.Errorf("malformed record for key %q", key)
	if len(s) < 10 || len(s) < 10+int(s[9]) || s[0]&^(flagTombstone|flagProof) != 0 {
		return Record{}, bad
	}
	n := int(s[9])
	r := Record{
		Key:     []byte(key),
		Version: wal.Version{HLC: le64(s[1:9]), Origin: s[10 : 10+n]},
		Deleted: s[0]&flagTombstone != 0,
	}
	rest := s[10+n:]
	if s[0]&flagProof != 0 {
		size, k := binary.Uvarint([]byte(rest[:min(len(rest), binary.MaxVarintLen64)]))
		if k <= 0 || size == 0 || size > uint64(len(rest)-k) {
			return Record{}, bad
		}
		r.Proof, rest = []byte(rest[k:k+int(size)]), rest[k+int(size):]
	}
	if !r.Deleted {
		r.Value = []byte(rest)
	}
	return r, nil
}

// recordVersion reads only the version of a view value.
func recordVersion(s string) (wal.Version, bool) {
	if len(s) < 10 || len(s) < 10+int(s[9]) {
		return wal.Version{}, false
	}
	return wal.Version{HLC: le64(s[1:9]), Origin: s[10 : 10+int(s[9])]}, true
}

func le64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
