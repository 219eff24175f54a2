package wal

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
)

// pattern returns n deterministic, non-constant bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31) ^ seed
	}
	return b
}

// reseal recomputes the trailing CRC of an encoded entry after the body was
// edited, so that a test reaches the check after the checksum.
func reseal(enc []byte) []byte {
	body := enc[:len(enc)-crcSize]
	out := append([]byte(nil), body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

// seal builds an encoded entry from a raw body (everything before the CRC).
func seal(body []byte) []byte {
	out := append([]byte(nil), body...)
	return binary.LittleEndian.AppendUint32(out, crc32.Checksum(body, castagnoli))
}

// rawBody builds a body by hand, so that length fields can lie.
func rawBody(format, op byte, hlc uint64, parts ...[]byte) []byte {
	b := []byte{format, op}
	b = binary.LittleEndian.AppendUint64(b, hlc)
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func uv(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func encode(e Entry) []byte { return AppendEncode(nil, &e) }

func entriesEqual(a, b Entry) bool {
	return a.Op == b.Op && a.Version == b.Version && bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) && bytes.Equal(a.Proof, b.Proof)
}

func TestDecodeRoundtrip(t *testing.T) {
	tests := []struct {
		name string
		e    Entry
	}{
		{"put small", Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Version: Version{HLC: 1, Origin: "n1"}}},
		{"put empty value", Entry{Op: OpPut, Key: []byte("k"), Value: nil, Version: Version{HLC: 7, Origin: "n1"}}},
		{"put hlc zero", Entry{Op: OpPut, Key: []byte("key"), Value: []byte("x"), Version: Version{HLC: 0, Origin: "a"}}},
		{"put hlc max", Entry{Op: OpPut, Key: []byte("key"), Value: []byte("x"), Version: Version{HLC: ^uint64(0), Origin: "z"}}},
		{"put value 127", Entry{Op: OpPut, Key: []byte("k"), Value: pattern(127, 1), Version: Version{HLC: 2, Origin: "n"}}},
		{"put value 128 (2-byte varint)", Entry{Op: OpPut, Key: []byte("k"), Value: pattern(128, 2), Version: Version{HLC: 3, Origin: "n"}}},
		{"put value 16383", Entry{Op: OpPut, Key: []byte("k"), Value: pattern(16383, 3), Version: Version{HLC: 4, Origin: "n"}}},
		{"put value 16384 (3-byte varint)", Entry{Op: OpPut, Key: []byte("k"), Value: pattern(16384, 4), Version: Version{HLC: 5, Origin: "n"}}},
		{"put value 1 MiB", Entry{Op: OpPut, Key: []byte("big"), Value: pattern(1<<20, 5), Version: Version{HLC: 6, Origin: "n"}}},
		{"put key 128", Entry{Op: OpPut, Key: pattern(128, 6), Value: []byte("v"), Version: Version{HLC: 8, Origin: "n"}}},
		{"put max key", Entry{Op: OpPut, Key: pattern(MaxKeySize, 7), Value: []byte("v"), Version: Version{HLC: 9, Origin: "n"}}},
		{"put max origin", Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Version: Version{HLC: 10, Origin: strings.Repeat("o", MaxOriginSize)}}},
		{"put binary key and value", Entry{Op: OpPut, Key: []byte{0, 0xff, 1}, Value: []byte{0, 0, 0}, Version: Version{HLC: 11, Origin: "\x00n"}}},
		{"delete", Entry{Op: OpDelete, Key: []byte("gone"), Version: Version{HLC: 12, Origin: "n2"}}},
		{"delete long key", Entry{Op: OpDelete, Key: pattern(300, 8), Version: Version{HLC: 1 << 40, Origin: "node-with-a-longer-name"}}},
		{"put with proof", Entry{Op: OpPut, Key: []byte("node/a"), Value: []byte("{}"), Version: Version{HLC: 13, Origin: "a"}, Proof: pattern(700, 9)}},
		{"delete with max proof", Entry{Op: OpDelete, Key: []byte("k"), Version: Version{HLC: 14, Origin: "a"}, Proof: pattern(MaxProofSize, 10)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc := encode(tc.e)
			got, err := Decode(enc)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !entriesEqual(got, tc.e) {
				t.Fatalf("roundtrip mismatch: got op=%v ver=%+v key=%d bytes value=%d bytes", got.Op, got.Version, len(got.Key), len(got.Value))
			}
			// Key and value must be capped so that appending to them cannot
			// overwrite the bytes that follow in the decoded buffer.
			if cap(got.Key) != len(got.Key) || cap(got.Value) != len(got.Value) {
				t.Fatalf("key/value not capped: cap(key)=%d len=%d cap(value)=%d len=%d", cap(got.Key), len(got.Key), cap(got.Value), len(got.Value))
			}
			// AppendEncode appends: an entry encoded after a prefix decodes
			// from the suffix, and the prefix is untouched.
			prefix := []byte("prefix")
			buf := AppendEncode(append([]byte(nil), prefix...), &tc.e)
			if !bytes.Equal(buf[:len(prefix)], prefix) {
				t.Fatalf("AppendEncode changed the prefix: %q", buf[:len(prefix)])
			}
			if !bytes.Equal(buf[len(prefix):], enc) {
				t.Fatalf("AppendEncode after a prefix differs from AppendEncode(nil)")
			}
			if got2, err := Decode(buf[len(prefix):]); err != nil || !entriesEqual(got2, tc.e) {
				t.Fatalf("decode after prefix: %v", err)
			}
		})
	}
}

func TestDecodeBad(t *testing.T) {
	good := encode(Entry{Op: OpPut, Key: []byte("key"), Value: []byte("value"), Version: Version{HLC: 42, Origin: "n1"}})
	edit := func(f func(b []byte)) []byte {
		b := append([]byte(nil), good...)
		f(b)
		return b
	}
	tests := []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"nil", nil, "too short"},
		{"empty", []byte{}, "too short"},
		{"one byte short of minimum", make([]byte, minEntrySize-1), "too short"},
		{"good entry cut by one byte", good[:len(good)-1], "checksum mismatch"},
		{"minimum size zeros", make([]byte, minEntrySize), "checksum mismatch"},
		{"crc byte flipped", edit(func(b []byte) { b[len(b)-1] ^= 0x01 }), "checksum mismatch"},
		{"value byte flipped", edit(func(b []byte) { b[len(b)-crcSize-1] ^= 0x80 }), "checksum mismatch"},
		{"hlc byte flipped", edit(func(b []byte) { b[3] ^= 0xff }), "checksum mismatch"},
		{"unknown format 0", reseal(edit(func(b []byte) { b[0] = 0 })), "unknown format 0"},
		{"unknown format 3", reseal(edit(func(b []byte) { b[0] = 3 })), "unknown format 3"},
		{"format 2 without a proof", reseal(edit(func(b []byte) { b[0] = 2 })), "bad proof length"},
		{"format 2 with an empty proof", seal(rawBody(2, byte(OpPut), 1, uv(1), []byte("n"), uv(1), []byte("k"), uv(0), uv(0))), "empty proof"},
		{"proof too long", seal(rawBody(2, byte(OpPut), 1, uv(1), []byte("n"), uv(1), []byte("k"), uv(0), uv(MaxProofSize+1))), "proof length 16385 out of range"},
		{"unknown op 0", reseal(edit(func(b []byte) { b[1] = 0 })), "unknown op 0"},
		{"unknown op 3", reseal(edit(func(b []byte) { b[1] = 3 })), "unknown op 3"},
		{"unknown op 255", reseal(edit(func(b []byte) { b[1] = 255 })), "unknown op 255"},
		{"empty origin", encode(Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Version: Version{HLC: 1}}), "empty origin"},
		{"empty key", encode(Entry{Op: OpPut, Value: []byte("v"), Version: Version{HLC: 1, Origin: "n"}}), "empty key"},
		{"empty key delete", encode(Entry{Op: OpDelete, Version: Version{HLC: 1, Origin: "n"}}), "empty key"},
		{"delete with value", encode(Entry{Op: OpDelete, Key: []byte("k"), Value: []byte("v"), Version: Version{HLC: 1, Origin: "n"}}), "delete with a value"},
		{"origin too long", encode(Entry{Op: OpPut, Key: []byte("k"), Value: []byte("v"), Version: Version{HLC: 1, Origin: strings.Repeat("o", MaxOriginSize+1)}}), "origin length 256 out of range"},
		{"key too long", encode(Entry{Op: OpPut, Key: make([]byte, MaxKeySize+1), Value: []byte("v"), Version: Version{HLC: 1, Origin: "n"}}), "key length 65537 out of range"},
		{"value length over max", seal(rawBody(1, byte(OpPut), 1, uv(1), []byte("n"), uv(1), []byte("k"), uv(MaxValueSize+1))), "value length 67108865 out of range"},
		{"origin length past end", seal(rawBody(1, byte(OpPut), 1, uv(50), []byte("n"), uv(1), []byte("k"), uv(0))), "origin length 50 out of range"},
		{"key length past end", seal(rawBody(1, byte(OpPut), 1, uv(1), []byte("n"), uv(9), []byte("k"), uv(0))), "key length 9 out of range"},
		{"value length past end", seal(rawBody(1, byte(OpPut), 1, uv(1), []byte("n"), uv(1), []byte("k"), uv(2), []byte("v"))), "value length 2 out of range"},
		{"value length huge", seal(rawBody(1, byte(OpPut), 1, uv(1), []byte("n"), uv(1), []byte("k"), uv(^uint64(0)))), "value length 18446744073709551615 out of range"},
		{"origin length varint overflows", seal(rawBody(1, byte(OpPut), 1, bytes.Repeat([]byte{0xff}, 11), []byte("nk"))), "bad origin length"},
		{"origin length varint unterminated", seal(rawBody(1, byte(OpPut), 1, []byte{0x80, 0x80, 0x80})), "bad origin length"},
		{"missing key length", seal(rawBody(1, byte(OpPut), 1, uv(3), []byte("abc"))), "bad key length"},
		{"missing value length", seal(rawBody(1, byte(OpPut), 1, uv(1), []byte("n"), uv(2), []byte("kk"))), "bad value length"},
		{"one trailing byte", seal(append(append([]byte(nil), good[:len(good)-crcSize]...), 0)), "1 trailing bytes"},
		{"two entries resealed as one", seal(append(append([]byte(nil), good[:len(good)-crcSize]...), good...)), "trailing bytes"},
		{"two entries back to back", append(append([]byte(nil), good...), good...), "checksum mismatch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := decodeNoPanic(t, tc.data)
			if err == nil {
				t.Fatalf("Decode accepted bad input: %+v", e)
			}
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("error %q does not wrap ErrBadEntry", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestDecodeEveryDamage checks every prefix and every single-byte change of
// valid encodings: each must be rejected with ErrBadEntry, without a panic.
func TestDecodeEveryDamage(t *testing.T) {
	for _, e := range []Entry{
		{Op: OpPut, Key: []byte("key"), Value: pattern(200, 9), Version: Version{HLC: 99, Origin: "node"}},
		{Op: OpDelete, Key: []byte("k"), Version: Version{HLC: 1, Origin: "n"}},
	} {
		enc := encode(e)
		for n := 0; n < len(enc); n++ {
			if _, err := decodeNoPanic(t, enc[:n]); !errors.Is(err, ErrBadEntry) {
				t.Fatalf("prefix of %d/%d bytes: err = %v, want ErrBadEntry", n, len(enc), err)
			}
		}
		for i := range enc {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				b := append([]byte(nil), enc...)
				b[i] ^= x
				if _, err := decodeNoPanic(t, b); !errors.Is(err, ErrBadEntry) {
					t.Fatalf("byte %d ^ %#x: err = %v, want ErrBadEntry", i, x, err)
				}
			}
		}
	}
}

func decodeNoPanic(t *testing.T, data []byte) (e Entry, err error) {
	t.Helper()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Decode(%x) panicked: %v", data, r)
		}
	}()
	return Decode(data)
}

