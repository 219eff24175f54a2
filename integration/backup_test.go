package integration

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/backup"
)

// bkRecord is one record as export prints it (and as the log's changes
// fold to): the value, the version and whether it is a tombstone.
type bkRecord struct {
	Value   string
	HLC     uint64
	Origin  string
	Deleted bool
}

// bkExport runs cortex export on n and returns its records by key.
func bkExport(t *testing.T, n *node, table string) (map[string]bkRecord, string) {
	t.Helper()
	out := n.must("export", table)
	recs := map[string]bkRecord{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<26)
	for sc.Scan() {
		var l struct {
			Key, KeyB64, Value, ValueB64 *string
			HLC                          string
			Origin                       string
			Deleted                      bool
		}
		// The field names of the export: key, key_b64, value, value_b64.
		line := strings.NewReplacer(`"key_b64"`, `"KeyB64"`, `"value_b64"`, `"ValueB64"`).Replace(sc.Text())
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		field := func(text, b64 *string) string {
			if text != nil {
				return *text
			}
			if b64 == nil {
				return ""
			}
			b, err := base64.StdEncoding.DecodeString(*b64)
			if err != nil {
				t.Fatalf("export line %q: %v", sc.Text(), err)
			}
			return string(b)
		}
		hlc, err := strconv.ParseUint(l.HLC, 10, 64)
		if err != nil {
			t.Fatalf("export line %q: hlc: %v", sc.Text(), err)
		}
		recs[field(l.Key, l.KeyB64)] = bkRecord{Value: field(l.Value, l.ValueB64), HLC: hlc, Origin: l.Origin, Deleted: l.Deleted}
	}
	return recs, out
}

// bkAsOf folds n's log of table from its first offset to asOf: the records
// as of that offset (every entry in a copy's log is one it applied, in
// order, so the last one of each key is its record).
func bkAsOf(t *testing.T, n *node, table string, asOf uint64) map[string]bkRecord {
	t.Helper()
	c := n.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	recs := map[string]bkRecord{}
	done := errors.New("reached the offset")
	err := c.WatchStream(ctx, api.WatchRequest{Table: table, From: 1}, nil, func(ch api.Change) error {
		if ch.Offset > asOf {
			return done
		}
		recs[string(ch.Key)] = bkRecord{Value: string(ch.Value), HLC: uint64(ch.HLC), Origin: ch.Origin, Deleted: ch.Op == "del"}
		if ch.Offset == asOf {
			return done
		}
		return nil
	})
	if !errors.Is(err, done) {
		t.Fatalf("reading the log of %s up to offset %d: %v", table, asOf, err)
	}
	return recs
}

func bkCompare(t *testing.T, what string, got, want map[string]bkRecord) {
	t.Helper()
	bad := 0
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			if bad++; bad <= 5 {
				t.Errorf("%s: key %q = %+v (present %v), want %+v", what, k, g, ok, w)
			}
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			if bad++; bad <= 5 {
				t.Errorf("%s: key %q = %+v should not be there", what, k, g)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d keys differ (of %d wanted, %d got)", what, bad, len(want), len(got))
	}
}

