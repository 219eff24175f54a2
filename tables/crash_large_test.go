package tables_test

// Real-process crash tests with values at the size limit, in the manner of
// TestCrashRecovery (crash_test.go): the test binary is re-executed as a
// writer process (TestLargeCrashHelperProcess, which does nothing unless
// CORTEX_LARGE_CRASH_HELPER is set), killed with SIGKILL, and the table is
// recovered from its directory.
//
// Values are too large for the writer's stdout, so a write is named by its
// key, an id and a size, from which largeValue derives the bytes on both
// sides. The writer prints "try KEY ID SIZE" before a put and "ack KEY ID
// SIZE" once it returned nil, each line flushed at once; "done" when it has
// made all the writes it was asked for.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/tables"
)

const largeHelperEnv = "CORTEX_LARGE_CRASH_HELPER" // the writer's largeConfig, as JSON

// largeConfig is what one writer process does.
type largeConfig struct {
	Dir             string
	Round           int
	Seed            uint64
	Writers         int
	Ops             int  // puts to attempt in all, then print "done" and wait to be killed
	Fresh           bool // a new key for every put; else each writer overwrites KeysPerWriter keys
	KeysPerWriter   int
	AllMax          bool // every value DefaultMaxValueSize bytes; else mostly, with some smaller ones
	CheckpointEvery int
	Retention       uint64
	SegmentSize     int
}

func largeOptions(c largeConfig, logger *slog.Logger) tables.Options {
	return tables.Options{
		Name:            "large",
		Node:            "large-node",
		CheckpointEvery: c.CheckpointEvery,
		Retention:       c.Retention,
		SegmentSize:     c.SegmentSize,
		Logger:          logger,
		// NoSync false: every acknowledged write was fsynced.
	}
}

// largeValue is the value of the write id of key: size bytes derived from both.
func largeValue(key, id string, size int) []byte {
	v := make([]byte, size)
	rand.NewChaCha8(sha256.Sum256([]byte(key + "\x00" + id))).Read(v)
	return v
}

// ---------------------------------------------------------------------------
// The writer process.

// TestLargeCrashHelperProcess is the writer process of the large-value crash
// tests. When it runs it never returns: it is killed, or exits by itself.
func TestLargeCrashHelperProcess(t *testing.T) {
	env := os.Getenv(largeHelperEnv)
	if env == "" {
		t.Skip("the writer process of the large-value crash tests; runs only when re-executed by them")
	}
	out := &crashOut{w: bufio.NewWriter(os.Stdout)}
	var c largeConfig
	if err := json.Unmarshal([]byte(env), &c); err != nil {
		out.fatal("bad environment: %v", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	tbl, err := tables.Open(c.Dir, largeOptions(c, logger))
	if err != nil {
		out.fatal("open: %v", err)
	}
	ctx := context.Background()
	var claimed atomic.Int64
	var wg sync.WaitGroup
	for w := range c.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(c.Seed, uint64(w)))
			for seq := 0; claimed.Add(1) <= int64(c.Ops); seq++ {
				key := fmt.Sprintf("w%d-k%02d", w, rng.IntN(max(c.KeysPerWriter, 1)))
				if c.Fresh {
					key = fmt.Sprintf("r%d-w%d-%04d", c.Round, w, seq)
				}
				id := fmt.Sprintf("r%d.w%d.s%d", c.Round, w, seq)
				size := tables.DefaultMaxValueSize
				switch p := rng.IntN(100); {
				case c.AllMax, p < 80:
				case p < 95:
					size -= rng.IntN(4096)
				default:
					size = rng.IntN(64 << 10)
				}
				out.line("try %s %s %d", key, id, size)
				if _, err := tbl.Put(ctx, []byte(key), largeValue(key, id, size)); err != nil {
					out.fatal("put %s: %v", key, err)
				}
				out.line("ack %s %s %d", key, id, size)
			}
		}()
	}
	wg.Wait()
	// Without Close: no final checkpoint. Wait for the kill.
	out.line("done")
	time.Sleep(time.Minute)
	os.Exit(0)
}

// ---------------------------------------------------------------------------
// The tests.

