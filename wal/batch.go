package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A batch is entries as they travel between nodes: a uvarint count, then
// each entry as a uvarint length and its encoding (checksum included).
// Replication and repair frames carry their entries this way.

// AppendBatch appends the batch encoding of entries to b.
func AppendBatch(b []byte, entries []Entry) []byte {
	b = binary.AppendUvarint(b, uint64(len(entries)))
	var enc []byte
	for i := range entries {
		enc = AppendEncode(enc[:0], &entries[i])
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	return b
}

// DecodeBatch reads a batch from the start of b and returns its entries and
// the bytes after it. Every entry must decode (checksum included). It never
// panics; the entries alias b.
func DecodeBatch(b []byte) ([]Entry, []byte, error) {
	count, b, err := Uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if count > uint64(len(b)) { // every entry takes more than one byte
		return nil, nil, fmt.Errorf("%w: %d entries cannot fit", ErrBadEntry, count)
	}
	entries := make([]Entry, 0, count)
	for i := uint64(0); i < count; i++ {
		var raw []byte
		if raw, b, err = Bytes(b, len(b)); err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		e, err := Decode(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("entry %d: %w", i, err)
		}
		entries = append(entries, e)
	}
	return entries, b, nil
}

// errBadNumber is a uvarint that does not decode.
var errBadNumber = errors.New("bad number")

// Uvarint reads a uvarint from the start of b and returns the rest.
func Uvarint(b []byte) (uint64, []byte, error) {
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, nil, errBadNumber
	}
	return v, b[n:], nil
}

// Bytes reads a uvarint length and that many bytes (at most max) from the
// start of b and returns them and the rest.
func Bytes(b []byte, max int) ([]byte, []byte, error) {
	n, b, err := Uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(max) || n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("field of %d bytes", n)
	}
	return b[:n], b[n:], nil
}
