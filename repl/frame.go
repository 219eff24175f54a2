package repl

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/scope"
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
	// Relay: the subscriber takes filtered batches (F) and sends its claims
	// (V); Have is what it claims now. An old subscriber sends neither and
	// is sent every entry, as before.
	Relay bool             `json:"relay,omitempty"`
	Have  map[string]Claim `json:"have,omitempty"`
}

// maxOrigins bounds a subscriber's claims: one per node of the mesh.
const maxOrigins = 1024

// validateHave checks a subscriber's claims (peer data).
func validateHave(have map[string]Claim) error {
	if len(have) > maxOrigins {
		return fmt.Errorf("claims for %d origins: at most %d", len(have), maxOrigins)
	}
	for o := range have {
		if err := scope.ValidateNodeName(o); err != nil {
			return fmt.Errorf("claim for origin %q: %w", mesh.Clip(o), err)
		}
	}
	return nil
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
	if err := validateHave(r.Have); err != nil {
		return r, fmt.Errorf("replication request: %w", err)
	}
	return r, nil
}

// Frame types. Publisher to subscriber: start, snapshot begin/records/end,
// batch, error; to a subscriber that asked for relay filtering, first the
// relay frame, and filtered batches. Subscriber to publisher: ack, and
// (after the relay frame) its claims.
const (
	frameStart     = 'L' // log_id, from: the log follows from this offset, no snapshot
	frameSnapBegin = 'S' // log_id, offset, floor: a snapshot as of offset follows, of a copy complete below floor
	frameSnapRecs  = 'R' // count, entries: part of a snapshot
	frameSnapEnd   = 'Z' // the snapshot is complete; the log follows from offset+1
	frameBatch     = 'B' // first offset, count, entries: consecutive log entries
	frameError     = 'E' // message: the publisher refuses or stops
	frameAck       = 'A' // offset: applied up to here
	frameRelay     = 'Y' // the publisher filters what it sends by the subscriber's claims
	frameFiltered  = 'F' // first offset, span, entries: the entries of offsets first..first+span-1 the subscriber does not have, in order
	frameHave      = 'V' // count, (origin, hlc, live) sorted by origin: the subscriber's claims now
)

// frame is one decoded frame.
type frame struct {
	Type    byte
	LogID   string
	Offset  uint64 // start: from; snapshot begin: as-of offset; batch: first offset; ack
	Floor   uint64 // snapshot begin: the publisher is complete below this HLC (tables.Table.CompleteBelow)
	Span    uint64 // filtered batch: how many offsets it covers (at least len(Entries))
	Entries []wal.Entry
	Have    map[string]Claim // claims
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
	case frameFiltered:
		b = binary.AppendUvarint(b, f.Offset)
		b = binary.AppendUvarint(b, f.Span)
		b = wal.AppendBatch(b, f.Entries)
	case frameHave:
		origins := make([]string, 0, len(f.Have))
		for o := range f.Have {
			origins = append(origins, o)
		}
		slices.Sort(origins)
		b = binary.AppendUvarint(b, uint64(len(origins)))
		for _, o := range origins {
			c := f.Have[o]
			b = binary.AppendUvarint(b, uint64(len(o)))
			b = append(b, o...)
			b = binary.AppendUvarint(b, c.HLC)
			live := byte(0)
			if c.Live {
				live = 1
			}
			b = append(b, live)
		}
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
	case frameFiltered:
		if f.Offset, b, err = wal.Uvarint(b); err == nil {
			if f.Span, b, err = wal.Uvarint(b); err == nil {
				f.Entries, b, err = wal.DecodeBatch(b)
			}
		}
		if err == nil && (f.Offset == 0 || f.Span == 0 || f.Span > maxFilteredSpan || uint64(len(f.Entries)) > f.Span || f.Offset+f.Span < f.Offset) {
			err = fmt.Errorf("offset %d, span %d, %d entries", f.Offset, f.Span, len(f.Entries))
		}
	case frameHave:
		f.Have, b, err = decodeHave(b)
	case frameSnapRecs:
		f.Entries, b, err = wal.DecodeBatch(b)
	case frameAck:
		f.Offset, b, err = wal.Uvarint(b)
	case frameSnapEnd, frameRelay:
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

// maxFilteredSpan bounds the offsets one filtered batch covers: a
// publisher covers at most what it read in one go, maxBatchCount entries,
// and any skipped before them it did not report yet (a few batches).
const maxFilteredSpan = 1 << 20

// maxHaveFrame bounds a claims frame: maxOrigins names of at most 63
// bytes, each with a varint and a flag.
const maxHaveFrame = 1 + 10 + maxOrigins*(1+63+10+1)

// decodeHave reads a claims vector: origins valid node names, strictly
// ascending (so each once), live flags 0 or 1.
func decodeHave(b []byte) (map[string]Claim, []byte, error) {
	n, b, err := wal.Uvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > maxOrigins {
		return nil, nil, fmt.Errorf("claims for %d origins: at most %d", n, maxOrigins)
	}
	have := make(map[string]Claim, n)
	prev := ""
	for i := uint64(0); i < n; i++ {
		var name []byte
		if name, b, err = wal.Bytes(b, 64); err != nil {
			return nil, nil, fmt.Errorf("claim %d: %w", i, err)
		}
		o := string(name)
		if err := scope.ValidateNodeName(o); err != nil {
			return nil, nil, fmt.Errorf("claim %d: %w", i, err)
		}
		if i > 0 && o <= prev {
			return nil, nil, fmt.Errorf("claim %d: origin %q out of order", i, o)
		}
		var c Claim
		if c.HLC, b, err = wal.Uvarint(b); err != nil {
			return nil, nil, fmt.Errorf("claim %d: %w", i, err)
		}
		if len(b) == 0 || b[0] > 1 {
			return nil, nil, fmt.Errorf("claim %d: bad live flag", i)
		}
		c.Live, b = b[0] == 1, b[1:]
		have[o], prev = c, o
	}
	return have, b, nil
}
