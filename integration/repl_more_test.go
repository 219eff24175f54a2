package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Helpers for the replication tests: whole-table reads, bounded concurrent
// writers, and the replication lines of a node's log.

// replScan reads every live record of a table on n, page by page.
func (n *node) replScan(ctx context.Context, table string) (map[string]api.Record, error) {
	c := n.client()
	defer c.Close()
	out := map[string]api.Record{}
	var after []byte
	for page := 0; page < 1000; page++ {
		res, err := c.Scan(ctx, api.ScanRequest{Table: table, After: after})
		if err != nil {
			return nil, err
		}
		for _, r := range res.Records {
			out[string(r.Key)] = r
		}
		if !res.More || len(res.Records) == 0 {
			return out, nil
		}
		after = res.Records[len(res.Records)-1].Key
	}
	return nil, errors.New("scan: more than 1000 pages")
}

// values is the key -> value view of records.
func replValues(recs map[string]api.Record) map[string]string {
	out := make(map[string]string, len(recs))
	for k, r := range recs {
		out[k] = string(r.Value)
	}
	return out
}

// diff describes how got differs from want, briefly.
func replDiff(got, want map[string]string) string {
	var missing, extra, wrong []string
	for k, v := range want {
		if g, ok := got[k]; !ok {
			missing = append(missing, k)
		} else if g != v {
			wrong = append(wrong, fmt.Sprintf("%s=%q (want %q)", k, g, v))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			extra = append(extra, k)
		}
	}
	short := func(s []string) []string {
		slices.Sort(s)
		return s[:min(len(s), 5)]
	}
	return fmt.Sprintf("%d keys, want %d: %d missing %v, %d extra %v, %d wrong %v",
		len(got), len(want), len(missing), short(missing), len(extra), short(extra), len(wrong), short(wrong))
}

// replWaitContents polls each node until its copy of table holds exactly want.
func replWaitContents(t *testing.T, table string, want map[string]string, nodes ...*node) {
	t.Helper()
	for _, n := range nodes {
		deadline := time.Now().Add(60 * time.Second)
		for {
			// A scan of many large values takes seconds on a loaded machine.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			recs, err := n.replScan(ctx, table)
			cancel()
			got := replValues(recs)
			if err == nil && maps.Equal(got, want) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: table %s never converged: %v %s\n%s", n.name, table, err, replDiff(got, want), n.logs)
			}
			time.Sleep(100 * time.Millisecond) // poll interval
		}
	}
}

// replWaitHeld polls n until it holds a copy of table.
func (n *node) replWaitHeld(table string) {
	n.t.Helper()
	if !n.replPollTable(table, func(ti api.TableInfo) bool { return ti.Held }) {
		n.t.Fatalf("%s never held table %s\n%s", n.name, table, n.logs)
	}
}

// replPollTable polls n's table list (up to 30 s) until table is listed and
// cond holds for it.
func (n *node) replPollTable(table string, cond func(api.TableInfo) bool) bool {
	c := n.client()
	defer c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		list, err := c.Tables(ctx)
		cancel()
		if err == nil {
			for _, ti := range list {
				if ti.Name == table && cond(ti) {
					return true
				}
			}
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
	return false
}

// replKeyCount is the number of live keys n's copy of table holds (-1 if unknown).
func (n *node) replKeyCount(table string) int64 {
	c := n.client()
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := c.Tables(ctx)
	if err != nil {
		return -1
	}
	for _, ti := range list {
		if ti.Name == table && ti.Held {
			return ti.Keys
		}
	}
	return -1
}

// replWriter puts keys key(0..count-1) = value(i) on n with a bounded number
// of goroutines. done counts the acknowledged writes as they come.
type replWriter struct {
	done atomic.Int64
	errc chan error
}

func startReplWriter(n *node, table string, count, workers int, key, value func(i int) string) *replWriter {
	w := &replWriter{errc: make(chan error, 1)}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	c := n.client()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= count {
					return
				}
				if err := ctx.Err(); err != nil { // out of time: say so, never write fewer silently
					once.Do(func() { w.errc <- fmt.Errorf("writer on %s stopped at %d of %d: %w", n.name, i, count, err) })
					return
				}
				if _, err := c.Put(ctx, table, []byte(key(i)), []byte(value(i))); err != nil {
					once.Do(func() { w.errc <- fmt.Errorf("put %s on %s: %w", key(i), n.name, err) })
					cancel()
					return
				}
				w.done.Add(1)
			}
		}()
	}
	go func() {
		wg.Wait()
		cancel()
		c.Close()
		once.Do(func() { w.errc <- nil })
	}()
	return w
}

