package wal

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every wait in these tests; nothing waits for it to pass
// unless the code under test is broken.
const testTimeout = 10 * time.Second

// testEntry is the deterministic entry written at offset off.
func testEntry(off uint64) Entry {
	if off%7 == 0 {
		return Entry{Op: OpDelete, Key: []byte(fmt.Sprintf("key-%d", off)), Version: Version{HLC: 1000 + off, Origin: "n2"}}
	}
	return Entry{
		Op:      OpPut,
		Key:     []byte(fmt.Sprintf("key-%d", off)),
		Value:   []byte(fmt.Sprintf("value-%d-%s", off, strings.Repeat("x", int(off%5)*20))),
		Version: Version{HLC: 1000 + off, Origin: "n1"},
	}
}

func testEntries(from, to uint64) []Entry {
	var es []Entry
	for off := from; off <= to; off++ {
		es = append(es, testEntry(off))
	}
	return es
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func openLog(t *testing.T, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.Name == "" {
		opts.Name = "test"
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func mustAppend(t *testing.T, l *Log, entries []Entry, wantFirst uint64) {
	t.Helper()
	first, err := l.Append(entries)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if first != wantFirst {
		t.Fatalf("Append returned first offset %d, want %d", first, wantFirst)
	}
}

// appendRange appends testEntry(from..to) in batches of varying size.
func appendRange(t *testing.T, l *Log, from, to uint64) {
	t.Helper()
	size := uint64(1)
	for off := from; off <= to; {
		end := min(off+size-1, to)
		mustAppend(t, l, testEntries(off, end), off)
		off = end + 1
		size = size%13 + 1
	}
}

func checkBounds(t *testing.T, l *Log, wantFirst, wantLast uint64) {
	t.Helper()
	if first, last := l.Bounds(); first != wantFirst || last != wantLast {
		t.Fatalf("Bounds() = (%d, %d), want (%d, %d)", first, last, wantFirst, wantLast)
	}
}

// checkEntries reads from..to one by one and as a range, and compares with
// testEntry.
func checkEntries(t *testing.T, l *Log, from, to uint64) {
	t.Helper()
	for off := from; off <= to; off++ {
		e, err := l.Read(off)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if want := testEntry(off); !entriesEqual(e, want) {
			t.Fatalf("Read(%d) = %s %q, want %s %q", off, e.Op, e.Key, want.Op, want.Key)
		}
	}
	if from > to {
		return
	}
	recs, err := l.ReadRange(from, int(to-from+1)+10)
	if err != nil {
		t.Fatalf("ReadRange(%d): %v", from, err)
	}
	checkRecords(t, recs, from, to)
}

func checkRecords(t *testing.T, recs []Record, from, to uint64) {
	t.Helper()
	if uint64(len(recs)) != to-from+1 {
		t.Fatalf("got %d records, want %d (offsets %d..%d)", len(recs), to-from+1, from, to)
	}
	for i, r := range recs {
		off := from + uint64(i)
		if r.Offset != off {
			t.Fatalf("record %d has offset %d, want %d", i, r.Offset, off)
		}
		if !entriesEqual(r.Entry, testEntry(off)) {
			t.Fatalf("record at offset %d holds %s %q, want %q", off, r.Op, r.Key, testEntry(off).Key)
		}
	}
}

var segmentName20 = regexp.MustCompile(`^[0-9]{20}$`)

// segmentPaths lists the segment files (20-digit names) of dir in order.
func segmentPaths(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		if segmentName20.MatchString(de.Name()) {
			out = append(out, filepath.Join(dir, de.Name()))
		}
	}
	sort.Strings(out)
	return out
}

func TestAppendReadBounds(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	checkBounds(t, l, 1, 0)
	if recs, err := l.ReadRange(1, 10); err != nil || len(recs) != 0 {
		t.Fatalf("ReadRange on an empty log = %d records, %v", len(recs), err)
	}

	if first, err := l.Append(nil); err != nil || first != 0 {
		t.Fatalf("Append(nil) = %d, %v; want 0, nil", first, err)
	}
	checkBounds(t, l, 1, 0)

	mustAppend(t, l, testEntries(1, 3), 1)
	checkBounds(t, l, 1, 3)
	mustAppend(t, l, testEntries(4, 4), 4)
	mustAppend(t, l, testEntries(5, 9), 5)
	checkBounds(t, l, 1, 9)
	checkEntries(t, l, 1, 9)

	// Ranges: a window, max caps, from past the end.
	recs, err := l.ReadRange(3, 4)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, recs, 3, 6)
	recs, err = l.ReadRange(8, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkRecords(t, recs, 8, 9)
	if recs, err := l.ReadRange(10, 100); err != nil || len(recs) != 0 {
		t.Fatalf("ReadRange past the end = %d records, %v; want none", len(recs), err)
	}

	// Past the end is an error, but not ErrTruncated.
	if _, err := l.Read(10); err == nil || errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(10) past the end: err = %v, want a non-truncation error", err)
	}
	if _, err := l.Read(0); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(0): err = %v, want ErrTruncated", err)
	}

	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	l2 := openLog(t, dir, Options{})
	checkBounds(t, l2, 1, 9)
	checkEntries(t, l2, 1, 9)
	mustAppend(t, l2, testEntries(10, 12), 10)
	checkEntries(t, l2, 1, 12)
}

