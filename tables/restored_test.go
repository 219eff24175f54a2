package tables

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/wal"
)

func TestLostEntries(t *testing.T) {
	pos := LogPosition{ID: "L", OpenedLast: 10, Served: 0}
	cases := []struct {
		name  string
		claim LogClaim
		pos   LogPosition
		want  bool
	}{
		{"a cursor within the log as opened", LogClaim{LogID: "L", Offset: 7}, pos, false},
		{"a cursor at the log's end", LogClaim{LogID: "L", Offset: 10}, pos, false},
		{"past the end at open, never served: restored", LogClaim{LogID: "L", Offset: 11}, pos, true},
		{"far past the end", LogClaim{LogID: "L", Offset: 1 << 40}, pos, true},
		{"past the end at open, but served since", LogClaim{LogID: "L", Offset: 25}, LogPosition{ID: "L", OpenedLast: 10, Served: 30}, false},
		{"past what was served and the end at open", LogClaim{LogID: "L", Offset: 31}, LogPosition{ID: "L", OpenedLast: 10, Served: 30}, true},
		// The log grew past the claim after the restore, before the peer
		// came: its offsets 11..25 are other entries than the peer applied.
		{"the log grew past the claim since it opened", LogClaim{LogID: "L", Offset: 25}, LogPosition{ID: "L", OpenedLast: 10}, true},
		{"another log's cursor", LogClaim{LogID: "M", Offset: 99}, pos, false},
		{"no cursor", LogClaim{Offset: 99}, LogPosition{OpenedLast: 0}, false},
		{"an empty log opened, a cursor in it", LogClaim{LogID: "L", Offset: 1}, LogPosition{ID: "L"}, true},
		{"an empty log opened, cursor 0", LogClaim{LogID: "L", Offset: 0}, LogPosition{ID: "L"}, false},
	}
	for _, tc := range cases {
		if got := LostEntries(tc.claim, tc.pos); got != tc.want {
			t.Errorf("%s: LostEntries(%+v, %+v) = %v, want %v", tc.name, tc.claim, tc.pos, got, tc.want)
		}
	}
}

// A claim past the log's end gives the log a new id, logged; the entries and
// the view stay, across a reopen too; later claims of the old id, and claims
// of what was served, change nothing.
func TestCheckClaimNewLogID(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	opts := Options{Name: "t", Node: "a", Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	tb, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 10 {
		if _, err := tb.Put(ctx, []byte(fmt.Sprintf("k%d", i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	old := tb.LogID()
	// Reopened: the ten entries were there when the copy opened.
	tb.Close()
	if tb, err = Open(dir, opts); err != nil {
		t.Fatal(err)
	}
	if id, err := tb.CheckClaim(LogClaim{Peer: "b", LogID: old, Offset: 10}); id != "" || err != nil {
		t.Fatalf("a claim at the end: %q, %v", id, err)
	}
	tb.Put(ctx, []byte("k10"), []byte("v"))
	tb.Served("b", old, 11)
	if id, err := tb.CheckClaim(LogClaim{Peer: "b", LogID: old, Offset: 11}); id != "" || err != nil {
		t.Fatalf("a claim of what was served: %q, %v", id, err)
	}
	// c claims offset 11 too, which this process never sent it.
	id, err := tb.CheckClaim(LogClaim{Peer: "c", LogID: old, Offset: 11, Source: "test"})
	if err != nil || id == "" || id == old || tb.LogID() != id {
		t.Fatalf("a claim past what c could have: %q, %v (log id %s, was %s)", id, err, tb.LogID(), old)
	}
	want := fmt.Sprintf("this copy of t is behind what c acknowledged (offset 11 > last 10): the data directory was restored from a copy; new log id %s", id)
	if !strings.Contains(logs.String(), want) || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("log does not say %q:\n%s", want, logs.String())
	}
	if again, _ := tb.CheckClaim(LogClaim{Peer: "b", LogID: old, Offset: 500}); again != "" {
		t.Errorf("a claim of the old id changed the id again")
	}
	if again, _ := tb.CheckClaim(LogClaim{Peer: "c", LogID: id, Offset: 11}); again != "" {
		t.Errorf("a claim at the new id's end changed the id again")
	}
	tb.Served("c", old, 99) // of the old id: ignored
	if again, _ := tb.CheckClaim(LogClaim{Peer: "c", LogID: id, Offset: 12}); again == "" {
		t.Errorf("a claim past the new id's end, after only the old id was served, changed nothing")
	}
	id = tb.LogID()
	digest := tb.Stats().Digest
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	tb, err = Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	st := tb.Stats()
	if st.LogID != id || st.Digest != digest || st.Keys != 11 || st.Damage != "" {
		t.Fatalf("reopened: %+v, want log id %s and the same 11 keys", st, id)
	}
}

// A crash after the new id was written and before a checkpoint of it: the
// checkpoint of the old id still loads (the same entries at the same
// offsets), even with the log's front truncated behind it.
func TestNewLogIDKeepsOldCheckpoints(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Name: "t", Node: "a", Retention: 1}
	tb, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 50 {
		tb.Put(ctx, []byte(fmt.Sprintf("k%02d", i)), []byte("v"))
	}
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	tb.Put(ctx, []byte("after"), []byte("v"))
	digest := tb.Stats().Digest
	if first, _ := tb.Bounds(); first < 40 {
		t.Fatalf("the log was not truncated: first offset %d", first)
	}
	// What CheckClaim does before its checkpoint, straight on the log.
	if _, err := tb.current().NewID(); err != nil {
		t.Fatal(err)
	}
	// The files as a crash now would leave them (every write is fsynced).
	crashed := filepath.Join(t.TempDir(), "copy")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	tb.Close()
	id, err := wal.ReadID(filepath.Join(crashed, "wal"))
	if err != nil {
		t.Fatal(err)
	}
	tb, err = Open(crashed, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	st := tb.Stats()
	if st.LogID != id || st.Digest != digest || st.Keys != 51 || st.Damage != "" {
		t.Fatalf("reopened after the new id: %+v", st)
	}
}
