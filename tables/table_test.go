package tables

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/cortex-mesh/cortex/wal"
)

// Helpers of the unit tests carry a "ut" prefix so that they cannot collide
// with helpers of other test files of the package.

// utOptions are fast options: no fsync, no background checkpoints, no logs.
func utOptions(node string) Options {
	return Options{
		Name:            "unit",
		Node:            node,
		NoSync:          true,
		CheckpointEvery: -1,
		Logger:          slog.New(slog.DiscardHandler),
	}
}

// utOpen opens a table that is closed when the test ends.
func utOpen(t testing.TB, dir string, opts Options) *Table {
	t.Helper()
	tb, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { tb.Close() })
	return tb
}

// utNew opens a fresh table in a new temporary directory.
func utNew(t testing.TB, node string) *Table {
	t.Helper()
	return utOpen(t, t.TempDir(), utOptions(node))
}

// utPut builds a remote put.
func utPut(key, value string, hlc uint64, origin string) wal.Entry {
	return wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: []byte(value), Version: wal.Version{HLC: hlc, Origin: origin}}
}

// utDel builds a remote delete.
func utDel(key string, hlc uint64, origin string) wal.Entry {
	return wal.Entry{Op: wal.OpDelete, Key: []byte(key), Version: wal.Version{HLC: hlc, Origin: origin}}
}

func utApply(t testing.TB, tb *Table, entries ...wal.Entry) int {
	t.Helper()
	n, err := tb.Apply(context.Background(), entries)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return n
}

func utLast(tb *Table) uint64 {
	_, last := tb.current().Bounds()
	return last
}

// utState is everything that must match between two copies holding the same
// records.
type utState struct {
	Digest     uint64
	Buckets    Digest
	Keys       int64
	Tombstones int64
	Records    []Record
}

func utSnapshot(t testing.TB, tb *Table) utState {
	t.Helper()
	st := tb.Stats()
	recs, err := tb.ScanAll(nil, nil, 0)
	if err != nil {
		t.Fatalf("ScanAll: %v", err)
	}
	return utState{Digest: st.Digest, Buckets: st.Buckets, Keys: st.Keys, Tombstones: st.Tombstones, Records: recs}
}

// utCheckConsistent verifies a copy's bookkeeping against its records: the
// counts and the digest recomputed from ScanAll must equal what Stats reports.
func utCheckConsistent(t testing.TB, tb *Table) utState {
	t.Helper()
	s := utSnapshot(t, tb)
	var d Digest
	var keys, tombs int64
	for i, r := range s.Records {
		if i > 0 && bytes.Compare(s.Records[i-1].Key, r.Key) >= 0 {
			t.Fatalf("ScanAll out of order: %q then %q", s.Records[i-1].Key, r.Key)
		}
		e := r.Entry()
		d.toggle(viewKey(r.Key), encodeRecord(&e))
		if r.Deleted {
			tombs++
		} else {
			keys++
		}
	}
	if keys != s.Keys || tombs != s.Tombstones {
		t.Fatalf("Stats says %d keys and %d tombstones, ScanAll holds %d and %d", s.Keys, s.Tombstones, keys, tombs)
	}
	if d != s.Buckets || d.Sum() != s.Digest {
		t.Fatalf("Stats digest %x differs from the digest recomputed from ScanAll %x", s.Digest, d.Sum())
	}
	return s
}

func utSameState(t testing.TB, what string, got, want utState) {
	t.Helper()
	if got.Digest != want.Digest || got.Buckets != want.Buckets {
		t.Errorf("%s: digest %x, want %x", what, got.Digest, want.Digest)
	}
	if got.Keys != want.Keys || got.Tombstones != want.Tombstones {
		t.Errorf("%s: %d keys / %d tombstones, want %d / %d", what, got.Keys, got.Tombstones, want.Keys, want.Tombstones)
	}
	if !reflect.DeepEqual(got.Records, want.Records) {
		t.Errorf("%s: records differ:\n got  %s\n want %s", what, utFormat(got.Records), utFormat(want.Records))
	}
}