func bkManifest(t *testing.T, path string) backup.Manifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := backup.Verify(f)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// bkLoad puts n keys into table over concurrent clients.
func bkLoad(t *testing.T, n *node, table string, keys int) {
	t.Helper()
	c := n.client()
	defer c.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < keys; i += 16 {
				if _, err := c.Put(context.Background(), table, fmt.Appendf(nil, "key%07d", i), fmt.Appendf(nil, "value %d \x00\xff", i)); err != nil {
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
}

// A backup of a table taken while about 1,000 writes/s go on, restored into
// a fresh node, holds exactly the records as of the offsets its manifest
// names (the log folded up to them), tombstones and versions included; the
// restored tables have new ids and logs.
func TestBackupWhileWritingRestoresExactly(t *testing.T) {
	keys := 20_000 // CORTEX_BACKUP_KEYS=1000000 for the run of docs/benchmarks.md
	if s := os.Getenv("CORTEX_BACKUP_KEYS"); s != "" {
		var err error
		if keys, err = strconv.Atoi(s); err != nil || keys < 1 {
			t.Fatalf("CORTEX_BACKUP_KEYS=%q: a number of keys", s)
		}
	}
	// The whole log stays (the test folds it from offset 1).
	src := newNode(t, "home", "--fsync", "never", "--wal-retention", "100000000")
	src.start()
	src.must("table", "create", "big", "--scope", "all")
	src.must("table", "create", "small")
	bkLoad(t, src, "big", keys)
	src.must("put", "small", "a", "1")
	src.cliIn("a\x00\xfe", "put", "small", "bin", "-")
	src.must("put", "small", "gone", "x")
	src.must("del", "small", "gone")

	// The writers: overwrites, deletes and new keys, 1,000 a second offered
	// (8 clients, one write every 8 ms each, so a slow write does not
	// lower the rate), until the backup is done (bounded in count and time).
	ctx, stop := context.WithTimeout(context.Background(), 2*time.Minute)
	defer stop()
	var wg sync.WaitGroup
	var written atomic.Int64
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := src.client()
			defer c.Close()
			tick := time.NewTicker(writers * time.Millisecond)
			defer tick.Stop()
			for i := w; i < 200_000 && ctx.Err() == nil; i += writers {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				var err error
				switch i % 4 {
				case 0, 1:
					_, err = c.Put(ctx, "big", fmt.Appendf(nil, "key%07d", (i*7919)%keys), fmt.Appendf(nil, "new %d", i))
				case 2:
					_, err = c.Put(ctx, "big", fmt.Appendf(nil, "extra%07d", i), []byte{0, byte(i)})
				case 3:
					_, err = c.Delete(ctx, "big", fmt.Appendf(nil, "key%07d", (i*104729)%keys))
				}
				if err == nil {
					written.Add(1)
				}
			}
		}()
	}
	// Some writes before the backup starts, so it runs amid them.
	c := src.client()
	defer c.Close()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if rec, err := c.Get(context.Background(), "big", []byte("key0000000")); err == nil && strings.HasPrefix(string(rec.Value), "new") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the writer made no write within 30 s")
		}
	}
	file := filepath.Join(t.TempDir(), "home.cxb")
	start, before := time.Now(), written.Load()
	out := src.must("backup", "--out", file)
	took, during := time.Since(start), written.Load()-before
	stop()
	wg.Wait()
	m := bkManifest(t, file)
	t.Logf("backup of %d keys in %v amid %d writes: %s", keys, took, during, strings.TrimSpace(out))
	if during == 0 {
		t.Error("no write was acknowledged while the backup ran")
	}
	if len(m.Tables) != 2 || m.Tables[0].Name != "big" || m.Tables[1].Name != "small" {
		t.Fatalf("manifest tables: %+v", m.Tables)
	}
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(file + ".*.tmp"); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if r := src.cli("backup", "--out", file); r.code != 1 || !strings.Contains(r.stderr, "exists") {
		t.Errorf("backup onto an existing file without --overwrite: %+v", r)
	}

	fresh := newNode(t, "fresh")
	fresh.start()
	start = time.Now()
	fresh.must("restore", file)
	restoreTook := time.Since(start)
	if fi, err := os.Stat(file); err == nil {
		mb := float64(fi.Size()) / 1e6
		t.Logf("file %d bytes (%.1f bytes per record); backup %.2f s (%.1f MB/s, %.0f writes/s meanwhile); restore %.2f s (%.1f MB/s)",
			fi.Size(), float64(fi.Size())/float64(m.Tables[0].Records+m.Tables[1].Records), took.Seconds(), mb/took.Seconds(),
			float64(during)/took.Seconds(), restoreTook.Seconds(), mb/restoreTook.Seconds())
	}
	after := map[string]api.TableInfo{}
	tl, err := fresh.client().Tables(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range tl {
		after[ti.Name] = ti
	}
	for _, sec := range m.Tables {
		want := bkAsOf(t, src, sec.Name, sec.AsOf)
		if uint64(len(want)) != sec.Records {
			t.Errorf("%s: the log up to offset %d folds to %d records, the manifest says %d", sec.Name, sec.AsOf, len(want), sec.Records)
		}
		got, _ := bkExport(t, fresh, sec.Name)
		bkCompare(t, "restored "+sec.Name, got, want)
		if ti := after[sec.Name]; ti.ID == sec.ID || ti.ID == "" || ti.Scope.String() != sec.Scope.String() || ti.Home != "fresh" {
			t.Errorf("restored %s: %+v, want a new id, scope %s, home fresh", sec.Name, ti, sec.Scope)
		}
	}
}

