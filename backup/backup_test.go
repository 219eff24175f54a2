package backup

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
)

func meta(name string, n uint64) TableMeta {
	return TableMeta{Name: name, ID: "0123456789abcdef-home", Scope: scope.Scope{All: true}, Home: "home",
		LogID: "log-" + name, AsOf: 42, Records: n}
}

// sample writes a file of two tables (one empty) with awkward records:
// NUL, invalid UTF-8, an empty value, a tombstone, a value big enough to
// close a frame early, and more records than one frame holds.
func sample(t testing.TB) ([]byte, map[string][]Record) {
	t.Helper()
	want := map[string][]Record{
		"fruit": {
			{Key: []byte("a\x00b"), Value: []byte{0xff, 0xfe, 0}, HLC: 7, Origin: "home"},
			{Key: []byte("empty"), Value: []byte{}, HLC: 8, Origin: "office"},
			{Key: []byte("gone"), Deleted: true, HLC: 9, Origin: "laptop"},
			{Key: []byte("large"), Value: bytes.Repeat([]byte("x"), frameBytes+10), HLC: 10, Origin: "home"},
		},
		"none": nil,
	}
	for i := range 2500 {
		want["fruit"] = append(want["fruit"], Record{Key: fmt.Appendf(nil, "k%05d", i), Value: fmt.Appendf(nil, "v%d", i), HLC: uint64(100 + i), Origin: "home"})
	}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, Header{Node: "home", Created: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Tables: []string{"fruit", "none"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fruit", "none"} {
		if err := w.Begin(meta(name, uint64(len(want[name])))); err != nil {
			t.Fatal(err)
		}
		for _, r := range want[name] {
			if err := w.Add(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.End(); err != nil {
			t.Fatal(err)
		}
	}
	m, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	if m.Size <= 0 || m.Size >= int64(buf.Len()) || len(m.Tables) != 2 || m.Tables[0].SHA256 == "" {
		t.Fatalf("manifest: %+v", m)
	}
	return buf.Bytes(), want
}

func TestRoundTrip(t *testing.T) {
	file, want := sample(t)
	got := map[string][]Record{}
	var metas []TableMeta
	m, err := Read(bytes.NewReader(file), Visitor{
		Table:  func(m TableMeta) (bool, error) { metas = append(metas, m); return true, nil },
		Record: func(m TableMeta, r Record) error { got[m.Name] = append(got[m.Name], r); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.Node != "home" || len(m.Tables) != 2 || m.Tables[0].Records != uint64(len(want["fruit"])) || m.Tables[1].Records != 0 ||
		m.Tables[0].AsOf != 42 || m.Tables[0].LogID != "log-fruit" || !m.Tables[0].Scope.All {
		t.Errorf("manifest: %+v", m)
	}
	if len(metas) != 2 || metas[0].Name != "fruit" {
		t.Errorf("sections: %+v", metas)
	}
	if len(got["fruit"]) != len(want["fruit"]) || len(got["none"]) != 0 {
		t.Fatalf("records: %d, want %d", len(got["fruit"]), len(want["fruit"]))
	}
	for i, w := range want["fruit"] {
		g := got["fruit"][i]
		if !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) || g.Deleted != w.Deleted || g.HLC != w.HLC || g.Origin != w.Origin {
			t.Fatalf("record %d: %+v, want %+v", i, g, w)
		}
	}
	// A table the visitor does not want: its records are checked, not handed over.
	n := 0
	if _, err := Read(bytes.NewReader(file), Visitor{
		Table:  func(m TableMeta) (bool, error) { return m.Name == "none", nil },
		Record: func(TableMeta, Record) error { n++; return nil },
	}); err != nil || n != 0 {
		t.Errorf("skipping a table: %d records, %v", n, err)
	}
}

// Every single byte changed, anywhere in the file, is detected, as is every
// truncation.
func TestEveryCorruptionAndTruncationDetected(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Header{Node: "home", Created: time.Unix(1, 0).UTC(), Tables: []string{"t"}})
	w.Begin(meta("t", 3))
	w.Add(Record{Key: []byte("a"), Value: []byte("1"), HLC: 1, Origin: "home"})
	w.Add(Record{Key: []byte("b"), Deleted: true, HLC: 2, Origin: "home"})
	w.Add(Record{Key: []byte("c"), Value: []byte{0}, HLC: 3, Origin: "x"})
	w.End()
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	file := buf.Bytes()
	if _, err := Verify(bytes.NewReader(file)); err != nil {
		t.Fatal(err)
	}
	for i := range file {
		for _, flip := range []byte{0x01, 0x80, 0xff} {
			bad := bytes.Clone(file)
			bad[i] ^= flip
			if _, err := Verify(bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("byte %d ^ %#x: %v, want ErrCorrupt", i, flip, err)
			}
		}
	}
	for n := range len(file) {
		if _, err := Verify(bytes.NewReader(file[:n])); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", n, err)
		} else if n > len(Magic) && !strings.Contains(err.Error(), "truncated") {
			t.Fatalf("truncated to %d bytes: %v, want it to say truncated", n, err)
		}
	}
	if _, err := Verify(bytes.NewReader(append(bytes.Clone(file), 0))); err == nil || !strings.Contains(err.Error(), "bytes follow the manifest") {
		t.Errorf("a byte after the manifest: %v", err)
	}
}

// Files that are intact frame by frame but wrong as a whole: a frame
// dropped, a section swapped for another file's, a table that is a
// system table, a record no node would hold.
func TestInconsistentFilesRefused(t *testing.T) {
	type edit func(w *Writer)
	write := func(tables []string, body edit) []byte {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, Header{Node: "home", Created: time.Unix(1, 0).UTC(), Tables: tables})
		body(w)
		w.Close()
		return buf.Bytes()
	}
	rec := Record{Key: []byte("k"), Value: []byte("v"), HLC: 1, Origin: "home"}
	cases := []struct {
		name, want string
		file       []byte
	}{
		{"header names another table", "the header names tables", write([]string{"x"}, func(w *Writer) {
			w.Begin(meta("t", 0))
			w.End()
		})},
		{"fewer records than announced", "records", func() []byte {
			var buf bytes.Buffer
			w, _ := NewWriter(&buf, Header{Node: "home", Tables: []string{"t"}})
			w.Begin(meta("t", 1))
			w.writeJSON(kindEnd, sectionEnd{Records: 0, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"})
			w.sec = nil
			w.writeJSON(kindManifest, Manifest{})
			w.bw.Flush()
			return buf.Bytes()
		}()},
		{"a system table", "system table", func() []byte {
			var buf bytes.Buffer
			w, _ := NewWriter(&buf, Header{Node: "home", Tables: []string{"cortex_acls"}})
			m := meta("cortex_acls", 0)
			w.writeJSON(kindTable, m)
			w.bw.Flush()
			return buf.Bytes()
		}()},
		{"a record with hlc 0", "hlc", func() []byte {
			var buf bytes.Buffer
			w, _ := NewWriter(&buf, Header{Node: "home", Tables: []string{"t"}})
			w.Begin(meta("t", 1))
			bad := rec
			bad.HLC = 0
			w.recs, w.recN = appendRecord(nil, bad), 1
			w.flushRecords()
			w.bw.Flush()
			return buf.Bytes()
		}()},
		{"aborted", "disk on fire", write([]string{"t"}, func(w *Writer) {
			w.Begin(meta("t", 1))
			w.Abort("disk on fire")
		})},
		{"not a backup", "not a cortex backup file", []byte("CXCKPT01 something else")},
	}
	for _, tc := range cases {
		if _, err := Verify(bytes.NewReader(tc.file)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}

func TestWriterRefusesInconsistentUse(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf, Header{Node: "home", Tables: []string{"t"}})
	if err := w.Add(Record{Key: []byte("k"), HLC: 1, Origin: "o"}); err == nil {
		t.Error("a record before Begin")
	}
	if err := w.Begin(meta("cortex_meta", 0)); err == nil {
		t.Error("a system table")
	}
	w.Begin(meta("t", 2))
	if err := w.Add(Record{Key: []byte("k"), Value: []byte("v"), Deleted: true, HLC: 1, Origin: "o"}); err == nil {
		t.Error("a tombstone with a value")
	}
	if err := w.End(); err == nil || !strings.Contains(err.Error(), "0 records written, 2 announced") {
		t.Errorf("End with a short count: %v", err)
	}
}

func TestVisitorErrorsPassThrough(t *testing.T) {
	file, _ := sample(t)
	stop := errors.New("stop here")
	if _, err := Read(bytes.NewReader(file), Visitor{Table: func(TableMeta) (bool, error) { return false, stop }}); err != stop {
		t.Errorf("Read returned %v, want the visitor's error as is", err)
	}
}
