package wal

import (
	"os"
	"path/filepath"
	"testing"
)

// TestFiles: Files counts the segments and their bytes as the directory
// holds them, and follows a truncation.
func TestFiles(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{SegmentSize: 512})
	if _, err := l.Write(testEntries(1, 200)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	segs, bytes, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	var wantSegs int
	var wantBytes int64
	for _, s := range mustSegments(t, dir) {
		fi, err := os.Stat(s)
		if err != nil {
			t.Fatal(err)
		}
		wantSegs++
		wantBytes += fi.Size()
	}
	if segs != wantSegs || bytes != wantBytes || segs < 2 {
		t.Fatalf("Files() = %d segments, %d bytes; the directory holds %d, %d bytes (want several)", segs, bytes, wantSegs, wantBytes)
	}
	if err := l.TruncateFront(150); err != nil {
		t.Fatal(err)
	}
	after, afterBytes, err := l.Files()
	if err != nil {
		t.Fatal(err)
	}
	if after >= segs || afterBytes >= bytes {
		t.Fatalf("after truncating the front: %d segments, %d bytes; before %d, %d", after, afterBytes, segs, bytes)
	}
}

// mustSegments lists dir's segment files (20-digit names).
func mustSegments(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if len(de.Name()) == 20 {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	return out
}
