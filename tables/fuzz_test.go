package tables

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/wal"
)

func utRecord(op wal.Op, key, value string, hlc uint64, origin string) string {
	return encodeRecord(&wal.Entry{Op: op, Key: []byte(key), Value: []byte(value), Version: wal.Version{HLC: hlc, Origin: origin}})
}

func FuzzDecodeCheckpoint(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte(ckptMagic))
	for _, ck := range []CheckpointData{
		{},
		{LogID: "0123456789abcdef0123456789abcdef", Offset: 7, Clock: HLC(1700000000000, 1)},
		{
			LogID: "0123456789abcdef0123456789abcdef", Offset: 3, Clock: 99,
			Items: [][2]string{
				{"ka", utRecord(wal.OpPut, "a", "apple", 5, "n1")},
				{"kb", utRecord(wal.OpDelete, "b", "", 6, "n2")},
				{"kc", utRecord(wal.OpPut, "c", "", 7, "n1")},
			},
		},
	} {
		enc := utEncodeCheckpoint(ck)
		f.Add(enc)
		f.Add(enc[:len(enc)-4]) // the body alone: sealed by the target
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		utCheckDecodeCheckpoint(t, data)
		// The checksum stops almost every mutation at the door; the same
		// bytes with a valid checksum appended reach the parser behind it.
		sealed := binary.LittleEndian.AppendUint32(append([]byte{}, data...), crc32.Checksum(data, ckptCRC))
		utCheckDecodeCheckpoint(t, sealed)
	})
}

