package backup

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

// FuzzRead: Read never panics, and whatever it accepts is a file that reads
// the same again and whose records a node would hold.
func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Header{Node: "home", Created: time.Unix(1, 0).UTC(), Tables: []string{"t"}})
	w.Begin(meta("t", 2))
	w.Add(Record{Key: []byte("a\x00"), Value: []byte{0xff}, HLC: 1, Origin: "home"})
	w.Add(Record{Key: []byte("b"), Deleted: true, HLC: 2, Origin: "home"})
	w.End()
	w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte(Magic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var recs []Record
		m, err := Read(bytes.NewReader(data), Visitor{
			Table: func(TableMeta) (bool, error) { return true, nil },
			Record: func(_ TableMeta, r Record) error {
				if err := r.Check(); err != nil {
					t.Fatalf("a record that fails its check was handed over: %v", err)
				}
				recs = append(recs, r)
				return nil
			},
		})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrAborted) {
				t.Fatalf("an error that is neither ErrCorrupt nor ErrAborted: %v", err)
			}
			return
		}
		n := uint64(0)
		for _, tm := range m.Tables {
			n += tm.Records
		}
		if n != uint64(len(recs)) {
			t.Fatalf("manifest counts %d records, %d read", n, len(recs))
		}
	})
}