// Appending must not keep a reference to the caller's slices.
func TestAppendCopiesInput(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	e := Entry{Op: OpPut, Key: []byte("key"), Value: []byte("value"), Version: Version{HLC: 1, Origin: "n"}}
	mustAppend(t, l, []Entry{e}, 1)
	e.Key[0], e.Value[0] = 'X', 'X'
	got, err := l.Read(1)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Key) != "key" || string(got.Value) != "value" {
		t.Fatalf("Read(1) = %q=%q, want key=value", got.Key, got.Value)
	}
	// The returned entry must not alias the log's memory either.
	got.Value[0] = 'Y'
	again, err := l.Read(1)
	if err != nil {
		t.Fatal(err)
	}
	if string(again.Value) != "value" {
		t.Fatalf("Read(1) after changing a returned value = %q", again.Value)
	}
}

func TestNoSyncThenSync(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{NoSync: true})
	appendRange(t, l, 1, 20)
	if err := l.Sync(); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, Options{NoSync: true})
	checkBounds(t, l2, 1, 20)
	checkEntries(t, l2, 1, 20)
}

func TestLogID(t *testing.T) {
	dirA, dirB := t.TempDir(), t.TempDir()
	a := openLog(t, dirA, Options{})
	b := openLog(t, dirB, Options{})
	id := a.ID()
	if len(id) != 32 {
		t.Fatalf("ID %q: want 32 hex digits", id)
	}
	if _, err := hex.DecodeString(id); err != nil {
		t.Fatalf("ID %q is not hex: %v", id, err)
	}
	if b.ID() == id {
		t.Fatalf("two logs share the ID %q", id)
	}
	if a.Dir() != dirA {
		t.Fatalf("Dir() = %q, want %q", a.Dir(), dirA)
	}
	mustAppend(t, a, testEntries(1, 3), 1)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		a2 := openLog(t, dirA, Options{})
		if a2.ID() != id {
			t.Fatalf("reopen %d: ID = %q, want %q", i, a2.ID(), id)
		}
		if err := a2.Close(); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(filepath.Join(dirA, idFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(string(raw)) != id {
		t.Fatalf("%s holds %q, want %q", idFile, raw, id)
	}
}

func TestOpenRejectsBadID(t *testing.T) {
	t.Run("malformed id", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, idFile), []byte("not-an-id\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
			l.Close()
			t.Fatal("Open accepted a malformed log id")
		}
	})
	t.Run("non-hex id", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, idFile), []byte(strings.Repeat("g", 32)), 0o600); err != nil {
			t.Fatal(err)
		}
		if l, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
			l.Close()
			t.Fatal("Open accepted a non-hex log id")
		}
	})
	t.Run("segments without id", func(t *testing.T) {
		dir := t.TempDir()
		l := openLog(t, dir, Options{})
		mustAppend(t, l, testEntries(1, 2), 1)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(filepath.Join(dir, idFile)); err != nil {
			t.Fatal(err)
		}
		if l, err := Open(dir, Options{Logger: quietLogger()}); err == nil {
			l.Close()
			t.Fatal("Open made a new identity for a directory that holds segments")
		}
	})
}

