package wal

import "testing"

// Sync skips the fsync only when nothing was written since an fsync of this
// process: after Open (entries left by a process that was killed may not be
// on disk) and after every Write it syncs.
func TestSyncSkipsOnlyWhenNothingIsNew(t *testing.T) {
	for _, noSync := range []bool{false, true} {
		dir := t.TempDir()
		l := openLog(t, dir, Options{NoSync: noSync})
		check := func(what string, wantSynced, wantDurable uint64) {
			t.Helper()
			if err := l.Sync(); err != nil {
				t.Fatalf("NoSync=%v: %s: Sync: %v", noSync, what, err)
			}
			l.mu.Lock()
			synced, durable := l.synced, l.durable
			l.mu.Unlock()
			if synced != wantSynced || durable != wantDurable {
				t.Fatalf("NoSync=%v: %s: synced %d, durable %d; want %d, %d", noSync, what, synced, durable, wantSynced, wantDurable)
			}
		}
		check("empty log", 0, 0)
		if _, err := l.Write(testEntries(1, 3)); err != nil {
			t.Fatal(err)
		}
		if recs, _ := l.ReadRange(1, 10); !noSync && len(recs) != 0 {
			t.Fatalf("%d records visible before Sync", len(recs))
		}
		check("after a write", 3, 3)
		check("nothing new", 3, 3)
		if _, err := l.Write(testEntries(4, 5)); err != nil {
			t.Fatal(err)
		}
		check("after another write", 5, 5)
		if recs, err := l.ReadRange(1, 10); err != nil || len(recs) != 5 {
			t.Fatalf("ReadRange after Sync: %d records, %v", len(recs), err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = openLog(t, dir, Options{NoSync: noSync})
		if l.synced != 0 {
			t.Fatalf("reopened log claims offset %d synced", l.synced)
		}
		check("after reopening", 5, 5)
	}
}