// largeWrite names a put: the value is largeValue(key, id, size).
type largeWrite struct {
	id   string
	size int
}

// largeResult is what one writer process reported.
type largeResult struct {
	acks     int
	inflight map[string]largeWrite // attempted, not acknowledged
	done     bool
	state    string
}

// largeRunWriter runs a writer process with c, SIGKILLs it once killAfter
// puts are acknowledged (killAfter 0: once it is done) or at deadline, and
// folds the acknowledged puts into expect.
func largeRunWriter(t *testing.T, c largeConfig, killAfter int, deadline time.Time, expect map[string]largeWrite) largeResult {
	t.Helper()
	env, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestLargeCrashHelperProcess$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), largeHelperEnv+"="+string(env))
	var stderr crashTailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the writer process: %v", err)
	}
	var killOnce sync.Once
	var deadlineHit atomic.Bool
	kill := func() { killOnce.Do(func() { cmd.Process.Kill() }) } // SIGKILL on Unix
	timer := time.AfterFunc(time.Until(deadline), func() { deadlineHit.Store(true); kill() })
	waited := false
	defer func() {
		timer.Stop()
		if !waited { // a t.Fatal on the way: do not leave the process behind
			kill()
			io.Copy(io.Discard, stdout)
			cmd.Wait()
		}
	}()

	res := largeResult{inflight: map[string]largeWrite{}}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "try", "ack":
			f := strings.Fields(rest)
			size, err := 0, errors.New("want KEY ID SIZE")
			if len(f) == 3 {
				size, err = strconv.Atoi(f[2])
			}
			if err != nil {
				t.Fatalf("round %d: writer line %q: %v", c.Round, line, err)
			}
			key, w := f[0], largeWrite{id: f[1], size: size}
			if verb == "try" {
				if _, dup := res.inflight[key]; dup {
					t.Fatalf("round %d: writer line %q: a second write of %s in flight", c.Round, line, key)
				}
				res.inflight[key] = w
				continue
			}
			if res.inflight[key] != w {
				t.Fatalf("round %d: writer line %q acknowledges a write it did not announce", c.Round, line)
			}
			delete(res.inflight, key)
			expect[key] = w
			if res.acks++; res.acks == killAfter {
				kill()
			}
		case "done":
			res.done = true
			if killAfter == 0 {
				kill()
			}
		case "fatal":
			t.Fatalf("round %d: the writer failed: %s\nstderr:\n%s", c.Round, rest, stderr.String())
		default:
			t.Logf("round %d: writer says: %s", c.Round, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("round %d: reading the writer: %v", c.Round, err)
	}
	cmd.Wait()
	waited = true
	ps := cmd.ProcessState
	switch {
	case ps == nil || ps.Exited():
		t.Fatalf("round %d: the writer ended by itself (%v), not by our SIGKILL\nstderr:\n%s", c.Round, ps, stderr.String())
	case deadlineHit.Load():
		res.state = "killed at the round deadline (" + ps.String() + ")"
	default:
		res.state = "killed (" + ps.String() + ")"
	}
	if s := stderr.String(); strings.Contains(s, "DATA RACE") || strings.Contains(s, "panic:") {
		t.Fatalf("round %d: the writer reported a failure on stderr:\n%s", c.Round, s)
	}
	return res
}

