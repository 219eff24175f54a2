package repl

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// ID is the replication stream protocol: a subscriber asks a publisher
// for a table's log from a cursor; the publisher answers with a snapshot if
// the cursor is not in its log, then with the log, then with every new
// entry as it is appended. The subscriber acknowledges what it applied.
const ID = "/cortex/repl/1"

const version = 1

// maxReplFrame bounds one frame: a batch is cut at maxBatchBytes, and one
// entry may be a 16 MiB value (the largest --max-value-size).
const (
	maxReplFrame  = tables.MaxValueLimit + 8<<20
	maxBatchBytes = 1 << 20
	maxBatchCount = 1024
)

// request is the subscriber's first frame.
type request struct {
	Version int    `json:"v"`
	Table   string `json:"table"`
	TableID string `json:"table_id"`
	LogID   string `json:"log_id,omitempty"` // empty: no cursor, send a snapshot
	From    uint64 `json:"from"`             // first offset wanted
}

func decodeRequest(b []byte) (request, error) {
	var r request
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("malformed replication request: %w", err)
	}
	if r.Version != version {
		return r, fmt.Errorf("replication protocol version %d: this node speaks %d", r.Version, version)
	}
	if err := tables.ValidateName(r.Table, true); err != nil {
		return r, err
	}
	if r.TableID == "" || len(r.TableID) > 64 || len(r.LogID) > 64 {
		return r, errors.New("replication request: bad table or log id")
	}
	return r, nil
}

// Frame types. Publisher to subscriber: start, snapshot begin/records/end,
// batch, error. Subscriber to publisher: ack.
const (
	frameStart     = 'L' // log_id, from: the log follows from this offset, no snapshot
	frameSnapBegin = 'S' // log_id, offset, floor: a snapshot as of offset follows, of a copy complete below floor
	frameSnapRecs  = 'R' // count, entries: part of a snapshot
	frameSnapEnd   = 'Z' // the snapshot is complete; the log follows from offset+1
	frameBatch     = 'B' // first offset, count, entries: consecutive log entries
	frameError     = 'E' // message: the publisher refuses or stops
	frameAck       = 'A' // offset: applied up to here
)

// frame is one decoded frame.
type frame struct {
	Type    byte
	LogID   string
	Offset  uint64 // start: from; snapshot begin: as-of offset; batch: first offset; ack
	Floor   uint64 // snapshot begin: the publisher is complete below this HLC (tables.Table.CompleteBelow)
	Entries []wal.Entry
	Message string
}

func encodeFrame(f *frame) []byte {
	b := []byte{f.Type}
	switch f.Type {
	case frameStart, frameSnapBegin:
		b = binary.AppendUvarint(b, uint64(len(f.LogID)))
		b = append(b, f.LogID...)
		b = binary.AppendUvarint(b, f.Offset)
		if f.Type == frameSnapBegin {
			b = binary.AppendUvarint(b, f.Floor)
		}
	case frameBatch:
		b = binary.AppendUvarint(b, f.Offset)
		b = wal.AppendBatch(b, f.Entries)
	case frameSnapRecs:
		b = wal.AppendBatch(b, f.Entries)
	case frameAck:
		b = binary.AppendUvarint(b, f.Offset)
	case frameError:
		b = append(b, f.Message...)
	}
	return b
}

// decodeFrame parses a frame; every entry must decode with its checksum.
// It never panics, and a frame that is not exactly well formed is an error.
func decodeFrame(b []byte) (frame, error) {
	var f frame
	if len(b) == 0 {
		return f, errors.New("empty frame")
	}
	f.Type, b = b[0], b[1:]
	var err error
	switch f.Type {
	case frameStart, frameSnapBegin:
		var id []byte
		if id, b, err = wal.Bytes(b, 64); err == nil {
			f.LogID = string(id)
			f.Offset, b, err = wal.Uvarint(b)
		}
		if err == nil && f.Type == frameSnapBegin {
			f.Floor, b, err = wal.Uvarint(b)
		}
	case frameBatch:
		if f.Offset, b, err = wal.Uvarint(b); err == nil {
			f.Entries, b, err = wal.DecodeBatch(b)
		}
		if err == nil && (f.Offset == 0 || len(f.Entries) == 0) {
			err = errors.New("empty batch or offset 0")
		}
	case frameSnapRecs:
		f.Entries, b, err = wal.DecodeBatch(b)
	case frameAck:
		f.Offset, b, err = wal.Uvarint(b)
	case frameSnapEnd:
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