// A damaged or truncated backup is refused with a clear error and changes
// nothing; so is an import with a bad line.
func TestRestoreRefusesDamagedFiles(t *testing.T) {
	src := newNode(t, "home")
	src.start()
	src.must("table", "create", "t")
	for i := range 50 {
		src.must("put", "t", fmt.Sprintf("k%d", i), strings.Repeat("v", i))
	}
	file := filepath.Join(t.TempDir(), "t.cxb")
	src.must("backup", "--out", file, "t")
	data, _ := os.ReadFile(file)

	dst := newNode(t, "dst")
	dst.start()
	dst.must("table", "create", "t")
	dst.must("put", "t", "mine", "kept")
	before, _ := bkExport(t, dst, "t")

	damaged := filepath.Join(t.TempDir(), "damaged.cxb")
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 0x20
	os.WriteFile(damaged, bad, 0o600)
	truncated := filepath.Join(t.TempDir(), "truncated.cxb")
	os.WriteFile(truncated, data[:len(data)-10], 0o600)
	expect(t, "damaged", dst.cli("restore", damaged, "--yes"), 1, "backup file damaged: at byte")
	expect(t, "damaged", dst.cli("restore", damaged, "--as", "other"), 1, "nothing was restored")
	expect(t, "truncated", dst.cli("restore", truncated, "--yes"), 1, "(truncated): nothing was restored")
	junk := filepath.Join(t.TempDir(), "junk")
	os.WriteFile(junk, []byte("CXCKPT01 not a backup"), 0o600)
	expect(t, "not a backup", dst.cli("restore", junk, "--yes"), 1, "not a cortex backup file")
	expect(t, "no such table in the file", dst.cli("restore", file, "nope"), 3, "the backup has no table nope (it has: t)")

	expect(t, "import with a bad line", dst.cliIn(
		`{"key":"a","value":"1","hlc":"5","origin":"x","deleted":false}`+"\n"+`{"key":"b","value_b64":"***","hlc":"5","origin":"x","deleted":false}`+"\n",
		"import", "t"), 1, "line 2: value_b64 is not base64")
	expect(t, "import from the future", dst.cliIn(
		`{"key":"a","value":"1","hlc":"18446744073709551615","origin":"x","deleted":false}`+"\n", "import", "t"), 1, "ahead of this node's clock: nothing was restored")

	after, _ := bkExport(t, dst, "t")
	bkCompare(t, "after the refusals", after, before)
	if got := dst.must("table", "list"); strings.Contains(got, "other") {
		t.Errorf("a refused restore created a table:\n%s", got)
	}
	if left, _ := filepath.Glob(filepath.Join(dst.dir, "restore-*.tmp")); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

// Restoring into a table that exists merges by last-write-wins and asks
// first; the merge replicates to the table's other holder like any write;
// --as restores beside it under a new name.
func TestRestoreMergeKeepsNewerAndReplicates(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	plWaitFullMesh(a, b)
	a.must("table", "create", "t", "--scope", "all")
	a.must("put", "t", "old", "from the backup")
	a.must("put", "t", "both", "old version")
	a.must("put", "t", "deleted", "x")
	a.must("del", "t", "deleted")
	b.waitValue("t", "both", "old version")
	file := filepath.Join(t.TempDir(), "t.cxb")
	a.must("backup", "--out", file)

	a.must("put", "t", "both", "newer version")
	a.must("del", "t", "old")
	a.must("put", "t", "deleted", "back again")
	b.waitValue("t", "deleted", "back again")

	// Without a terminal and without --yes: a usage error, nothing changes.
	expect(t, "merge without --yes", a.cli("restore", file), 2, "table t exists here")
	out := a.must("restore", file, "--yes")
	if !strings.Contains(out, "into t, merged: 3 records, 0 applied") {
		t.Errorf("merge: %s", out)
	}
	for k, v := range map[string]string{"both": "newer version", "deleted": "back again"} {
		if got := a.must("get", "t", k); got != v {
			t.Errorf("after the merge %s = %q, want %q (the newer version)", k, got, v)
		}
	}
	if r := a.cli("get", "t", "old"); r.code != 3 {
		t.Errorf("after the merge, old (deleted after the backup) is back: %+v", r)
	}

	// Dropped and restored: the backup's records come back and replicate.
	a.must("table", "drop", "t", "--yes")
	for deadline := time.Now().Add(30 * time.Second); b.cli("get", "t", "both").code != 3; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the drop did not reach b")
		}
	}
	out = a.must("restore", file)
	if !strings.Contains(out, "created (scope all") {
		t.Errorf("restore after the drop: %s", out)
	}
	b.waitValue("t", "old", "from the backup")
	b.waitValue("t", "both", "old version")
	if r := b.cli("get", "t", "deleted"); r.code != 3 {
		t.Errorf("the tombstone did not replicate: %+v", r)
	}

	// --as: a second table beside it, with the same records.
	a.must("restore", file, "t", "--as", "t_copy", "--scope", "local")
	want, _ := bkExport(t, a, "t")
	got, _ := bkExport(t, a, "t_copy")
	bkCompare(t, "--as", got, want)
	if r := a.cli("restore", file, "--as", "x", "--scope", "b"); r.code != 1 || !strings.Contains(r.stderr, "leaves this node (a) without a copy") {
		t.Errorf("a scope without this node: %+v", r)
	}
}

