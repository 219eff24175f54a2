package repl

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/wal"
)

func TestRelay(t *testing.T) {
	ver := func(origin string, hlc uint64) wal.Version { return wal.Version{HLC: hlc, Origin: origin} }
	have := map[string]Claim{"o": {HLC: 100, Live: true}, "far": {HLC: 50}, "s": {HLC: 1 << 60, Live: true}, "p": {HLC: 1 << 60, Live: true}}
	for _, tc := range []struct {
		name string
		v    wal.Version
		have map[string]Claim
		want Decision
	}{
		{"the publisher's own write goes eagerly, whatever is claimed", ver("p", 5), have, Send},
		{"the subscriber's own write goes back to it: it never claims its own", ver("s", 5), have, Send},
		{"a third origin's entry at the claim is skipped", ver("o", 100), have, Skip},
		{"below the claim too", ver("o", 1), have, Skip},
		{"above the claim of an origin the subscriber follows: held", ver("o", 101), have, Hold},
		{"above the claim of an origin it does not follow (a chain): sent", ver("far", 51), have, Send},
		{"at the claim of an origin it no longer follows: still skipped (it holds it)", ver("far", 50), have, Skip},
		{"an origin it claims nothing of: sent", ver("new", 1), have, Send},
		{"an old subscriber (no claims): everything is sent", ver("o", 1), nil, Send},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Relay(tc.v, "p", "s", tc.have); got != tc.want {
				t.Fatalf("Relay(%v) = %v, want %v", tc.v, got, tc.want)
			}
		})
	}
}

func TestPlanBatch(t *testing.T) {
	ver := func(origin string, hlc uint64) wal.Version { return wal.Version{HLC: hlc, Origin: origin} }
	have := map[string]Claim{"o": {HLC: 100, Live: true}, "far": {HLC: 50}}
	batch := []wal.Version{ver("p", 1), ver("o", 90), ver("far", 60), ver("o", 101), ver("p", 2)}
	for _, tc := range []struct {
		name string
		vs   []wal.Version
		wait bool
		send string
		n    int
	}{
		{"waiting: stop at the first held entry", batch, true, "[true false true]", 3},
		{"not waiting: a held entry is sent", batch, false, "[true false true true true]", 5},
		{"a held entry first: nothing to cover yet", batch[3:], true, "[]", 0},
		{"only skips", []wal.Version{ver("o", 1), ver("o", 2)}, true, "[false false]", 2},
		{"empty", nil, true, "[]", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			send, n := PlanBatch(tc.vs, "p", "s", have, tc.wait)
			if fmt.Sprint(send) != tc.send || n != tc.n {
				t.Fatalf("PlanBatch = %v, %d; want %s, %d", send, n, tc.send, tc.n)
			}
		})
	}
}

// Claims from a peer decode exactly or are refused.
func TestDecodeClaims(t *testing.T) {
	e := wal.Entry{Op: wal.OpPut, Key: []byte("k"), Version: wal.Version{HLC: 1, Origin: "a"}}
	good := encodeFrame(&frame{Type: frameHave, Have: map[string]Claim{"a": {HLC: 9, Live: true}, "b": {HLC: 1}}})
	if f, err := decodeFrame(good); err != nil || f.Have["a"] != (Claim{9, true}) || f.Have["b"] != (Claim{1, false}) {
		t.Fatalf("decode %v: %+v", err, f)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		err  string
	}{
		{"a bad name", []byte{frameHave, 1, 3, 'B', 'a', 'd', 1, 0}, "claim 0"},
		{"out of order", []byte{frameHave, 2, 1, 'b', 1, 0, 1, 'a', 1, 0}, "out of order"},
		{"twice", []byte{frameHave, 2, 1, 'a', 1, 0, 1, 'a', 1, 0}, "out of order"},
		{"a bad live flag", []byte{frameHave, 1, 1, 'a', 1, 2}, "live flag"},
		{"too many", []byte{frameHave, 0x81, 0x08}, "at most 1024"},
		{"trailing bytes", append(append([]byte{}, good...), 0), "trailing"},
		{"a filtered batch of more entries than offsets", encodeFrame(&frame{Type: frameFiltered, Offset: 1, Span: 1, Entries: []wal.Entry{e, e}}), "span 1, 2 entries"},
		{"a filtered batch of no offsets", []byte{frameFiltered, 1, 0, 0}, "span 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeFrame(tc.b); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("decode: %v, want an error with %q", err, tc.err)
			}
		})
	}
	if _, err := decodeRequest([]byte(`{"v":1,"table":"fruit","table_id":"x","have":{"Bad":{"hlc":1}}}`)); err == nil {
		t.Fatal("a request with a bad origin in its claims was accepted")
	}
}
