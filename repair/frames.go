package repair

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Frames of the repair protocol after the request: records (an entries
// batch), the end of a record stream, an error, and a count.
const (
	frameRecs  = 'R' // count, entries: records
	frameEnd   = 'Z' // the records are complete
	frameError = 'E' // message: the serving node refuses or failed
	frameCount = 'A' // n: how many records were adopted
)

// frame is one decoded frame.
type frame struct {
	Type    byte
	Entries []wal.Entry
	N       uint64
	Message string
}

// Record frames are cut at these sizes; one entry may be the largest value.
const (
	maxFrame      = tables.MaxValueLimit + 8<<20
	maxBatchBytes = 1 << 20
	maxBatchCount = 1024
)

func encodeFrame(f *frame) []byte {
	b := []byte{f.Type}
	switch f.Type {
	case frameRecs:
		b = wal.AppendBatch(b, f.Entries)
	case frameCount:
		b = binary.AppendUvarint(b, f.N)
	case frameError:
		b = append(b, f.Message...)
	}
	return b
}

// decodeFrame parses a frame; every entry must decode with its checksum. It
// never panics, and a frame that is not exactly well formed is an error.
func decodeFrame(b []byte) (frame, error) {
	var f frame
	if len(b) == 0 {
		return f, errors.New("empty frame")
	}
	f.Type, b = b[0], b[1:]
	var err error
	switch f.Type {
	case frameRecs:
		f.Entries, b, err = wal.DecodeBatch(b)
	case frameCount:
		f.N, b, err = wal.Uvarint(b)
	case frameEnd:
	case frameError:
		f.Message, b = mesh.Clip(string(b)), nil
	default:
		return f, fmt.Errorf("unknown frame type %#x", f.Type)
	}
	if err == nil && len(b) != 0 {
		err = fmt.Errorf("%d trailing bytes", len(b))
	}
	if err != nil {
		return frame{}, fmt.Errorf("frame %q: %w", f.Type, err)
	}
	return f, nil
}

// writeTimeout drops a peer that does not read for this long.
const writeTimeout = 60 * time.Second

func send(s mesh.Stream, f *frame) error {
	s.SetWriteDeadline(time.Now().Add(writeTimeout))
	return mesh.WriteFrame(s, encodeFrame(f))
}

// sendRecords sends records as record frames, then the end frame.
func sendRecords(s mesh.Stream, recs []tables.Record) error {
	for len(recs) > 0 {
		var entries []wal.Entry
		size := 0
		for len(recs) > 0 && len(entries) < maxBatchCount && size < maxBatchBytes {
			entries = append(entries, recs[0].Entry())
			size += len(recs[0].Key) + len(recs[0].Value)
			recs = recs[1:]
		}
		if err := send(s, &frame{Type: frameRecs, Entries: entries}); err != nil {
			return err
		}
	}
	return send(s, &frame{Type: frameEnd})
}