// Export then import into another node's table, then export again: the
// same bytes, NUL, invalid UTF-8, empty values and tombstones included.
func TestExportImportRoundTrip(t *testing.T) {
	a := newNode(t, "a")
	a.start()
	b := newNode(t, "b")
	b.start()
	a.must("table", "create", "t")
	b.must("table", "create", "t")
	a.cliIn("nul\x00inside", "put", "t", "k1", "-")
	a.cliIn("\xff\xfe\xfd", "put", "t", "k2", "-")
	a.cliIn("", "put", "t", "empty", "-")
	ac := a.client()
	defer ac.Close()
	if _, err := ac.Put(context.Background(), "t", []byte("key\x00\xc3"), []byte("v")); err != nil { // no NUL in an argument
		t.Fatal(err)
	}
	a.must("put", "t", "plain", "ünïcödé \"quoted\" \\ \t tab")
	a.must("put", "t", "gone", "x")
	a.must("del", "t", "gone")
	_, first := bkExport(t, a, "t")
	in := filepath.Join(t.TempDir(), "t.jsonl")
	os.WriteFile(in, []byte(first), 0o600)
	out := b.must("import", "t", in)
	if !strings.Contains(out, "imported 6 records into t: 6 applied") {
		t.Errorf("import: %s", out)
	}
	_, second := bkExport(t, b, "t")
	if first != second {
		t.Errorf("export after import differs:\n%s\nwant:\n%s", second, first)
	}
	if !strings.Contains(first, `"value_b64":"//79"`) || !strings.Contains(first, `"deleted":true`) || !strings.Contains(first, `"key_b64"`) {
		t.Errorf("export:\n%s", first)
	}
	// Again from stdin: nothing newer, nothing applied.
	if r := b.cliIn(first, "import", "t"); r.code != 0 || !strings.Contains(r.stdout, "6 records into t: 0 applied") {
		t.Errorf("import again: %+v", r)
	}
	expect(t, "import into a missing table", b.cliIn(first, "import", "nope"), 3, "cortex table create nope")
	if got := a.must("export", "t", "--prefix", "k"); strings.Count(got, "\n") != 3 {
		t.Errorf("export --prefix k:\n%s", got)
	}
}