// wait returns the writer's first error once all its goroutines ended.
func (w *replWriter) wait(t *testing.T) {
	t.Helper()
	if err := <-w.errc; err != nil {
		t.Fatal(err)
	}
}

// replSub is one `repl: subscribed` line of a cortexd log.
type replSub struct {
	table, peer, logID string
	from               uint64
}

var replSubscribedLine = regexp.MustCompile(`msg="repl: subscribed" table=(\S+) peer=(\S+) log_id=(\S+) from=(\d+)`)

// subscriptions lists the subscriptions to peer for table in a log.
func replSubscriptions(logs, table, peer string) []replSub {
	var out []replSub
	for _, m := range replSubscribedLine.FindAllStringSubmatch(logs, -1) {
		if m[1] != table || m[2] != peer {
			continue
		}
		from, _ := strconv.ParseUint(m[4], 10, 64)
		out = append(out, replSub{m[1], m[2], strings.Trim(m[3], `"`), from})
	}
	return out
}

// replSnapshots counts the `repl: receiving a snapshot` lines for table.
func replSnapshots(logs, table string) int {
	n := 0
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, `msg="repl: receiving a snapshot"`) && strings.Contains(line, " table="+table+" ") {
			n++
		}
	}
	return n
}

// replTableDir is the directory of n's copy of a table.
func (n *node) replTableDir(table string) string {
	n.t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(n.dir, "tables", table+"-*"))
	if len(dirs) != 1 {
		n.t.Fatalf("%s: copies of %s: %v", n.name, table, dirs)
	}
	return dirs[0]
}

// replStoredCursor reads the cursor n saved for peer's log of table.
func (n *node) replStoredCursor(table, peer string) (tables.Cursor, bool) {
	n.t.Helper()
	b, err := os.ReadFile(filepath.Join(n.replTableDir(table), "cursors"))
	if err != nil {
		return tables.Cursor{}, false
	}
	var m map[string]tables.Cursor
	if err := json.Unmarshal(b, &m); err != nil {
		n.t.Fatalf("%s: cursors of %s: %v", n.name, table, err)
	}
	c, ok := m[peer]
	return c, ok
}

func replCreateTable(t *testing.T, n *node, table, sc string) {
	t.Helper()
	parsed, err := scope.ParseScope(sc)
	if err != nil {
		t.Fatal(err)
	}
	c := n.client()
	defer c.Close()
	if _, err := c.CreateTable(context.Background(), table, parsed, api.Overrides{AllowUnknown: true}); err != nil {
		t.Fatal(err)
	}
}

func replMesh2(t *testing.T, extra ...string) (a, b *node) {
	certs := meshCerts(t, "a", "b")
	a = newMeshNode(t, certs, "a")
	a.args = append(a.args, extra...)
	a.start()
	b = newMeshNode(t, certs, "b", a.meshAddr)
	b.args = append(b.args, extra...)
	b.start()
	a.waitPeers("b")
	b.waitPeers("a")
	return a, b
}