func utFormat(recs []Record) string {
	short := func(s string) string {
		if len(s) > 40 {
			return fmt.Sprintf("%s...(%d bytes)", s[:20], len(s))
		}
		return s
	}
	var b bytes.Buffer
	for _, r := range recs {
		if r.Deleted {
			fmt.Fprintf(&b, "%q:del@%d/%s ", short(string(r.Key)), r.Version.HLC, short(r.Version.Origin))
		} else {
			fmt.Fprintf(&b, "%q=%q@%d/%s ", short(string(r.Key)), short(string(r.Value)), r.Version.HLC, short(r.Version.Origin))
		}
	}
	return b.String()
}

// utCopyDir copies a table directory (as a crash would leave it: whatever
// the files hold right now) to a new temporary directory.
func utCopyDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.Walk(src, func(path string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

func TestOpenNeedsNodeName(t *testing.T) {
	opts := utOptions("")
	if _, err := Open(t.TempDir(), opts); err == nil {
		t.Fatal("Open without a node name succeeded")
	}
}

func TestPutGetDelete(t *testing.T) {
	ctx := context.Background()
	tb := utNew(t, "n1")

	if _, err := tb.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a key never written: %v, want ErrNotFound", err)
	}
	v1, err := tb.Put(ctx, []byte("a"), []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Origin != "n1" || v1.HLC == 0 {
		t.Fatalf("Put version %+v: want origin n1 and a clock reading", v1)
	}
	r, err := tb.Get([]byte("a"))
	if err != nil || string(r.Value) != "one" || r.Version != v1 || r.Deleted || string(r.Key) != "a" {
		t.Fatalf("Get after Put: %+v, %v", r, err)
	}
	v2, err := tb.Put(ctx, []byte("a"), []byte("two"))
	if err != nil {
		t.Fatal(err)
	}
	if v2.Compare(v1) <= 0 {
		t.Fatalf("second Put version %+v is not newer than %+v", v2, v1)
	}
	if r, _ := tb.Get([]byte("a")); string(r.Value) != "two" {
		t.Fatalf("Get after overwrite: %q", r.Value)
	}
	// An empty value is a value, not a delete.
	if _, err := tb.Put(ctx, []byte("empty"), nil); err != nil {
		t.Fatal(err)
	}
	if r, err := tb.Get([]byte("empty")); err != nil || len(r.Value) != 0 || r.Deleted {
		t.Fatalf("Get of an empty value: %+v, %v", r, err)
	}

	v3, err := tb.Delete(ctx, []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if v3.Compare(v2) <= 0 {
		t.Fatalf("Delete version %+v is not newer than %+v", v3, v2)
	}
	if _, err := tb.Get([]byte("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a deleted key: %v, want ErrNotFound", err)
	}
	// Deleting a key that never held anything still leaves a tombstone.
	if _, err := tb.Delete(ctx, []byte("ghost")); err != nil {
		t.Fatal(err)
	}
	st := utCheckConsistent(t, tb)
	if st.Keys != 1 || st.Tombstones != 2 {
		t.Fatalf("keys %d tombstones %d, want 1 and 2", st.Keys, st.Tombstones)
	}
	if s := tb.Stats(); s.Applied != 5 || utLast(tb) != 5 || s.LogID != tb.current().ID() || s.FirstOffset != 1 {
		t.Fatalf("Stats %+v, log last %d: want 5 entries applied from offset 1", s, utLast(tb))
	}
}

func TestGetReturnsCopies(t *testing.T) {
	ctx := context.Background()
	tb := utNew(t, "n1")
	key, val := []byte("k"), []byte("value")
	if _, err := tb.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
	// The caller's buffers may be reused after Put returns.
	key[0], val[0] = 'x', 'x'
	r, err := tb.Get([]byte("k"))
	if err != nil || string(r.Value) != "value" {
		t.Fatalf("Get after the caller reused its buffers: %q, %v", r.Value, err)
	}
	r.Value[0] = 'X'
	if r, _ := tb.Get([]byte("k")); string(r.Value) != "value" {
		t.Fatalf("changing a returned record changed the table: %q", r.Value)
	}
}

func TestScan(t *testing.T) {
	ctx := context.Background()
	tb := utNew(t, "n1")
	for _, k := range []string{"a", "ab", "ab\x00", "abc", "abd", "ac", "b", "ba", "c"} {
		if _, err := tb.Put(ctx, []byte(k), []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"abc", "ba", "zz"} {
		if _, err := tb.Delete(ctx, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(recs []Record) []string {
		out := []string{}
		for _, r := range recs {
			out = append(out, string(r.Key))
		}
		return out
	}
	cases := []struct {
		prefix, after string
		limit         int
		live, all     []string
	}{
		{"", "", 0,
			[]string{"a", "ab", "ab\x00", "abd", "ac", "b", "c"},
			[]string{"a", "ab", "ab\x00", "abc", "abd", "ac", "b", "ba", "c", "zz"}},
		{"ab", "", 0, []string{"ab", "ab\x00", "abd"}, []string{"ab", "ab\x00", "abc", "abd"}},
		{"ab", "ab", 0, []string{"ab\x00", "abd"}, []string{"ab\x00", "abc", "abd"}},
		{"ab", "ab\x00", 0, []string{"abd"}, []string{"abc", "abd"}},
		{"ab", "abc", 0, []string{"abd"}, []string{"abd"}},
		{"ab", "a", 0, []string{"ab", "ab\x00", "abd"}, []string{"ab", "ab\x00", "abc", "abd"}}, // after before the prefix
		{"ab", "b", 0, []string{}, []string{}},                                                  // after past the prefix
		{"", "", 2, []string{"a", "ab"}, []string{"a", "ab"}},
		{"ab", "", 2, []string{"ab", "ab\x00"}, []string{"ab", "ab\x00"}},
		{"ab", "ab\x00", 1, []string{"abd"}, []string{"abc"}}, // the limit counts live records only
		{"b", "", 0, []string{"b"}, []string{"b", "ba"}},
		{"", "b", 0, []string{"c"}, []string{"ba", "c", "zz"}},
		{"", "zz", 0, []string{}, []string{}},
		{"x", "", 0, []string{}, []string{}},
		{"", "", -1, []string{"a", "ab", "ab\x00", "abd", "ac", "b", "c"}, nil}, // negative limit: all
	}
	for _, c := range cases {
		name := fmt.Sprintf("prefix=%q/after=%q/limit=%d", c.prefix, c.after, c.limit)
		recs, err := tb.Scan([]byte(c.prefix), []byte(c.after), c.limit)
		if err != nil {
			t.Fatalf("%s: Scan: %v", name, err)
		}
		if got := keys(recs); !reflect.DeepEqual(got, c.live) {
			t.Errorf("%s: Scan = %q, want %q", name, got, c.live)
		}
		for _, r := range recs {
			if r.Deleted || string(r.Value) != "v-"+string(r.Key) {
				t.Errorf("%s: Scan returned %+v", name, r)
			}
		}
		if c.all == nil {
			continue
		}
		recs, err = tb.ScanAll([]byte(c.prefix), []byte(c.after), c.limit)
		if err != nil {
			t.Fatalf("%s: ScanAll: %v", name, err)
		}
		if got := keys(recs); !reflect.DeepEqual(got, c.all) {
			t.Errorf("%s: ScanAll = %q, want %q", name, got, c.all)
		}
		for _, r := range recs {
			if r.Deleted != (string(r.Key) == "abc" || string(r.Key) == "ba" || string(r.Key) == "zz") {
				t.Errorf("%s: ScanAll record %q has Deleted=%v", name, r.Key, r.Deleted)
			}
			if r.Deleted && r.Value != nil {
				t.Errorf("%s: tombstone %q carries a value %q", name, r.Key, r.Value)
			}
		}
	}
	// Paging with after = the last key returned visits every live record once.
	var paged []string
	var after []byte
	for {
		recs, err := tb.Scan(nil, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		paged = append(paged, keys(recs)...)
		after = recs[len(recs)-1].Key
	}
	if want := []string{"a", "ab", "ab\x00", "abd", "ac", "b", "c"}; !reflect.DeepEqual(paged, want) {
		t.Errorf("paged Scan = %q, want %q", paged, want)
	}
	// The same within a prefix that is itself a key, one record per page:
	// the page after the key equal to the prefix must move on.
	paged, after = nil, nil
	for range 10 {
		recs, err := tb.Scan([]byte("ab"), after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		paged = append(paged, keys(recs)...)
		after = recs[len(recs)-1].Key
	}
	if want := []string{"ab", "ab\x00", "abd"}; !reflect.DeepEqual(paged, want) {
		t.Errorf("paged Scan of prefix ab = %q, want %q", paged, want)
	}
}

func TestRecordEntry(t *testing.T) {
	put := Record{Key: []byte("k"), Value: []byte("v"), Version: wal.Version{HLC: 7, Origin: "o"}}
	if e := put.Entry(); e.Op != wal.OpPut || string(e.Key) != "k" || string(e.Value) != "v" || e.Version != put.Version {
		t.Errorf("put record → %+v", e)
	}
	del := Record{Key: []byte("k"), Value: []byte("ignored"), Version: wal.Version{HLC: 8, Origin: "o"}, Deleted: true}
	if e := del.Entry(); e.Op != wal.OpDelete || e.Value != nil || e.Version != del.Version {
		t.Errorf("tombstone record → %+v", e)
	}
}

func TestDigestBuckets(t *testing.T) {
	// Two copies that differ in one key differ in exactly that key's bucket.
	a, b := utNew(t, "a"), utNew(t, "b")
	var common []wal.Entry
	for i := range 50 {
		common = append(common, utPut(fmt.Sprintf("key-%02d", i), "v", uint64(100+i), "x"))
	}
	utApply(t, a, common...)
	utApply(t, b, common...)
	if a.Stats().Digest != b.Stats().Digest {
		t.Fatal("same records, different digests")
	}
	if a.Stats().Digest == 0 {
		t.Fatal("a non-empty copy has a zero digest")
	}
	utApply(t, b, utPut("key-07", "other", 500, "x"))
	sa, sb := a.Stats(), b.Stats()
	if sa.Digest == sb.Digest {
		t.Fatal("different records, same digest")
	}
	want := Bucket([]byte("key-07"))
	for i := range Buckets {
		if (sa.Buckets[i] != sb.Buckets[i]) != (i == want) {
			t.Errorf("bucket %d: a=%x b=%x (the changed key is in bucket %d)", i, sa.Buckets[i], sb.Buckets[i], want)
		}
	}
	// Deleting and then re-applying the same record in the other copy brings
	// the digests together again.
	utApply(t, a, utPut("key-07", "other", 500, "x"))
	if a.Stats().Digest != b.Stats().Digest {
		t.Fatal("digests differ after both copies took the same write")
	}
	utCheckConsistent(t, a)
	utCheckConsistent(t, b)
}

func TestDigestEmptyAndFields(t *testing.T) {
	var d Digest
	if d.Sum() != 0 {
		t.Fatal("empty digest is not zero")
	}
	// Adding then removing a record restores the digest.
	e := utPut("k", "v", 1, "o")
	d.toggle(viewKey(e.Key), encodeRecord(&e))
	if d.Sum() == 0 {
		t.Fatal("toggle did not change the digest")
	}
	d.toggle(viewKey(e.Key), encodeRecord(&e))
	if d.Sum() != 0 {
		t.Fatal("toggling twice did not restore the digest")
	}
	// Every part of a record counts.
	seen := map[uint64]string{}
	for _, e := range []wal.Entry{
		utPut("k", "v", 1, "o"), utPut("k", "v", 2, "o"), utPut("k", "v", 1, "p"),
		utPut("k", "w", 1, "o"), utPut("j", "v", 1, "o"), utDel("k", 1, "o"), utPut("k", "", 1, "o"),
		utPut("ab", "c", 1, "o"), utPut("a", "bc", 1, "o"),
	} {
		var d Digest
		d.toggle(viewKey(e.Key), encodeRecord(&e))
		if prev, ok := seen[d.Sum()]; ok {
			t.Errorf("%+v has the same digest as %s", e, prev)
		}
		seen[d.Sum()] = fmt.Sprintf("%+v", e)
	}
}

func TestConcurrentReadWrite(t *testing.T) {
	ctx := context.Background()
	tb := utNew(t, "n1")
	const workers, perWorker = 12, 60

	type last struct {
		version wal.Version
		value   string
		deleted bool
	}
	var (
		mu     sync.Mutex
		shared = map[string]last{} // the newest write each shared key got
	)
	record := func(key string, l last) {
		mu.Lock()
		defer mu.Unlock()
		if cur, ok := shared[key]; !ok || l.version.Compare(cur.version) > 0 {
			shared[key] = l
		}
	}

	var wg sync.WaitGroup
	errs := make(chan error, workers*4)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) { errs <- fmt.Errorf("worker %d: %w", w, err) }
			for i := range perWorker {
				// Private keys: the worker knows exactly what they must hold.
				key := []byte(fmt.Sprintf("w%02d-%03d", w, i))
				val := []byte(fmt.Sprintf("val-%d-%d", w, i))
				if _, err := tb.Put(ctx, key, val); err != nil {
					fail(err)
					return
				}
				r, err := tb.Get(key)
				if err != nil || !bytes.Equal(r.Value, val) {
					fail(fmt.Errorf("read-your-write of %s: %q, %v", key, r.Value, err))
					return
				}
				if i%3 == 0 {
					if _, err := tb.Delete(ctx, key); err != nil {
						fail(err)
						return
					}
					if _, err := tb.Get(key); !errors.Is(err, ErrNotFound) {
						fail(fmt.Errorf("Get after Delete of %s: %v", key, err))
						return
					}
				}
				// Shared keys: every worker writes them; the newest version wins.
				sk := fmt.Sprintf("shared-%d", i%5)
				if i%7 == 3 {
					v, err := tb.Delete(ctx, []byte(sk))
					if err != nil {
						fail(err)
						return
					}
					record(sk, last{version: v, deleted: true})
				} else {
					sv := fmt.Sprintf("from-%d-%d", w, i)
					v, err := tb.Put(ctx, []byte(sk), []byte(sv))
					if err != nil {
						fail(err)
						return
					}
					record(sk, last{version: v, value: sv})
				}
				// Remote writes race with the local ones.
				if i%10 == 0 {
					rk := fmt.Sprintf("remote-%d", i)
					if _, err := tb.Apply(ctx, []wal.Entry{utPut(rk, fmt.Sprint(w), uint64(1000+w), "peer")}); err != nil {
						fail(err)
						return
					}
				}
				// Readers of the whole table race with the writers.
				if i%15 == 0 {
					if _, err := tb.Scan([]byte("shared-"), nil, 0); err != nil {
						fail(err)
						return
					}
					tb.Stats()
				}
			}
		}()
	}
	// A checkpoint in the middle of the writes.
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := tb.Checkpoint(); err != nil {
			errs <- err
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	for w := range workers {
		for i := range perWorker {
			key := fmt.Sprintf("w%02d-%03d", w, i)
			r, err := tb.Get([]byte(key))
			if i%3 == 0 {
				if !errors.Is(err, ErrNotFound) {
					t.Errorf("%s: deleted, but Get gives %+v, %v", key, r, err)
				}
			} else if err != nil || string(r.Value) != fmt.Sprintf("val-%d-%d", w, i) {
				t.Errorf("%s: %q, %v", key, r.Value, err)
			}
		}
	}
	for key, want := range shared {
		r, err := tb.Get([]byte(key))
		if want.deleted {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s: newest write was a delete, Get gives %+v, %v", key, r, err)
			}
			continue
		}
		if err != nil || string(r.Value) != want.value || r.Version != want.version {
			t.Errorf("%s: %q@%+v (%v), want the newest write %q@%+v", key, r.Value, r.Version, err, want.value, want.version)
		}
	}
	for i := 0; i < perWorker; i += 10 {
		// Every worker sent remote-i with HLC 1000+w: the greatest worker wins.
		key := fmt.Sprintf("remote-%d", i)
		if r, err := tb.Get([]byte(key)); err != nil || string(r.Value) != fmt.Sprint(workers-1) {
			t.Errorf("%s: %q, %v; want the write with the greatest version", key, r.Value, err)
		}
	}

	// Every local write went to the log: 1 put per private key, 1 delete per
	// third of them, one shared write per step, and up to one adopted remote
	// write per worker per remote key.
	st := utCheckConsistent(t, tb)
	local := uint64(workers*perWorker + workers*(perWorker+2)/3 + workers*perWorker)
	if s := tb.Stats(); s.Applied != utLast(tb) || s.Applied < local || s.Applied > local+uint64(workers*((perWorker+9)/10)) {
		t.Errorf("applied %d, log last %d: want %d local writes plus the adopted remote ones", s.Applied, utLast(tb), local)
	}

	// What the readers saw is what a restart recovers.
	dir := tb.Dir()
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	re := utOpen(t, dir, utOptions("n1"))
	utSameState(t, "after reopen", utCheckConsistent(t, re), st)
}

func TestConcurrentApplySameKeys(t *testing.T) {
	// Peers deliver overlapping batches concurrently; the writer may merge
	// them into one batch. The result must be the newest version per key.
	ctx := context.Background()
	tb := utNew(t, "n1")
	const senders, keys = 8, 20
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 10 {
				var batch []wal.Entry
				for k := range keys {
					hlc := uint64(round*100 + (s*7+k)%senders)
					key := fmt.Sprintf("k%02d", k)
					if (s+k+round)%4 == 0 {
						batch = append(batch, utDel(key, hlc, fmt.Sprintf("s%d", s)))
					} else {
						batch = append(batch, utPut(key, fmt.Sprintf("%d/%d", s, round), hlc, fmt.Sprintf("s%d", s)))
					}
				}
				if _, err := tb.Apply(ctx, batch); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Model: the greatest (hlc, origin) of the last round per key.
	for k := range keys {
		var best wal.Version
		var bestSender int
		for s := range senders {
			v := wal.Version{HLC: uint64(9*100 + (s*7+k)%senders), Origin: fmt.Sprintf("s%d", s)}
			if v.Compare(best) > 0 {
				best, bestSender = v, s
			}
		}
		key := fmt.Sprintf("k%02d", k)
		recs, err := tb.ScanAll([]byte(key), nil, 1)
		if err != nil || len(recs) != 1 {
			t.Fatalf("%s: %v %v", key, recs, err)
		}
		r := recs[0]
		wantDeleted := (bestSender+k+9)%4 == 0
		if r.Version != best || r.Deleted != wantDeleted || (!wantDeleted && string(r.Value) != fmt.Sprintf("%d/9", bestSender)) {
			t.Errorf("%s: %+v, want version %+v from sender %d (deleted=%v)", key, r, best, bestSender, wantDeleted)
		}
	}
	utCheckConsistent(t, tb)
}

func TestCloseWhileWriting(t *testing.T) {
	// Writes racing with Close either succeed, and then survive the
	// restart, or fail with ErrClosed and leave no trace.
	ctx := context.Background()
	dir := t.TempDir()
	tb := utOpen(t, dir, utOptions("n1"))
	const writers = 8
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   = map[string]bool{}
		started = make(chan struct{}, writers*20)
	)
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d-%05d", w, i)
				_, err := tb.Put(ctx, []byte(key), []byte("v"))
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[key] = true
				mu.Unlock()
				select {
				case started <- struct{}{}:
				default:
				}
			}
		}()
	}
	for range writers * 20 { // enough writes under way
		<-started
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	re := utOpen(t, dir, utOptions("n1"))
	recs, err := re.Scan(nil, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != len(acked) {
		t.Errorf("after the restart %d keys, %d writes were acknowledged", len(recs), len(acked))
	}
	for _, r := range recs {
		if !acked[string(r.Key)] {
			t.Errorf("%s is in the table but its write was not acknowledged", r.Key)
		}
	}
	if re.Stats().Applied != uint64(len(acked)) {
		t.Errorf("log holds %d entries, %d writes were acknowledged", re.Stats().Applied, len(acked))
	}
}