// Over the mTLS listener: a backup needs read on each table, a restore or
// import write on the table it merges into, and creating a table needs
// admin on *; a refused call changes nothing.
func TestBackupRestorePermissionsOverRPC(t *testing.T) {
	dir := rpcCerts(t, "home", "alice", "bob")
	addr := freeAddr(t)
	n := rpcNode(t, "home", dir, addr)
	n.start()
	n.waitLog(`msg="rpc listening" addr=` + regexp.QuoteMeta(addr))
	as := func(who string, args ...string) result {
		return remote(t, addr, dir, dir, "client-"+who+".crt", "client-"+who+".key", args...)
	}
	n.must("table", "create", "t")
	n.must("table", "create", "u")
	n.must("put", "t", "k", "v")
	n.must("put", "u", "secret", "s")
	n.must("identity", "add", "alice")
	n.must("identity", "add", "bob")
	n.must("acl", "grant", "alice", "t", "read")
	file := filepath.Join(t.TempDir(), "t.cxb")

	expect(t, "bob's backup", as("bob", "backup", "--out", file, "t"), 4, "bob may not read table t")
	if _, err := os.Stat(file); err == nil {
		t.Error("a denied backup wrote the file")
	}
	expect(t, "alice's backup of u", as("alice", "backup", "--out", file, "u"), 4, "alice may not read table u")
	if r := as("alice", "backup", "--out", file); r.code != 0 || !strings.Contains(r.stdout, "backed up 1 table of home") {
		t.Fatalf("alice's backup of what she may read: %+v", r)
	}
	if m := bkManifest(t, file); len(m.Tables) != 1 || m.Tables[0].Name != "t" {
		t.Errorf("alice's backup holds %+v, want t only", m.Tables)
	}
	n.must("put", "t", "k", "newer")
	expect(t, "alice's restore with read", as("alice", "restore", file, "--yes"), 4, "alice may not write table t")
	expect(t, "alice's import with read", as("alice", "import", "t", "-"), 4, "alice may not write table t")
	expect(t, "alice's restore as a new table", as("alice", "restore", file, "--as", "t2"), 4, "alice may not admin every table ('*') (ask an admin: cortex acl grant alice '*' admin)")
	if got := n.must("get", "t", "k"); got != "newer" {
		t.Errorf("t/k = %q after the refusals", got)
	}
	n.must("acl", "grant", "alice", "t", "write")
	if r := as("alice", "restore", file, "--yes"); r.code != 0 || !strings.Contains(r.stdout, "1 records, 0 applied") {
		t.Errorf("alice's restore with write: %+v", r)
	}
	if got := n.must("get", "t", "k"); got != "newer" {
		t.Errorf("t/k = %q: the restore replaced a newer version", got)
	}
	expect(t, "a system table", n.cli("backup", "--out", file+"2", "cortex_acls"), 2, "system table")
}