// A subscriber killed with SIGKILL while 10,000 writes stream in resumes
// from its stored cursor when it restarts (no re-read from offset 0, no
// snapshot) and converges to the publisher's contents.
func TestReplicationSubscriberKill9ResumesFromCursor(t *testing.T) {
	a, b := replMesh2(t)
	const table = "stream"
	replCreateTable(t, a, table, "all")
	b.replWaitHeld(table)
	a.must("put", table, "marker", "m")
	b.waitValue(table, "marker", "m")

	const total = 10_000
	w := startReplWriter(a, table, total, 8,
		func(i int) string { return fmt.Sprintf("k%05d", i) },
		func(i int) string { return fmt.Sprintf("v%05d", i) })
	// Kill b once it has applied a good part of the stream, while a is
	// still being written.
	deadline := time.Now().Add(60 * time.Second)
	for b.replKeyCount(table) < 1500 {
		if time.Now().After(deadline) {
			t.Fatalf("b applied only %d keys in 60 s\n%s", b.replKeyCount(table), b.logs)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	b.kill()
	if done := w.done.Load(); done >= total {
		t.Fatalf("the writes were over (%d) before b was killed: the test needs them in flight", done)
	}
	cur, ok := b.replStoredCursor(table, "a")
	if !ok || cur.LogID == "" || cur.Offset < 2 {
		t.Fatalf("b saved no useful cursor in a's log before the kill: %+v %v", cur, ok)
	}
	t.Logf("b killed with %d of %d writes acknowledged on a; its stored cursor: %+v", w.done.Load(), total, cur)

	b.start() // its log buffer now holds only the new process's lines
	w.wait(t)
	want, err := a.replScan(context.Background(), table)
	if err != nil || len(want) != total+1 {
		t.Fatalf("a holds %d keys (%v), want %d", len(want), err, total+1)
	}
	replWaitContents(t, table, replValues(want), b)
	// Versions too: b holds a's records, not look-alikes.
	got, err := b.replScan(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	for k, r := range want {
		if g := got[k]; g.HLC != r.HLC || g.Origin != r.Origin {
			t.Fatalf("%s: b has version %d/%s, a has %d/%s", k, g.HLC, g.Origin, r.HLC, r.Origin)
		}
	}

	logs := b.logs.String()
	subs := replSubscriptions(logs, table, "a")
	if len(subs) == 0 {
		t.Fatalf("no subscription of b to a for %s after the restart:\n%s", table, logs)
	}
	// The first subscription after the restart starts right after the
	// stored cursor, in the same log; none re-reads from the start.
	if s := subs[0]; s.logID != cur.LogID || s.from != cur.Offset+1 {
		t.Fatalf("b resumed at %s/%d, its stored cursor was %s/%d", s.logID, s.from, cur.LogID, cur.Offset)
	}
	for _, s := range subs {
		if s.from <= 1 || s.logID == "" {
			t.Fatalf("b subscribed again from the start: %+v\n%s", s, logs)
		}
	}
	if n := replSnapshots(logs, table); n != 0 {
		t.Fatalf("b received %d snapshots of %s after the restart; it had a cursor in a's log:\n%s", n, table, logs)
	}
}

// Retention and acknowledgements: a subscriber away for more than the
// retention window but less than 10 windows resumes from the publisher's
// log (its acknowledgement held truncation back); one away longer, whose
// cursor fell out of the publisher's log, gets a snapshot, deletes
// included, and converges.
func TestReplicationSnapshotAfterTruncation(t *testing.T) {
	a, b := replMesh2(t, "--wal-retention", "50", "--checkpoint-every", "100")
	const table = "trunc"
	replCreateTable(t, a, table, "all")
	b.replWaitHeld(table)
	// 100 keys b will see, and that a deletes while b is down.
	w := startReplWriter(a, table, 100, 4,
		func(i int) string { return fmt.Sprintf("d%03d", i) },
		func(i int) string { return "doomed" })
	w.wait(t)
	want := map[string]string{}
	for i := range 100 {
		want[fmt.Sprintf("d%03d", i)] = "doomed"
	}
	replWaitContents(t, table, want, b)
	// The cursor is saved at most every 100 ms (one left behind is flushed
	// shortly after): nudge until b has saved one that covers the 100 keys.
	// The key nudge is written at least once whatever the timing, so that
	// a's final contents are known exactly.
	var nudge string
	for i := 0; ; i++ {
		nudge = strconv.Itoa(i)
		a.must("put", table, "nudge", nudge)
		b.waitValue(table, "nudge", nudge)
		if cur, ok := b.replStoredCursor(table, "a"); ok && cur.Offset >= 100 {
			break
		}
		if i == 200 {
			t.Fatalf("b saved no cursor past offset 100 in a's log\n%s", b.logs)
		}
	}

	// b stopped cleanly while 300 entries are written, more than the
	// retention window (50) but less than 10 windows: b's acknowledgement
	// holds a's truncation back, and b resumes from its cursor.
	if err := b.stop(); err != nil {
		t.Fatalf("b stopped with %v\n%s", err, b.logs)
	}
	cur, ok := b.replStoredCursor(table, "a")
	if !ok {
		t.Fatal("b saved no cursor on stop")
	}
	w = startReplWriter(a, table, 300, 8, func(i int) string { return fmt.Sprintf("p%03d", i) }, func(int) string { return "p" })
	w.wait(t)
	deadline := time.Now().Add(20 * time.Second)
	for replNewestCheckpoint(t, a, table) <= cur.Offset+50 {
		if time.Now().After(deadline) {
			t.Fatalf("a wrote no checkpoint that leaves b's cursor %d behind the retention window", cur.Offset)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	if first := replWALFirst(t, a, table); first > cur.Offset+1 {
		t.Fatalf("a truncated its log to %d, past b's acknowledged cursor %d", first, cur.Offset)
	}
	b.start()
	final, err := a.replScan(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	replWaitContents(t, table, replValues(final), b)
	logs := b.logs.String()
	if subs := replSubscriptions(logs, table, "a"); len(subs) == 0 || subs[0].from != cur.Offset+1 || subs[0].logID != cur.LogID {
		t.Fatalf("b's subscriptions after a clean restart: %+v, want the first from %s/%d\n%s", subs, cur.LogID, cur.Offset+1, logs)
	}
	if n := replSnapshots(logs, table); n != 0 {
		t.Fatalf("b received %d snapshots though a kept its log for it:\n%s", n, logs)
	}

	// b killed while 3,000 entries are written: acknowledgements hold back
	// truncation only 500 entries (10 x 50), so b's cursor leaves a's log.
	b.kill()
	cur, ok = b.replStoredCursor(table, "a")
	if !ok {
		t.Fatal("b lost its cursor")
	}
	const total = 3000
	key := func(i int) string { return fmt.Sprintf("k%04d", i) }
	w = startReplWriter(a, table, total, 8, key, func(i int) string { return "v" + strconv.Itoa(i) })
	w.wait(t)
	ac := a.client()
	defer ac.Close()
	for i := range 100 {
		if _, err := ac.Delete(context.Background(), table, []byte(fmt.Sprintf("d%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	// More writes, so that the deletes too are behind a checkpoint and in
	// the snapshot rather than in the log after it.
	w = startReplWriter(a, table, 300, 4, func(i int) string { return fmt.Sprintf("late%03d", i) }, func(int) string { return "l" })
	w.wait(t)
	// Checkpoints (and the truncation after them) run in the background.
	deadline = time.Now().Add(20 * time.Second)
	for first := replWALFirst(t, a, table); first <= cur.Offset+1; first = replWALFirst(t, a, table) {
		if time.Now().After(deadline) {
			t.Fatalf("a's log still starts at %d, b's cursor is %d: nothing was truncated past it", first, cur.Offset)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}

	// b comes back while a keeps writing.
	b.start()
	w = startReplWriter(a, table, 500, 4, func(i int) string { return fmt.Sprintf("after%03d", i) }, func(int) string { return "x" })
	w.wait(t)
	final, err = a.replScan(context.Background(), table)
	if err != nil {
		t.Fatal(err)
	}
	// Every acknowledged write and nothing else: the deleted d keys are gone.
	want = map[string]string{"nudge": nudge}
	for i := range total {
		want[key(i)] = "v" + strconv.Itoa(i)
	}
	for i := range 300 {
		want[fmt.Sprintf("p%03d", i)] = "p"
		want[fmt.Sprintf("late%03d", i)] = "l"
	}
	for i := range 500 {
		want[fmt.Sprintf("after%03d", i)] = "x"
	}
	if got := replValues(final); !maps.Equal(got, want) {
		t.Fatalf("a's contents: %s", replDiff(got, want))
	}
	replWaitContents(t, table, replValues(final), b)
	logs = b.logs.String()
	subs := replSubscriptions(logs, table, "a")
	if len(subs) == 0 || subs[0].from != cur.Offset+1 {
		t.Fatalf("b's subscriptions after the restart: %+v, want the first from %d\n%s", subs, cur.Offset+1, logs)
	}
	if replSnapshots(logs, table) == 0 {
		t.Fatalf("b converged without a snapshot of %s:\n%s", table, logs)
	}
}

// replNewestCheckpoint is the offset of n's newest checkpoint of table (0:
// none), from the checkpoint file names.
func replNewestCheckpoint(t *testing.T, n *node, table string) uint64 {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(n.replTableDir(table), "checkpoint-*"))
	var newest uint64
	for _, name := range names {
		off, err := strconv.ParseUint(strings.TrimPrefix(filepath.Base(name), "checkpoint-"), 10, 64)
		if err == nil && off > newest {
			newest = off
		}
	}
	return newest
}

// replWALFirst is the first offset n's log of table still holds, read from
// the names of its segment files (tidwall/wal names a segment by its first
// index); n may be running.
func replWALFirst(t *testing.T, n *node, table string) uint64 {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(n.replTableDir(table), "wal", "*"))
	var first uint64
	for _, name := range names {
		base := strings.TrimSuffix(filepath.Base(name), ".START")
		if len(base) != 20 {
			continue
		}
		if off, err := strconv.ParseUint(base, 10, 64); err == nil && (first == 0 || off < first) {
			first = off
		}
	}
	if first == 0 {
		t.Fatalf("%s: no log segment of %s in %v", n.name, table, names)
	}
	return first
}

// Concurrent conflicting writes (puts and deletes) to the same keys on
// three nodes converge everywhere to the acknowledged write with the
// greatest (hlc, origin).
func TestReplicationConflictsConvergeToGreatestVersion(t *testing.T) {
	a, b, c := meshOf3(t)
	nodes := []*node{a, b, c}
	const table = "conflict"
	replCreateTable(t, a, table, "all")
	for _, n := range nodes {
		n.replWaitHeld(table)
	}
	// Every node's writes reach every other node before the race starts.
	for _, n := range nodes {
		n.must("put", table, "hello-"+n.name, "1")
	}
	for _, n := range nodes {
		for _, m := range nodes {
			n.waitValue(table, "hello-"+m.name, "1")
		}
	}

	type write struct {
		key     string
		version wal.Version
		value   string // "" for a delete
	}
	const keys, rounds, perNode = 20, 60, 2
	var mu sync.Mutex
	var acked []write
	var wg sync.WaitGroup
	errc := make(chan error, len(nodes)*perNode)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for ni, n := range nodes {
		for g := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				cl := n.client()
				defer cl.Close()
				for i := range rounds {
					key := fmt.Sprintf("x%02d", (i*7+g*3+ni*5)%keys)
					var res api.WriteResult
					var err error
					value := ""
					if i%5 == 4 {
						res, err = cl.Delete(ctx, table, []byte(key))
						var ae *api.Error
						if errors.As(err, &ae) && ae.Code == api.CodeNotFound {
							continue // nothing to delete here: not a write
						}
					} else {
						value = fmt.Sprintf("%s-%d-%d", n.name, g, i)
						res, err = cl.Put(ctx, table, []byte(key), []byte(value))
					}
					if err != nil {
						errc <- fmt.Errorf("%s: %w", n.name, err)
						return
					}
					if res.Origin != n.name {
						errc <- fmt.Errorf("%s: a write acknowledged with origin %q", n.name, res.Origin)
						return
					}
					mu.Lock()
					acked = append(acked, write{key, wal.Version{HLC: uint64(res.HLC), Origin: res.Origin}, value})
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}

	winners := map[string]write{}
	origins := map[string]map[string]bool{}
	deletes := 0
	for _, w := range acked {
		if cur, ok := winners[w.key]; !ok || w.version.Compare(cur.version) > 0 {
			winners[w.key] = w
		} else if w.version.Compare(cur.version) == 0 {
			t.Fatalf("two acknowledged writes share version %+v", w.version)
		}
		if origins[w.key] == nil {
			origins[w.key] = map[string]bool{}
		}
		origins[w.key][w.version.Origin] = true
		if w.value == "" {
			deletes++
		}
	}
	for k, o := range origins {
		if len(o) < 2 {
			t.Fatalf("key %s was written by %v only: no conflict", k, o)
		}
	}
	if deletes == 0 {
		t.Fatal("no delete was acknowledged")
	}
	want := map[string]string{}
	for _, n := range nodes {
		want["hello-"+n.name] = "1"
	}
	for k, w := range winners {
		if w.value != "" {
			want[k] = w.value
		}
	}
	t.Logf("%d acknowledged writes (%d deletes); %d keys live after the race", len(acked), deletes, len(want)-3)
	replWaitContents(t, table, want, nodes...)
	for _, n := range nodes {
		got, err := n.replScan(context.Background(), table)
		if err != nil {
			t.Fatal(err)
		}
		for k, w := range winners {
			if r, ok := got[k]; ok && (uint64(r.HLC) != w.version.HLC || r.Origin != w.version.Origin) {
				t.Fatalf("%s: %s has version %d/%s, the winner is %d/%s", n.name, k, r.HLC, r.Origin, w.version.HLC, w.version.Origin)
			}
		}
	}
}

// A node that was down while tables were created, written and partly
// deleted gets them when it comes back, with their data, deletes included,
// and holds only what its scope selects.
func TestReplicationNodeDownDuringTableCreate(t *testing.T) {
	a, b, c := meshOf3(t)
	c.kill()
	a.waitPeers("b")

	replCreateTable(t, a, "late", "all")
	replCreateTable(t, b, "late_ab", "a,b")
	b.replWaitHeld("late")
	a.replWaitHeld("late_ab")
	w := startReplWriter(a, "late", 200, 4, func(i int) string { return fmt.Sprintf("k%03d", i) }, func(i int) string { return "a" + strconv.Itoa(i) })
	w.wait(t)
	b.must("put", "late", "from-b", "b")
	b.must("put", "late_ab", "secret", "topsecret")
	want := map[string]string{"from-b": "b"}
	for i := range 200 {
		want[fmt.Sprintf("k%03d", i)] = "a" + strconv.Itoa(i)
	}
	replWaitContents(t, "late", want, b)
	// Deletes on both sides.
	for i := 0; i < 200; i += 10 {
		n := a
		if i%20 == 0 {
			n = b
		}
		n.must("del", "late", fmt.Sprintf("k%03d", i))
		delete(want, fmt.Sprintf("k%03d", i))
	}
	replWaitContents(t, "late", want, a, b)

	c.start()
	c.waitPeers("a", "b")
	c.replWaitHeld("late")
	replWaitContents(t, "late", want, c)
	// late_ab is listed on c but not held there.
	if !c.replPollTable("late_ab", func(ti api.TableInfo) bool { return !ti.Held }) {
		t.Fatalf("c does not list late_ab as held elsewhere\n%s", c.logs)
	}
	if r := c.cli("get", "late_ab", "secret"); r.code == 0 || strings.Contains(r.stdout, "topsecret") {
		t.Fatalf("c answered a get on late_ab: %+v", r)
	}
	if dirs, _ := filepath.Glob(filepath.Join(c.dir, "tables", "late_ab-*")); len(dirs) != 0 {
		t.Fatalf("c has a copy of late_ab: %v", dirs)
	}
	// And it takes part again: a write on c reaches a and b.
	c.must("put", "late", "from-c", "c")
	a.waitValue("late", "from-c", "c")
	b.waitValue("late", "from-c", "c")
}
