package repl

import (
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// The subscriber's side of a stream, frame by frame.
func TestSubscriptionSteps(t *testing.T) {
	e := wal.Entry{Op: wal.OpPut, Key: []byte("k"), Value: []byte("v"), Version: wal.Version{HLC: 1, Origin: "a"}}
	type step struct {
		f      frame
		apply  int            // entries to apply
		cursor *tables.Cursor // to save and acknowledge
		err    string         // the step fails with this
	}
	cur := func(id string, off uint64) *tables.Cursor { return &tables.Cursor{LogID: id, Offset: off} }
	for _, tc := range []struct {
		name  string
		from  tables.Cursor
		steps []step
	}{
		{"snapshot, then the log", tables.Cursor{}, []step{
			{f: frame{Type: frameSnapBegin, LogID: "L", Offset: 9}},
			{f: frame{Type: frameSnapRecs, Entries: []wal.Entry{e, e}}, apply: 2},
			{f: frame{Type: frameSnapEnd}, cursor: cur("L", 9)},
			{f: frame{Type: frameBatch, Offset: 10, Entries: []wal.Entry{e, e, e}}, apply: 3, cursor: cur("L", 12)},
			{f: frame{Type: frameBatch, Offset: 13, Entries: []wal.Entry{e}}, apply: 1, cursor: cur("L", 13)},
		}},
		{"resume from the cursor", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameStart, LogID: "L", Offset: 41}, cursor: cur("L", 40)},
			{f: frame{Type: frameBatch, Offset: 41, Entries: []wal.Entry{e}}, apply: 1, cursor: cur("L", 41)},
		}},
		{"cursor truncated from the log: a snapshot of another log", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameSnapBegin, LogID: "M", Offset: 3}},
			{f: frame{Type: frameSnapEnd}, cursor: cur("M", 3)},
		}},
		{"resumed elsewhere than asked", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameStart, LogID: "L", Offset: 30}, err: "not at our cursor"},
		}},
		{"a gap in the log", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameStart, LogID: "L", Offset: 41}, cursor: cur("L", 40)},
			{f: frame{Type: frameBatch, Offset: 43, Entries: []wal.Entry{e}}, err: "expected 41"},
		}},
		{"records outside a snapshot", tables.Cursor{}, []step{
			{f: frame{Type: frameSnapRecs, Entries: []wal.Entry{e}}, err: "outside a snapshot"},
		}},
		{"a batch before the start", tables.Cursor{}, []step{
			{f: frame{Type: frameBatch, Offset: 1, Entries: []wal.Entry{e}}, err: "expected 0"},
		}},
		{"records after the snapshot ended", tables.Cursor{}, []step{
			{f: frame{Type: frameSnapBegin, LogID: "L", Offset: 1}},
			{f: frame{Type: frameSnapEnd}, cursor: cur("L", 1)},
			{f: frame{Type: frameSnapRecs, Entries: []wal.Entry{e}}, err: "outside a snapshot"},
		}},
		{"filtered: the relay frame, then batches that cover skipped offsets", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameRelay}},
			{f: frame{Type: frameStart, LogID: "L", Offset: 41}, cursor: cur("L", 40)},
			{f: frame{Type: frameFiltered, Offset: 41, Span: 5, Entries: []wal.Entry{e, e}}, apply: 2, cursor: cur("L", 45)},
			{f: frame{Type: frameFiltered, Offset: 46, Span: 3}, cursor: cur("L", 48)},
			{f: frame{Type: frameBatch, Offset: 49, Entries: []wal.Entry{e}}, apply: 1, cursor: cur("L", 49)},
		}},
		{"filtered after a snapshot", tables.Cursor{}, []step{
			{f: frame{Type: frameRelay}},
			{f: frame{Type: frameSnapBegin, LogID: "L", Offset: 9}},
			{f: frame{Type: frameSnapEnd}, cursor: cur("L", 9)},
			{f: frame{Type: frameFiltered, Offset: 10, Span: 1}, cursor: cur("L", 10)},
		}},
		{"a filtered batch without the relay frame", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameStart, LogID: "L", Offset: 41}, cursor: cur("L", 40)},
			{f: frame{Type: frameFiltered, Offset: 41, Span: 1}, err: "did not say it filters"},
		}},
		{"a gap before a filtered batch", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameRelay}},
			{f: frame{Type: frameStart, LogID: "L", Offset: 41}, cursor: cur("L", 40)},
			{f: frame{Type: frameFiltered, Offset: 42, Span: 1}, err: "expected 41"},
		}},
		{"the relay frame after the start", tables.Cursor{LogID: "L", Offset: 40}, []step{
			{f: frame{Type: frameStart, LogID: "L", Offset: 41}, cursor: cur("L", 40)},
			{f: frame{Type: frameRelay}, err: "out of place"},
		}},
		{"the publisher refuses", tables.Cursor{}, []step{
			{f: frame{Type: frameError, Message: "c is not in the scope"}, err: "the publisher says: c is not in the scope"},
		}},
		{"an acknowledgement from the publisher", tables.Cursor{}, []step{
			{f: frame{Type: frameAck, Offset: 3}, err: "unexpected frame"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sub, req := newSubscription("t", "id", tc.from, map[string]Claim{"b": {HLC: 3}})
			if req.LogID != tc.from.LogID || req.From != tc.from.Offset+1 || !req.Relay || req.Have["b"].HLC != 3 {
				t.Fatalf("request %+v from cursor %+v", req, tc.from)
			}
			for i, st := range tc.steps {
				r, err := sub.Step(st.f)
				if st.err != "" {
					if err == nil || !strings.Contains(err.Error(), st.err) {
						t.Fatalf("step %d: %v, want an error with %q", i, err, st.err)
					}
					if len(r.Apply) != 0 || r.Cursor != nil {
						t.Fatalf("step %d: a failed step says to do %+v", i, r)
					}
					return
				}
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if len(r.Apply) != st.apply || (r.Cursor == nil) != (st.cursor == nil) || r.Cursor != nil && *r.Cursor != *st.cursor {
					t.Fatalf("step %d: %+v, want %d to apply and cursor %+v", i, r, st.apply, st.cursor)
				}
			}
		})
	}
}
