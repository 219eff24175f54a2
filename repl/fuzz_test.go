package repl

import (
	"bytes"
	"maps"
	"testing"

	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// FuzzDecodeFrame: a replication frame from a peer decodes exactly or is
// refused; a decoded frame re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	e := wal.Entry{Op: wal.OpPut, Key: []byte("k"), Value: []byte("v"), Version: wal.Version{HLC: 7, Origin: "a"}}
	for _, fr := range []frame{
		{Type: frameStart, LogID: "0123", Offset: 5},
		{Type: frameSnapBegin, LogID: "ab", Offset: 9},
		{Type: frameSnapRecs, Entries: []wal.Entry{e}},
		{Type: frameSnapEnd},
		{Type: frameBatch, Offset: 3, Entries: []wal.Entry{e, e}},
		{Type: frameAck, Offset: 12},
		{Type: frameError, Message: "no"},
		{Type: frameRelay},
		{Type: frameFiltered, Offset: 3, Span: 4, Entries: []wal.Entry{e}},
		{Type: frameFiltered, Offset: 3, Span: 1},
		{Type: frameHave, Have: map[string]Claim{"a": {HLC: 9, Live: true}, "b": {HLC: 1}}},
	} {
		f.Add(encodeFrame(&fr))
	}
	f.Add([]byte{frameBatch, 1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			return
		}
		if fr.Type == frameBatch && (fr.Offset == 0 || len(fr.Entries) == 0) {
			t.Fatal("accepted an empty batch")
		}
		if fr.Type == frameFiltered && (fr.Offset == 0 || fr.Span == 0 || uint64(len(fr.Entries)) > fr.Span) {
			t.Fatalf("accepted a filtered batch of %d entries over %d offsets at %d", len(fr.Entries), fr.Span, fr.Offset)
		}
		if fr.Type == frameHave && validateHave(fr.Have) != nil {
			t.Fatalf("accepted claims %v", fr.Have)
		}
		if again := encodeFrame(&fr); fr.Type != frameError && !bytes.Equal(again, b) {
			// Non-canonical varints decode too; what decodes must re-decode the same.
			if fr2, err := decodeFrame(again); err != nil || fr2.Type != fr.Type || fr2.Offset != fr.Offset || fr2.Span != fr.Span || len(fr2.Entries) != len(fr.Entries) || !maps.Equal(fr2.Have, fr.Have) {
				t.Fatalf("frame does not round-trip: %v", err)
			}
		}
	})
}

func FuzzDecodeReplRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"table":"fruit","table_id":"abc","log_id":"def","from":3}`))
	f.Add([]byte(`{"v":1,"table":"Bad","table_id":"x"}`))
	f.Add([]byte(`{"v":1,"table":"fruit","table_id":"abc","from":3,"relay":true,"have":{"a":{"hlc":5,"live":true}}}`))
	f.Add([]byte(`{"v":1,"table":"fruit","table_id":"abc","relay":true,"have":{"Bad Name":{"hlc":5}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeRequest(b); err == nil && (r.TableID == "" || tables.ValidateName(r.Table, true) != nil || validateHave(r.Have) != nil) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