type tailResult struct {
	recs []Record
	err  error
}

// startTail runs Tail in a goroutine and returns the channel its result
// arrives on.
func startTail(ctx context.Context, l *Log, from uint64, max int) <-chan tailResult {
	ch := make(chan tailResult, 1)
	go func() {
		recs, err := l.Tail(ctx, from, max)
		ch <- tailResult{recs, err}
	}()
	return ch
}

func recvTail(t *testing.T, ch <-chan tailResult) tailResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(testTimeout):
		t.Fatal("Tail did not return")
		return tailResult{}
	}
}

// waitTailBlocked polls the goroutine dump until n goroutines are parked in
// Tail's select, i.e. waiting for an append, or fails at the deadline. It
// also checks that Tail has not returned meanwhile.
func waitTailBlocked(t *testing.T, n int, chs ...<-chan tailResult) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	buf := make([]byte, 1<<20)
	for {
		for _, ch := range chs {
			select {
			case r := <-ch:
				t.Fatalf("Tail returned instead of waiting: %d records, err %v", len(r.recs), r.err)
			default:
			}
		}
		stacks := string(buf[:runtime.Stack(buf, true)])
		blocked := 0
		for _, g := range strings.Split(stacks, "\n\n") {
			if strings.Contains(g, "[select") && strings.Contains(g, "wal.(*Log).Tail(") {
				blocked++
			}
		}
		if blocked >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d Tail calls blocked, want %d", blocked, n)
		}
		runtime.Gosched()
	}
}

func TestTailReturnsExisting(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendRange(t, l, 1, 5)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	recs, err := l.Tail(ctx, 2, 100)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	checkRecords(t, recs, 2, 5)
	recs, err = l.Tail(ctx, 1, 2)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	checkRecords(t, recs, 1, 2)
	recs, err = l.Tail(ctx, 5, 2)
	if err != nil {
		t.Fatalf("Tail: %v", err)
	}
	checkRecords(t, recs, 5, 5)
}

