package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Op is what an entry does to its key.
type Op byte

// The operations an entry can carry.
const (
	OpPut    Op = 1 // set the key to the value
	OpDelete Op = 2 // replace the key with a tombstone
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "del"
	}
	return fmt.Sprintf("op(%d)", byte(o))
}

// Version orders the writes of one key across the mesh: a hybrid logical
// clock timestamp and the name of the node that made the write.
type Version struct {
	HLC    uint64
	Origin string
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than w.
// Versions are totally ordered: by HLC, then by origin name.
func (v Version) Compare(w Version) int {
	switch {
	case v.HLC < w.HLC:
		return -1
	case v.HLC > w.HLC:
		return 1
	case v.Origin < w.Origin:
		return -1
	case v.Origin > w.Origin:
		return 1
	}
	return 0
}

// Entry is one change to one key, as stored in the log and sent to peers.
type Entry struct {
	Op      Op
	Key     []byte
	Value   []byte // empty for OpDelete
	Version Version
	// Proof is opaque to the log: whatever a higher layer attaches to prove
	// who made the change (the system tables carry the origin node's
	// signature). The log stores and checksums it like the rest.
	Proof []byte
}

// Encoding limits. They bound what a decoder accepts from a file or a peer;
// the tables package enforces its own (smaller, configurable) limits on writes.
const (
	MaxKeySize    = 64 << 10
	MaxValueSize  = 64 << 20
	MaxOriginSize = 255
	MaxProofSize  = 16 << 10
)

// Entry formats: 1 has no proof, 2 has a proof after the value. An entry
// without a proof is always written in format 1.
const (
	entryFormat      = 1
	entryFormatProof = 2
	crcSize          = 4
	fixedHeader      = 1 + 1 + 8 // format, op, hlc
	minEntrySize     = fixedHeader + 3 + crcSize
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ErrBadEntry is wrapped by every decoding error.
var ErrBadEntry = errors.New("bad wal entry")

// AppendEncode appends the binary form of e to dst and returns the result:
//
//	format(1) op(1) hlc(8, little endian)
//	uvarint len + origin, uvarint len + key, uvarint len + value
//	format 2 only: uvarint len + proof
//	crc32c(4) of everything before it
func AppendEncode(dst []byte, e *Entry) []byte {
	start := len(dst)
	format := byte(entryFormat)
	if len(e.Proof) > 0 {
		format = entryFormatProof
	}
	dst = append(dst, format, byte(e.Op))
	dst = binary.LittleEndian.AppendUint64(dst, e.Version.HLC)
	dst = binary.AppendUvarint(dst, uint64(len(e.Version.Origin)))
	dst = append(dst, e.Version.Origin...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Key)))
	dst = append(dst, e.Key...)
	dst = binary.AppendUvarint(dst, uint64(len(e.Value)))
	dst = append(dst, e.Value...)
	if len(e.Proof) > 0 {
		dst = binary.AppendUvarint(dst, uint64(len(e.Proof)))
		dst = append(dst, e.Proof...)
	}
	return binary.LittleEndian.AppendUint32(dst, crc32.Checksum(dst[start:], castagnoli))
}

// Check enforces on an entry about to be written what Decode enforces on
// read, so that nothing is written that would not read back.
func (e *Entry) Check() error {
	switch {
	case e.Op != OpPut && e.Op != OpDelete:
		return fmt.Errorf("%w: unknown op %d", ErrBadEntry, e.Op)
	case len(e.Version.Origin) == 0 || len(e.Version.Origin) > MaxOriginSize:
		return fmt.Errorf("%w: origin of %d bytes", ErrBadEntry, len(e.Version.Origin))
	case len(e.Key) == 0 || len(e.Key) > MaxKeySize:
		return fmt.Errorf("%w: key of %d bytes", ErrBadEntry, len(e.Key))
	case len(e.Value) > MaxValueSize:
		return fmt.Errorf("%w: value of %d bytes", ErrBadEntry, len(e.Value))
	case e.Op == OpDelete && len(e.Value) != 0:
		return fmt.Errorf("%w: delete with a value", ErrBadEntry)
	case len(e.Proof) > MaxProofSize:
		return fmt.Errorf("%w: proof of %d bytes", ErrBadEntry, len(e.Proof))
	}
	return nil
}

// Decode parses one encoded entry. The returned entry's Key and Value alias
// data. It returns an error wrapping ErrBadEntry for any input that is not
// exactly one intact entry, and never panics.
func Decode(data []byte) (Entry, error) {
	var e Entry
	if len(data) < minEntrySize {
		return e, fmt.Errorf("%w: %d bytes is too short", ErrBadEntry, len(data))
	}
	body := data[:len(data)-crcSize]
	if got, want := crc32.Checksum(body, castagnoli), binary.LittleEndian.Uint32(data[len(body):]); got != want {
		return e, fmt.Errorf("%w: checksum mismatch", ErrBadEntry)
	}
	format := body[0]
	if format != entryFormat && format != entryFormatProof {
		return e, fmt.Errorf("%w: unknown format %d", ErrBadEntry, format)
	}
	e.Op = Op(body[1])
	if e.Op != OpPut && e.Op != OpDelete {
		return e, fmt.Errorf("%w: unknown op %d", ErrBadEntry, body[1])
	}
	e.Version.HLC = binary.LittleEndian.Uint64(body[2:10])
	rest := body[fixedHeader:]
	origin, rest, err := field(rest, "origin", MaxOriginSize)
	if err != nil {
		return e, err
	}
	if len(origin) == 0 {
		return e, fmt.Errorf("%w: empty origin", ErrBadEntry)
	}
	e.Version.Origin = string(origin)
	if e.Key, rest, err = field(rest, "key", MaxKeySize); err != nil {
		return e, err
	}
	if len(e.Key) == 0 {
		return e, fmt.Errorf("%w: empty key", ErrBadEntry)
	}
	if e.Value, rest, err = field(rest, "value", MaxValueSize); err != nil {
		return e, err
	}
	if format == entryFormatProof {
		if e.Proof, rest, err = field(rest, "proof", MaxProofSize); err != nil {
			return e, err
		}
		if len(e.Proof) == 0 {
			return e, fmt.Errorf("%w: empty proof", ErrBadEntry)
		}
	}
	if len(rest) != 0 {
		return e, fmt.Errorf("%w: %d trailing bytes", ErrBadEntry, len(rest))
	}
	if e.Op == OpDelete && len(e.Value) != 0 {
		return e, fmt.Errorf("%w: delete with a value", ErrBadEntry)
	}
	return e, nil
}

// field reads one uvarint-length-prefixed byte string of at most max bytes.
func field(b []byte, name string, max int) (val, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("%w: bad %s length", ErrBadEntry, name)
	}
	b = b[k:]
	if n > uint64(max) || n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: %s length %d out of range", ErrBadEntry, name, n)
	}
	return b[:n:n], b[n:], nil
}