func TestVersionCompare(t *testing.T) {
	tests := []struct {
		name string
		v, w Version
		want int
	}{
		{"equal", Version{5, "a"}, Version{5, "a"}, 0},
		{"equal zero", Version{}, Version{}, 0},
		{"older hlc", Version{4, "z"}, Version{5, "a"}, -1},
		{"newer hlc", Version{6, "a"}, Version{5, "z"}, 1},
		{"hlc dominates origin", Version{1, "zzz"}, Version{2, ""}, -1},
		{"max hlc", Version{^uint64(0), "a"}, Version{^uint64(0) - 1, "b"}, 1},
		{"same hlc origin smaller", Version{5, "a"}, Version{5, "b"}, -1},
		{"same hlc origin larger", Version{5, "b"}, Version{5, "a"}, 1},
		{"same hlc prefix origin is older", Version{5, "n"}, Version{5, "n1"}, -1},
		{"same hlc bytewise order", Version{5, "Z"}, Version{5, "a"}, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.v.Compare(tc.w); got != tc.want {
				t.Fatalf("%+v.Compare(%+v) = %d, want %d", tc.v, tc.w, got, tc.want)
			}
			if got := tc.w.Compare(tc.v); got != -tc.want {
				t.Fatalf("antisymmetry: %+v.Compare(%+v) = %d, want %d", tc.w, tc.v, got, -tc.want)
			}
		})
	}
}

func TestOpString(t *testing.T) {
	for op, want := range map[Op]string{OpPut: "put", OpDelete: "del", 0: "op(0)", 7: "op(7)"} {
		if got := op.String(); got != want {
			t.Errorf("Op(%d).String() = %q, want %q", byte(op), got, want)
		}
	}
}