func TestTailBlocksUntilAppend(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendRange(t, l, 1, 3)

	// With nothing at from, Tail waits: a short deadline ends it.
	short, cancelShort := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancelShort()
	if recs, err := l.Tail(short, 4, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Tail past the end = %d records, %v; want DeadlineExceeded", len(recs), err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ch1 := startTail(ctx, l, 4, 10)
	ch2 := startTail(ctx, l, 4, 1)
	waitTailBlocked(t, 2, ch1, ch2)

	mustAppend(t, l, testEntries(4, 6), 4)
	r := recvTail(t, ch1)
	if r.err != nil {
		t.Fatalf("Tail: %v", r.err)
	}
	checkRecords(t, r.recs, 4, 6)
	r = recvTail(t, ch2)
	if r.err != nil {
		t.Fatalf("Tail: %v", r.err)
	}
	checkRecords(t, r.recs, 4, 4)
}

func TestTailCancel(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendRange(t, l, 1, 2)

	ctx, cancel := context.WithCancel(context.Background())
	ch := startTail(ctx, l, 3, 10)
	waitTailBlocked(t, 1, ch)
	cancel()
	if r := recvTail(t, ch); !errors.Is(r.err, context.Canceled) || len(r.recs) != 0 {
		t.Fatalf("Tail after cancel = %d records, %v; want context.Canceled", len(r.recs), r.err)
	}
	// An already cancelled context with nothing to return.
	if recs, err := l.Tail(ctx, 3, 10); !errors.Is(err, context.Canceled) || len(recs) != 0 {
		t.Fatalf("Tail with a cancelled context = %d records, %v", len(recs), err)
	}
	// The log still works after a cancelled follower.
	mustAppend(t, l, testEntries(3, 3), 3)
	checkEntries(t, l, 1, 3)
}

func TestClosed(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{})
	appendRange(t, l, 1, 2)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	ch1 := startTail(ctx, l, 3, 10)
	ch2 := startTail(ctx, l, 100, 10)
	waitTailBlocked(t, 2, ch1, ch2)
	if err := l.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, ch := range []<-chan tailResult{ch1, ch2} {
		if r := recvTail(t, ch); !errors.Is(r.err, ErrClosed) {
			t.Fatalf("blocked Tail after Close: err = %v, want ErrClosed", r.err)
		}
	}
	if _, err := l.Tail(ctx, 1, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("Tail on a closed log: err = %v, want ErrClosed", err)
	}
	if _, err := l.Append(testEntries(3, 3)); !errors.Is(err, ErrClosed) {
		t.Fatalf("Append on a closed log: err = %v, want ErrClosed", err)
	}
	if err := l.TruncateFront(2); !errors.Is(err, ErrClosed) {
		t.Fatalf("TruncateFront on a closed log: err = %v, want ErrClosed", err)
	}
	if err := l.Sync(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Sync on a closed log: err = %v, want ErrClosed", err)
	}
	if _, err := l.Read(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Read on a closed log: err = %v, want ErrClosed", err)
	}
	if _, err := l.ReadRange(1, 10); !errors.Is(err, ErrClosed) {
		t.Fatalf("ReadRange on a closed log: err = %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestTailTruncated(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendRange(t, l, 1, 10)
	if err := l.TruncateFront(6); err != nil {
		t.Fatalf("TruncateFront(6): %v", err)
	}
	checkBounds(t, l, 6, 10)

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	for _, from := range []uint64{0, 1, 5} {
		if recs, err := l.Tail(ctx, from, 10); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Tail(%d) after TruncateFront(6) = %d records, %v; want ErrTruncated", from, len(recs), err)
		}
		if _, err := l.Read(from); !errors.Is(err, ErrTruncated) {
			t.Fatalf("Read(%d) after TruncateFront(6): err = %v, want ErrTruncated", from, err)
		}
		if _, err := l.ReadRange(from, 10); !errors.Is(err, ErrTruncated) {
			t.Fatalf("ReadRange(%d) after TruncateFront(6): err = %v, want ErrTruncated", from, err)
		}
	}
	recs, err := l.Tail(ctx, 6, 100)
	if err != nil {
		t.Fatalf("Tail(6): %v", err)
	}
	checkRecords(t, recs, 6, 10)
	checkEntries(t, l, 6, 10)

	// Truncating to an earlier offset is a no-op.
	if err := l.TruncateFront(3); err != nil {
		t.Fatalf("TruncateFront(3) behind the first offset: %v", err)
	}
	checkBounds(t, l, 6, 10)

	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l2 := openLog(t, dir, Options{})
	checkBounds(t, l2, 6, 10)
	checkEntries(t, l2, 6, 10)
	if _, err := l2.Tail(ctx, 5, 10); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Tail(5) after reopen: err = %v, want ErrTruncated", err)
	}
	mustAppend(t, l2, testEntries(11, 12), 11)
	checkEntries(t, l2, 6, 12)
}

func TestTruncatePastEnd(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	appendRange(t, l, 1, 5)
	if err := l.TruncateFront(100); err != nil {
		t.Fatalf("TruncateFront(100): %v", err)
	}
	checkBounds(t, l, 6, 5)
	if _, err := l.Read(5); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(5) of an emptied log: err = %v, want ErrTruncated", err)
	}
	if recs, err := l.ReadRange(6, 10); err != nil || len(recs) != 0 {
		t.Fatalf("ReadRange(6) of an emptied log = %d records, %v", len(recs), err)
	}
	// Truncating an empty log again changes nothing.
	if err := l.TruncateFront(200); err != nil {
		t.Fatalf("second TruncateFront: %v", err)
	}
	checkBounds(t, l, 6, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l2 := openLog(t, dir, Options{})
	checkBounds(t, l2, 6, 5)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if _, err := l2.Tail(ctx, 3, 10); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Tail(3) of an emptied log: err = %v, want ErrTruncated", err)
	}
	ch := startTail(ctx, l2, 6, 10)
	waitTailBlocked(t, 1, ch)
	mustAppend(t, l2, testEntries(6, 8), 6)
	r := recvTail(t, ch)
	if r.err != nil {
		t.Fatalf("Tail(6): %v", r.err)
	}
	checkRecords(t, r.recs, 6, 8)
	checkBounds(t, l2, 6, 8)
	if err := l2.Close(); err != nil {
		t.Fatal(err)
	}

	l3 := openLog(t, dir, Options{})
	checkBounds(t, l3, 6, 8)
	checkEntries(t, l3, 6, 8)
}