// A cortexd killed with SIGKILL while a restore uploads leaves its spool in
// the data directory; at the next start cortexd removes it (and logs it with
// its size), and nothing of the interrupted restore was applied: the table
// merged into is as it was, the table it would have created does not exist.
func TestRestoreSpoolRemovedAfterKill9(t *testing.T) {
	n := newNode(t, "home")
	n.start()
	n.must("table", "create", "t")
	big := strings.Repeat("v", 4000)
	for i := range 40 {
		n.must("put", "t", fmt.Sprintf("k%02d", i), big)
	}
	file := filepath.Join(t.TempDir(), "t.cxb")
	n.must("backup", "--out", file, "t")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err := backup.Verify(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	// What the restore would change: every key of the file is newer than
	// what t holds now, and t2 would be created.
	for i := range 40 {
		n.must("del", "t", fmt.Sprintf("k%02d", i))
	}
	n.must("put", "t", "mine", "kept")
	before, _ := bkExport(t, n, "t")

	// Upload half of the file and hold the rest back, then kill the node.
	for _, as := range []string{"", "t2"} {
		pr, pw := io.Pipe()
		c := n.client()
		done := make(chan error, 1)
		go func() {
			_, err := c.Restore(context.Background(), api.RestoreRequest{Sections: m.Tables, As: as, Size: int64(len(data)),
				Overrides: api.Overrides{Confirmed: true}}, pr)
			done <- err
		}()
		if _, err := pw.Write(data[:len(data)/2]); err != nil {
			t.Fatal(err)
		}
		var spool string
		plPoll(t, "the restore spools half of the file", func() (bool, string) {
			left, _ := filepath.Glob(filepath.Join(n.dir, "restore-*.tmp"))
			if len(left) != 1 {
				return false, fmt.Sprintf("spools %v", left)
			}
			fi, err := os.Stat(left[0])
			spool = left[0]
			return err == nil && fi.Size() >= int64(len(data)/2)-64<<10, fmt.Sprintf("%v", err)
		})
		n.kill()
		pw.CloseWithError(errors.New("the test stops uploading"))
		if err := <-done; err == nil {
			t.Fatal("a restore into a killed node succeeded")
		}
		c.Close()
		if _, err := os.Stat(spool); err != nil {
			t.Fatalf("the spool is not left by kill -9: %v", err)
		}
		n.start()
		n.waitLog(`removed the spool of an interrupted restore.*file=` + regexp.QuoteMeta(spool) + ` bytes=\d+`)
		if left, _ := filepath.Glob(filepath.Join(n.dir, "restore-*.tmp")); len(left) != 0 {
			t.Fatalf("spools after the restart: %v", left)
		}
		after, _ := bkExport(t, n, "t")
		bkCompare(t, "t after the interrupted restore", after, before)
		if r := n.cli("get", "t2", "k00"); r.code != 3 || !strings.Contains(r.stderr, "t2") {
			t.Fatalf("t2 after the interrupted restore: %+v", r)
		}
	}
}

// A copy whose scope no longer selects this node is being handed off and
// takes no local writes: a restore or an import into it is refused (the
// node holds no copy to write to), and changes nothing; restoring into a
// system table is refused too.
func TestRestoreRefusedIntoHandedOffCopy(t *testing.T) {
	certs := meshCerts(t, "a", "d")
	a := plMesh(t, certs, "a")[0]
	a.must("table", "create", "t", "--scope", "a")
	a.must("put", "t", "k", "v1")
	file := filepath.Join(t.TempDir(), "t.cxb")
	a.must("backup", "--out", file, "t")
	a.must("put", "t", "k2", "v2")
	// t now belongs to d, which never joins: a keeps its copy, draining.
	a.must("table", "scope", "t", "d", "--allow-unknown", "--yes")
	draining := func() (bool, string) {
		list, err := a.plTables()
		ti := list["t"]
		return err == nil && ti.Draining && !ti.Held && ti.Keys == 2, fmt.Sprintf("%+v %v", ti, err)
	}
	plPoll(t, "a keeps t draining", draining)
	expect(t, "restore into the handed-off copy", a.cli("restore", file, "--yes"), 1, "this node holds no copy of it")
	expect(t, "import into the handed-off copy", a.cliIn(`{"key":"k3","value":"x","hlc":"5","origin":"x","deleted":false}`+"\n", "import", "t"),
		1, "this node holds no copy of it")
	if ok, desc := draining(); !ok {
		t.Fatalf("the handed-off copy changed: %s", desc)
	}
	expect(t, "restore into a system table", a.cli("restore", file, "--as", "cortex_acls"), 2, "reserved for system tables")
	// The node refuses it too, whatever the client checked.
	m := bkManifest(t, file)
	c := a.client()
	defer c.Close()
	for _, req := range []api.RestoreRequest{{Sections: m.Tables, As: "cortex_acls"}, {Sections: m.Tables, As: "cortex_meta", Import: true}} {
		_, err := c.RestorePlan(context.Background(), req)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != api.CodeInvalid || !strings.Contains(ae.Message, "reserved for system tables") {
			t.Errorf("restore plan into %s: %v", req.As, err)
		}
	}
}
