package wal

import (
	"encoding/binary"
	"errors"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to Decode. It must never panic; it must
// either reject the input with ErrBadEntry or return an entry that satisfies
// every rule of the format and survives an encode/decode roundtrip. The seed
// corpus is in testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	for _, e := range []Entry{
		{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Version: Version{HLC: 1, Origin: "n1"}},
		{Op: OpPut, Key: []byte("key"), Value: pattern(130, 1), Version: Version{HLC: 1 << 50, Origin: "node-a"}},
		{Op: OpDelete, Key: []byte("gone"), Version: Version{HLC: 2, Origin: "n2"}},
		{Op: OpPut, Key: []byte("node/a"), Value: []byte("{}"), Version: Version{HLC: 3, Origin: "a"}, Proof: []byte("signed")},
		{Op: OpDelete, Key: []byte("table/t/x"), Version: Version{HLC: 4, Origin: "a"}, Proof: pattern(300, 2)},
	} {
		f.Add(AppendEncode(nil, &e))
	}
	f.Add([]byte{})
	f.Add(make([]byte, minEntrySize))

	f.Fuzz(func(t *testing.T, data []byte) {
		orig := append([]byte(nil), data...)
		e, err := Decode(data)
		if string(data) != string(orig) {
			t.Fatal("Decode modified its input")
		}
		if err != nil {
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("error %q does not wrap ErrBadEntry", err)
			}
			return
		}
		switch {
		case e.Op != OpPut && e.Op != OpDelete:
			t.Fatalf("accepted op %d", e.Op)
		case e.Version.Origin == "" || len(e.Version.Origin) > MaxOriginSize:
			t.Fatalf("accepted an origin of %d bytes", len(e.Version.Origin))
		case len(e.Key) == 0 || len(e.Key) > MaxKeySize:
			t.Fatalf("accepted a key of %d bytes", len(e.Key))
		case len(e.Value) > MaxValueSize:
			t.Fatalf("accepted a value of %d bytes", len(e.Value))
		case e.Op == OpDelete && len(e.Value) != 0:
			t.Fatal("accepted a delete with a value")
		case len(e.Proof) > MaxProofSize:
			t.Fatalf("accepted a proof of %d bytes", len(e.Proof))
		}
		// Lengths may be encoded with redundant varint bytes, so the bytes
		// need not match, but the entry must survive a roundtrip, and the
		// canonical form is never longer than the input.
		enc := AppendEncode(nil, &e)
		if len(enc) > len(data) {
			t.Fatalf("re-encoding is %d bytes, longer than the %d accepted", len(enc), len(data))
		}
		e2, err := Decode(enc)
		if err != nil {
			t.Fatalf("re-encoded entry does not decode: %v", err)
		}
		if !entriesEqual(e, e2) {
			t.Fatalf("roundtrip changed the entry: %+v -> %+v", e, e2)
		}
		// Any strict prefix must be rejected.
		if len(data) > 0 {
			if _, err := Decode(data[:len(data)-1]); !errors.Is(err, ErrBadEntry) {
				t.Fatalf("a prefix of an accepted entry gave err %v", err)
			}
		}
	})
}

// frameSegment frames entries as tidwall/wal writes them in a segment file.
func frameSegment(entries ...Entry) []byte {
	var seg []byte
	for i := range entries {
		enc := AppendEncode(nil, &entries[i])
		seg = append(binary.AppendUvarint(seg, uint64(len(enc))), enc...)
	}
	return seg
}

// FuzzScanSegment feeds arbitrary bytes, as a segment file, to the frame
// scanner that both Open's torn-tail repair and the read-only inspector use.
// It must never panic nor modify its input, and what it reports must match
// an independent walk of the frames: the intact prefix, the bad frame, and
// whether an intact entry follows it. The seed corpus is in
// testdata/fuzz/FuzzScanSegment.
func FuzzScanSegment(f *testing.F) {
	seg := frameSegment(testEntries(1, 5)...)
	f.Add(seg)
	f.Add(seg[:len(seg)-3])                       // torn tail
	f.Add(append(append([]byte{}, seg...), 0, 0)) // zeros after
	f.Add(append([]byte{0x05, 'a', 'b'}, seg...)) // garbage, then intact frames
	f.Add(append(append([]byte{}, seg...), 0xff)) // incomplete uvarint
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		orig := append([]byte(nil), data...)
		sc := scanSegment(data)
		if string(data) != string(orig) {
			t.Fatal("scanSegment modified its input")
		}
		// Walk the intact prefix independently.
		pos, n := 0, 0
		for pos < len(data) {
			size, k := binary.Uvarint(data[pos:])
			if k <= 0 || size > uint64(len(data)-pos-k) {
				break
			}
			if _, err := Decode(data[pos+k : pos+k+int(size)]); err != nil {
				break
			}
			pos += k + int(size)
			n++
		}
		if sc.end != pos || sc.entries != n {
			t.Fatalf("scanSegment: end %d entries %d, independent walk: %d, %d", sc.end, sc.entries, pos, n)
		}
		if (sc.bad == nil) != (pos == len(data)) {
			t.Fatalf("bad = %v with end %d of %d bytes", sc.bad, sc.end, len(data))
		}
		if sc.bad == nil {
			if sc.next != -1 || sc.torn() {
				t.Fatalf("clean segment: next %d torn %v", sc.next, sc.torn())
			}
			return
		}
		if sc.torn() != (sc.next < 0) {
			t.Fatal("torn() disagrees with next")
		}
		if sc.next >= 0 {
			// An intact frame starts at next, and none between end+1 and next.
			if sc.next <= sc.end {
				t.Fatalf("next %d is not after end %d", sc.next, sc.end)
			}
			size, k := nextFrame(data[sc.next:])
			if k <= 0 {
				t.Fatalf("no frame at next %d", sc.next)
			}
			if _, err := Decode(data[sc.next+k : sc.next+k+size]); err != nil {
				t.Fatalf("the frame at next %d does not decode: %v", sc.next, err)
			}
		}
		for i := sc.end + 1; i < len(data) && (sc.next < 0 || i < sc.next); i++ {
			if size, k := nextFrame(data[i:]); k > 0 {
				if _, err := Decode(data[i+k : i+k+size]); err == nil {
					t.Fatalf("an intact frame at %d, before next %d", i, sc.next)
				}
			}
		}
	})
}
