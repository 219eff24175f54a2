package p2p

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// FuzzDecodeHello: any bytes from a peer are either a checked hello or an
// error; never a panic, never a member record that does not check.
func FuzzDecodeHello(f *testing.F) {
	f.Add([]byte(`{"v":1,"node":"a","time_ms":1700000000000}`))
	f.Add([]byte(`{"v":1,"node":"b","time_ms":1,"members":[{"value":{"node":"b","peer_id":"x","addrs":["127.0.0.1:1"]},"hlc":5,"origin":"b"}]}`))
	f.Add([]byte(`{"v":1,"error":"clock skew"}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"node":"a","members":[{"value":{"node":"c"},"hlc":1,"origin":"a"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := decodeHello(b)
		if err != nil || h.Error != "" {
			return
		}
		for _, m := range h.Members {
			if _, err := m.member(); err != nil {
				t.Fatalf("accepted a bad member: %v", err)
			}
			if e := m.entry("x"); e.Check() != nil && len(m.Value) > 0 {
				t.Fatalf("member record would not go into the log: %v", e.Check())
			}
		}
	})
}

// FuzzReadFrame: frames are read exactly or refused; the limit holds.
func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{0, 0, 0, 3, 'a', 'b', 'c'})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 9, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		payload, err := ReadFrame(bytes.NewReader(b), 64)
		if err != nil {
			return
		}
		if len(payload) > 64 {
			t.Fatalf("frame of %d bytes over the limit", len(payload))
		}
		var buf bytes.Buffer
		if WriteFrame(&buf, payload) != nil || !bytes.Equal(buf.Bytes(), b[:4+len(payload)]) {
			t.Fatal("frame does not round-trip")
		}
	})
}

func TestReadFrameLimit(t *testing.T) {
	_, err := ReadFrame(bytes.NewReader([]byte{0x7f, 0xff, 0xff, 0xff}), 1<<20)
	if !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("2 GiB frame: %v", err)
	}
}

// FuzzDecodeFrame: a replication frame from a peer decodes exactly or is
// refused; a decoded frame re-encodes to the same bytes.
func FuzzDecodeFrame(f *testing.F) {
	e := wal.Entry{Op: wal.OpPut, Key: []byte("k"), Value: []byte("v"), Version: wal.Version{HLC: 7, Origin: "a"}}
	for _, fr := range []replFrame{
		{Type: frameStart, LogID: "0123", Offset: 5},
		{Type: frameSnapBegin, LogID: "ab", Offset: 9},
		{Type: frameSnapRecs, Entries: []wal.Entry{e}},
		{Type: frameSnapEnd},
		{Type: frameBatch, Offset: 3, Entries: []wal.Entry{e, e}},
		{Type: frameAck, Offset: 12},
		{Type: frameError, Message: "no"},
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
		if again := encodeFrame(&fr); fr.Type != frameError && !bytes.Equal(again, b) {
			// Non-canonical varints decode too; what decodes must re-decode the same.
			if fr2, err := decodeFrame(again); err != nil || fr2.Type != fr.Type || fr2.Offset != fr.Offset || len(fr2.Entries) != len(fr.Entries) {
				t.Fatalf("frame does not round-trip: %v", err)
			}
		}
	})
}

func FuzzDecodeReplRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"table":"fruit","table_id":"abc","log_id":"def","from":3}`))
	f.Add([]byte(`{"v":1,"table":"Bad","table_id":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeReplRequest(b); err == nil && (r.TableID == "" || tables.ValidateName(r.Table, true) != nil) {
			t.Fatalf("accepted %+v", r)
		}
	})
}