func TestTruncateFrontEmptyNewLog(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, dir, Options{})
	if err := l.TruncateFront(10); err != nil {
		t.Fatalf("TruncateFront on a new log: %v", err)
	}
	checkBounds(t, l, 1, 0)
	mustAppend(t, l, testEntries(1, 1), 1)
	checkEntries(t, l, 1, 1)
}

func TestMultiSegment(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096, NoSync: true}
	l := openLog(t, dir, opts)
	const n = 400
	appendRange(t, l, 1, n)
	segs := segmentPaths(t, dir)
	if len(segs) < 5 {
		t.Fatalf("%d segment files for %d entries with SegmentSize 4096; want at least 5", len(segs), n)
	}
	checkBounds(t, l, 1, n)
	checkEntries(t, l, 1, n)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir, opts)
	checkBounds(t, l, 1, n)
	checkEntries(t, l, 1, n)

	// Cut into the middle of the log: whole segments before the cut go.
	const cut = 217
	if err := l.TruncateFront(cut); err != nil {
		t.Fatalf("TruncateFront(%d): %v", cut, err)
	}
	after := segmentPaths(t, dir)
	if len(after) >= len(segs) {
		t.Fatalf("TruncateFront(%d) left %d segment files of %d", cut, len(after), len(segs))
	}
	if got := filepath.Base(after[0]); got != fmt.Sprintf("%020d", cut) {
		t.Fatalf("first segment after truncation is %s, want %020d", got, cut)
	}
	checkBounds(t, l, cut, n)
	checkEntries(t, l, cut, n)
	if _, err := l.Read(cut - 1); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(%d): err = %v, want ErrTruncated", cut-1, err)
	}
	appendRange(t, l, n+1, n+50)
	checkEntries(t, l, cut, n+50)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openLog(t, dir, opts)
	checkBounds(t, l, cut, n+50)
	checkEntries(t, l, cut, n+50)
	if _, err := l.Read(1); !errors.Is(err, ErrTruncated) {
		t.Fatalf("Read(1) after reopen: err = %v, want ErrTruncated", err)
	}

	// Empty it entirely; offsets keep counting.
	if err := l.TruncateFront(1 << 40); err != nil {
		t.Fatal(err)
	}
	checkBounds(t, l, n+51, n+50)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	checkBounds(t, l, n+51, n+50)
	appendRange(t, l, n+51, n+60)
	checkEntries(t, l, n+51, n+60)
}