// largeVerify recovers the table of c.Dir and checks it holds, for every key
// of expect, the acknowledged value or the one in flight at the kill, and
// no other key. It settles the writes in flight as recovery decided them,
// closes the table (a checkpoint) and opens it again. It returns the bytes of
// values recovery replayed from the log.
func largeVerify(t *testing.T, c largeConfig, expect map[string]largeWrite, inflight map[string]largeWrite) (replayed int64) {
	t.Helper()
	_, ckpt, _ := tables.NewestCheckpoint(c.Dir)
	logger, _ := crashLogger(t, fmt.Sprintf("round %d recovery", c.Round))
	start := time.Now()
	tbl, err := tables.Open(c.Dir, largeOptions(c, logger))
	if err != nil {
		t.Fatalf("round %d: recovery failed: %v", c.Round, err)
	}
	opened := time.Since(start)
	closed := false
	defer func() {
		if !closed {
			tbl.Close()
		}
	}()
	stats := tbl.Stats()
	if _, last := tbl.Bounds(); stats.Applied != last {
		t.Errorf("round %d: the view reflects the log up to offset %d, but the log goes on to %d", c.Round, stats.Applied, last)
	}
	replayed = largeLogBytes(t, tbl, ckpt+1)

	all, err := tbl.ScanAll(nil, nil, 0)
	if err != nil {
		t.Fatalf("round %d: scan: %v", c.Round, err)
	}
	if stats.Keys != int64(len(all)) || stats.Tombstones != 0 {
		t.Errorf("round %d: Stats says %d keys and %d tombstones; a full scan holds %d records, all puts", c.Round, stats.Keys, stats.Tombstones, len(all))
	}
	got := map[string]bool{}
	for _, r := range all {
		key := string(r.Key)
		got[key] = true
		ack, settled := expect[key]
		fly, pending := inflight[key]
		switch {
		case settled && bytes.Equal(r.Value, largeValue(key, ack.id, ack.size)):
		case pending && bytes.Equal(r.Value, largeValue(key, fly.id, fly.size)):
			expect[key] = fly // recovery kept the write in flight: it must stay
		case !settled && !pending:
			t.Errorf("round %d: %s is present (%d bytes) but was never written", c.Round, key, len(r.Value))
		default:
			t.Errorf("round %d: %s holds %d bytes that are neither the acknowledged write %+v (%v) nor the one in flight %+v (%v)",
				c.Round, key, len(r.Value), ack, settled, fly, pending)
		}
	}
	lost := 0
	for key, w := range expect {
		if !got[key] {
			if lost++; lost <= 10 {
				t.Errorf("round %d: acknowledged put of %s (%s, %d bytes) lost", c.Round, key, w.id, w.size)
			}
		}
	}
	if lost > 0 {
		t.Errorf("round %d: %d acknowledged keys lost of %d", c.Round, lost, len(expect))
	}
	t.Logf("round %d: recovered in %v: checkpoint %d, applied %d (%d bytes of values replayed), %d keys",
		c.Round, opened.Round(time.Millisecond), ckpt, stats.Applied, replayed, stats.Keys)

	// The table always opens again, the same.
	closed = true
	if err := tbl.Close(); err != nil {
		t.Fatalf("round %d: close: %v", c.Round, err)
	}
	again, err := tables.Open(c.Dir, largeOptions(c, logger))
	if err != nil {
		t.Fatalf("round %d: reopen after close: %v", c.Round, err)
	}
	crashSameStats(t, fmt.Sprintf("round %d: reopen after close", c.Round), stats, again.Stats())
	if err := again.Close(); err != nil {
		t.Fatalf("round %d: close: %v", c.Round, err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return replayed
}

// largeLogBytes sums the value sizes of the log's entries from offset from on.
func largeLogBytes(t *testing.T, tbl *tables.Table, from uint64) int64 {
	t.Helper()
	_, last := tbl.Bounds()
	var n int64
	for from <= last {
		recs, err := tbl.Changes(context.Background(), from, 4096)
		if err != nil || len(recs) == 0 {
			t.Fatalf("read the log from %d: %d records, %v", from, len(recs), err)
		}
		for _, r := range recs {
			n += int64(len(r.Value))
		}
		from = recs[len(recs)-1].Offset + 1
	}
	return n
}

func largeCrashPreamble(t *testing.T, budget time.Duration) uint64 {
	t.Helper()
	if testing.Short() {
		t.Skip("skipping a real-process crash test in -short mode")
	}
	if d, ok := t.Deadline(); ok && time.Until(d) < budget+20*time.Second {
		t.Skipf("not enough time left before the test deadline (%v)", time.Until(d).Round(time.Second))
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
	}
	t.Logf("seed %d (set %s=%d to reuse it)", seed, crashSeedEnv, seed)
	return seed
}

// TestReplayLargeValuesAfterKill writes values of the maximum size, enough
// to fill many small segments and far more than one read of the log (4 MiB),
// with no checkpoint, SIGKILLs the writer once every put was acknowledged,
// and recovers: recovery replays the whole log, and every value is there.
func TestReplayLargeValuesAfterKill(t *testing.T) {
	seed := largeCrashPreamble(t, 30*time.Second)
	c := largeConfig{
		Dir: t.TempDir(), Round: 1, Seed: seed,
		Writers: 2, Ops: 20, Fresh: true, AllMax: true,
		CheckpointEvery: -1,      // only at Close, which the writer never reaches
		SegmentSize:     2 << 20, // two values to a segment
	}
	expect := map[string]largeWrite{}
	start := time.Now()
	res := largeRunWriter(t, c, 0, time.Now().Add(30*time.Second), expect)
	if !res.done || res.acks != c.Ops || len(res.inflight) != 0 {
		t.Fatalf("the writer was %s after %d acknowledged puts (done: %v, %d in flight); want all %d", res.state, res.acks, res.done, len(res.inflight), c.Ops)
	}
	segs, _ := os.ReadDir(c.Dir + "/wal")
	t.Logf("%d puts of %d bytes acknowledged in %v, then %s; wal holds %d files",
		res.acks, tables.DefaultMaxValueSize, time.Since(start).Round(time.Millisecond), res.state, len(segs))
	if len(segs) < 6 {
		t.Fatalf("the log has %d files, want several segments", len(segs))
	}
	replayed := largeVerify(t, c, expect, nil)
	if want := int64(c.Ops) * tables.DefaultMaxValueSize; replayed != want {
		t.Fatalf("recovery replayed %d bytes of values, want the whole log: %d", replayed, want)
	}
	if len(expect) != c.Ops {
		t.Fatalf("%d keys expected, want %d", len(expect), c.Ops)
	}
}

// TestCrashRecoveryLargeValues kills a writer of values at the size limit
// at random points, round after round on the same directory, with
// background checkpoints and log truncation: every acknowledged put is there
// after each recovery, and the table always opens again. The kill points are
// seeded (CORTEX_CRASH_SEED); the interleaving of the writers is not.
func TestCrashRecoveryLargeValues(t *testing.T) {
	const rounds = 5
	const roundTime = 6 * time.Second // the writer is killed by then at the latest
	seed := largeCrashPreamble(t, rounds*(roundTime+5*time.Second))
	dir := t.TempDir()
	expect := map[string]largeWrite{}
	start := time.Now()
	var maxReplayed int64
	for round := 1; round <= rounds; round++ {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		// The first round stops before the first background checkpoint
		// (every 16 entries), so its recovery replays more than 4 MiB.
		killAfter := 8 + rng.IntN(4)
		if round > 1 {
			killAfter = 2 + rng.IntN(23)
		}
		c := largeConfig{
			Dir: dir, Round: round, Seed: rng.Uint64(),
			Writers: 4, Ops: 10_000, KeysPerWriter: 6, // at most 24 live values
			CheckpointEvery: 16, Retention: 8,
			// the default segment size: 4 MiB, four values
		}
		roundStart := time.Now()
		res := largeRunWriter(t, c, killAfter, time.Now().Add(roundTime), expect)
		t.Logf("round %d: kill after %d, acknowledged %d (%d in flight) in %v; %s",
			round, killAfter, res.acks, len(res.inflight), time.Since(roundStart).Round(time.Millisecond), res.state)
		if res.acks == 0 {
			// A slow machine may stop a round at its deadline, a kill at
			// another point; but with nothing acknowledged it tests nothing.
			t.Fatalf("round %d: no put acknowledged in %v", round, roundTime)
		}
		maxReplayed = max(maxReplayed, largeVerify(t, c, expect, res.inflight))
	}
	t.Logf("%d rounds, %d keys expected at the end, at most %d bytes of values replayed, %v",
		rounds, len(expect), maxReplayed, time.Since(start).Round(time.Millisecond))
	if maxReplayed <= 4<<20 {
		t.Errorf("no recovery replayed more than one read of the log (4 MiB): the case of the bug was not exercised")
	}
}
