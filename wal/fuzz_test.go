package wal

import (
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