// Concurrent writers and followers: every follower sees every offset exactly
// once and in order; run with -race.
func TestConcurrentAppendAndTail(t *testing.T) {
	l := openLog(t, t.TempDir(), Options{SegmentSize: 4096, NoSync: true})
	const writers, perWriter, followers = 4, 50, 3
	const total = writers * perWriter

	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	errs := make(chan error, followers+writers)
	var wg sync.WaitGroup
	for f := 0; f < followers; f++ {
		wg.Add(1)
		go func(max int) {
			defer wg.Done()
			next := uint64(1)
			for next <= total {
				recs, err := l.Tail(ctx, next, max)
				if err != nil {
					errs <- fmt.Errorf("follower: Tail(%d): %w", next, err)
					return
				}
				for _, r := range recs {
					if r.Offset != next {
						errs <- fmt.Errorf("follower: got offset %d, want %d", r.Offset, next)
						return
					}
					if _, err := Decode(AppendEncode(nil, &r.Entry)); err != nil {
						errs <- fmt.Errorf("follower: offset %d: %w", r.Offset, err)
						return
					}
					next++
				}
			}
		}(f*3 + 1)
	}
	var mu sync.Mutex
	written := map[uint64]Entry{}
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWriter; i++ {
				e := Entry{Op: OpPut, Key: []byte(fmt.Sprintf("w%d-%d", w, i)), Value: []byte("v"), Version: Version{HLC: uint64(i + 1), Origin: fmt.Sprintf("n%d", w)}}
				off, err := l.Append([]Entry{e})
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				mu.Lock()
				written[off] = e
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	checkBounds(t, l, 1, total)
	if len(written) != total {
		t.Fatalf("%d distinct offsets returned by Append, want %d", len(written), total)
	}
	for off, want := range written {
		got, err := l.Read(off)
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if !entriesEqual(got, want) {
			t.Fatalf("Read(%d) = %q, want %q", off, got.Key, want.Key)
		}
	}
}

// A big batch that spans several segments reads back across a reopen.
func TestBatchSpanningSegments(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentSize: 4096}
	l := openLog(t, dir, opts)
	big := make([]Entry, 100)
	for i := range big {
		big[i] = Entry{Op: OpPut, Key: []byte(fmt.Sprintf("k%d", i)), Value: bytes.Repeat([]byte{byte(i)}, 300), Version: Version{HLC: uint64(i + 1), Origin: "n"}}
	}
	mustAppend(t, l, big, 1)
	if segs := segmentPaths(t, dir); len(segs) < 3 {
		t.Fatalf("a 30 KiB batch made %d segments with SegmentSize 4096", len(segs))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openLog(t, dir, opts)
	checkBounds(t, l, 1, 100)
	recs, err := l.ReadRange(1, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 100 {
		t.Fatalf("got %d records, want 100", len(recs))
	}
	for i, r := range recs {
		if !entriesEqual(r.Entry, big[i]) {
			t.Fatalf("record %d differs", i+1)
		}
	}
}

// NewID changes the id of the same entries, keeps the old ones in
// PreviousIDs (at most 16), and survives a reopen.
func TestNewID(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir, Options{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]Entry{{Op: OpPut, Version: Version{HLC: 1, Origin: "a"}, Key: []byte("k"), Value: []byte("v")}}); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range maxPrevIDs + 2 {
		ids = append(ids, l.ID())
		id, err := l.NewID()
		if err != nil {
			t.Fatal(err)
		}
		if id == ids[len(ids)-1] || id != l.ID() {
			t.Fatalf("NewID = %s, ID = %s, was %s", id, l.ID(), ids[len(ids)-1])
		}
	}
	cur := l.ID()
	l.Close()
	prev, err := PreviousIDs(dir)
	if err != nil || !slices.Equal(prev, ids[len(ids)-maxPrevIDs:]) {
		t.Fatalf("PreviousIDs = %v, %v; want %v", prev, err, ids[len(ids)-maxPrevIDs:])
	}
	l, err = Open(dir, Options{Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if l.ID() != cur {
		t.Fatalf("reopened with id %s, want %s", l.ID(), cur)
	}
	if e, err := l.Read(1); err != nil || string(e.Value) != "v" {
		t.Fatalf("entry 1 after NewID: %+v, %v", e, err)
	}
	if _, err := l.NewID(); err != nil {
		t.Fatal(err)
	}
	// A malformed list is an error, not a silent empty one.
	os.WriteFile(filepath.Join(dir, prevIDFile), []byte("nothex\n"), 0o600)
	if _, err := PreviousIDs(dir); err == nil || !strings.Contains(err.Error(), "malformed log id") {
		t.Fatalf("malformed list: %v", err)
	}
	if ids, err := PreviousIDs(t.TempDir()); ids != nil || err != nil {
		t.Fatalf("no list: %v, %v", ids, err)
	}
}