func utCheckDecodeCheckpoint(t *testing.T, data []byte) {
	t.Helper()
	ck, err := DecodeCheckpoint(data)
	if err != nil {
		if !errors.Is(err, errBadCheckpoint) {
			t.Fatalf("error %v does not wrap errBadCheckpoint", err)
		}
		if !reflect.DeepEqual(ck, CheckpointData{}) {
			t.Fatalf("error together with a result %+v", ck)
		}
		return
	}
	if !bytes.HasPrefix(data, []byte(ckptMagic)) {
		t.Fatal("decoded a file without the magic")
	}
	for i, it := range ck.Items {
		if !strings.HasPrefix(it[0], userKeyPrefix) {
			t.Fatalf("item %d key %q outside the user namespace", i, it[0])
		}
		// Whatever the records hold, reading them never panics.
		if r, err := decodeRecord(it[0][len(userKeyPrefix):], it[1]); err == nil {
			e := r.Entry()
			_ = encodeRecord(&e)
		}
	}
	// Re-encoding gives canonical bytes that decode to the same value, and
	// are never longer than the input (the input may use longer varints
	// than needed, nothing else).
	enc := utEncodeCheckpoint(ck)
	if len(enc) > len(data) {
		t.Fatalf("re-encoding is longer (%d) than the input (%d)", len(enc), len(data))
	}
	ck2, err := DecodeCheckpoint(enc)
	if err != nil {
		t.Fatalf("re-encoded checkpoint does not decode: %v", err)
	}
	if !reflect.DeepEqual(ck, ck2) {
		t.Fatalf("round trip changed the checkpoint:\n%+v\n%+v", ck, ck2)
	}
	if bytes.Equal(enc, data) != (len(enc) == len(data)) {
		t.Fatal("an input of canonical length re-encodes to other bytes")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add("k", "")
	f.Add("k", "\x00")
	f.Add("k", utRecord(wal.OpPut, "k", "value", 1, "node"))
	f.Add("k", utRecord(wal.OpDelete, "k", "", HLC(1700000000000, 9), "n"))
	f.Add("", utRecord(wal.OpPut, "", "", 0, ""))
	f.Add("key", "\x02\x01\x00\x00\x00\x00\x00\x00\x00\x05ab")
	f.Add("key", "\x00\x01\x00\x00\x00\x00\x00\x00\x00\xff")
	f.Add("node/a", encodeRecord(&wal.Entry{Op: wal.OpPut, Key: []byte("node/a"), Value: []byte("{}"), Version: wal.Version{HLC: 3, Origin: "a"}, Proof: []byte("sig")}))
	f.Add("t", encodeRecord(&wal.Entry{Op: wal.OpDelete, Key: []byte("t"), Version: wal.Version{HLC: 4, Origin: "a"}, Proof: []byte("sig")}))
	f.Add("key", "\x02\x01\x00\x00\x00\x00\x00\x00\x00\x01a\x05ab")
	f.Fuzz(func(t *testing.T, key, s string) {
		r, err := decodeRecord(key, s)
		v, ok := recordVersion(s)
		if err != nil {
			// Only the flags and the proof are checked by decodeRecord and
			// not by recordVersion.
			if ok && s[0]&^flagTombstone == 0 {
				t.Fatalf("recordVersion accepts %q, decodeRecord refuses it: %v", s, err)
			}
			return
		}
		if !ok {
			t.Fatalf("decodeRecord accepts %q, recordVersion refuses it", s)
		}
		if v != r.Version {
			t.Fatalf("recordVersion %+v, decodeRecord %+v", v, r.Version)
		}
		if string(r.Key) != key {
			t.Fatalf("key %q, want %q", r.Key, key)
		}
		if r.Deleted && r.Value != nil {
			t.Fatal("tombstone with a value")
		}
		// The record re-encodes to the same bytes (a tombstone drops
		// whatever followed its origin and proof); a proof length may be a
		// non-canonical varint, then the record decodes again the same.
		e := r.Entry()
		enc := encodeRecord(&e)
		want := s
		if r.Deleted {
			want = s[:10+len(r.Version.Origin)]
		}
		if r2, err := decodeRecord(key, enc); err != nil || !bytes.Equal(r2.Proof, r.Proof) || !bytes.Equal(r2.Value, r.Value) || r2.Version != r.Version || r2.Deleted != r.Deleted {
			t.Fatalf("re-encoded %q does not decode to the same record: %v", enc, err)
		}
		if len(r.Proof) == 0 && enc != want {
			t.Fatalf("re-encoded %q, want %q", enc, want)
		}
		// The result does not alias the input.
		if len(r.Value) > 0 {
			r.Value[0] ^= 0xff
			if r2, _ := decodeRecord(key, s); bytes.Equal(r2.Value, r.Value) {
				t.Fatal("the returned value aliases the input")
			}
		}
	})
}

// utEntriesFromBytes turns fuzz bytes into entries, 4 bytes each:
// op/key, clock, origin, value. Keys, clocks and origins come from small sets
// so that conflicts are common; a (key, version) always carries the same
// change, as in a real mesh.
func utEntriesFromBytes(data []byte) []wal.Entry {
	var out []wal.Entry
	seen := map[string]wal.Entry{}
	for ; len(data) >= 4 && len(out) < 64; data = data[4:] {
		key := []byte{'k', 'a' + data[0]%8}
		ver := wal.Version{HLC: uint64(data[1] % 16), Origin: []string{"a", "b", "ab", "c"}[data[2]%4]}
		id := string(key) + "|" + string(rune(ver.HLC)) + ver.Origin
		if e, ok := seen[id]; ok {
			out = append(out, e)
			continue
		}
		e := wal.Entry{Op: wal.OpPut, Key: key, Version: ver}
		if data[0]&0x80 != 0 {
			e.Op = wal.OpDelete
		} else {
			e.Value = bytes.Repeat([]byte{data[3]}, int(data[3]%5))
		}
		seen[id] = e
		out = append(out, e)
	}
	return out
}

// FuzzApply applies the entries the input describes to one copy in batches
// the input chooses and to another in reverse order, one at a time: both
// must hold the same records, agree with their own bookkeeping, and
// recover the same state from their directories.
func FuzzApply(f *testing.F) {
	f.Add([]byte{}, []byte{})
	f.Add([]byte{0, 1, 0, 3, 0, 2, 1, 4}, []byte{1})
	f.Add([]byte{0, 5, 0, 3, 0x80, 5, 1, 0, 0, 5, 1, 2, 0x81, 4, 2, 0}, []byte{2, 0})
	f.Add([]byte{0, 5, 0, 3, 0, 5, 0, 3, 0x80, 5, 3, 0, 0, 6, 2, 7, 1, 1, 1, 1}, []byte{0, 3, 1})
	f.Fuzz(func(t *testing.T, data, splits []byte) {
		entries := utEntriesFromBytes(data)
		ctx := context.Background()
		a, b := utNew(t, "fa"), utNew(t, "fb")
		adoptedA := 0
		for rest, i := entries, 0; len(rest) > 0; i++ {
			n := len(rest)
			if i < len(splits) {
				n = 1 + int(splits[i])%len(rest)
			}
			got, err := a.Apply(ctx, rest[:n])
			if err != nil {
				t.Fatal(err)
			}
			adoptedA += got
			rest = rest[n:]
		}
		for i := len(entries) - 1; i >= 0; i-- {
			if _, err := b.Apply(ctx, entries[i:i+1]); err != nil {
				t.Fatal(err)
			}
		}
		if uint64(adoptedA) != utLast(a) {
			t.Fatalf("adopted %d, the log holds %d", adoptedA, utLast(a))
		}
		sa, sb := utCheckConsistent(t, a), utCheckConsistent(t, b)
		utSameState(t, "two orders", sa, sb)
		if int64(len(utModel(entries))) != sa.Keys+sa.Tombstones {
			t.Fatalf("%d records, the model has %d", sa.Keys+sa.Tombstones, len(utModel(entries)))
		}

		// Recovery: a's log alone (crash copy), b through a checkpoint.
		crash := utCopyDir(t, a.Dir())
		ra := utOpen(t, crash, utOptions("fa"))
		utSameState(t, "a replayed", utCheckConsistent(t, ra), sa)
		dir := b.Dir()
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		rb := utOpen(t, dir, utOptions("fb"))
		utSameState(t, "b reopened", utCheckConsistent(t, rb), sa)
	})
}

// FuzzTimestampJSON: whatever a Timestamp accepts it writes back as a
// decimal string that decodes to the same value, and the number form and
// the string form of a value decode alike.
func FuzzTimestampJSON(f *testing.F) {
	for _, s := range []string{`"117717325913980935"`, `117717325913980935`, `"0"`, `null`, `""`, `"-1"`, `1e5`,
		`"18446744073709551615"`, `"18446744073709551616"`, `"007"`, `" 1"`, `"\u0031"`, `{}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var ts Timestamp
		if err := json.Unmarshal(data, &ts); err != nil {
			return
		}
		b, err := json.Marshal(ts)
		if err != nil {
			t.Fatalf("marshal %d: %v", ts, err)
		}
		if want := `"` + strconv.FormatUint(uint64(ts), 10) + `"`; string(b) != want {
			t.Fatalf("%q decoded to %d, which marshals to %s, want %s", data, ts, b, want)
		}
		var again, number Timestamp
		if err := json.Unmarshal(b, &again); err != nil || again != ts {
			t.Fatalf("%s decodes to %d, %v, want %d", b, again, err, ts)
		}
		if err := json.Unmarshal(b[1:len(b)-1], &number); err != nil || number != ts {
			t.Fatalf("the number %s decodes to %d, %v, want %d", b[1:len(b)-1], number, err, ts)
		}
	})
}
