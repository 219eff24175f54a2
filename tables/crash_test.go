package tables_test

// A real-process crash test. TestCrashRecovery re-executes the test binary as
// a writer process (TestCrashHelperProcess, which does nothing unless
// CORTEX_CRASH_HELPER_DIR is set), lets it write to a table with durable
// options, kills it with SIGKILL at a random point, and checks the table
// recovered from the directory: every acknowledged write is there, nothing
// that was never attempted is, the counts and the digest are consistent. The
// cycle repeats on the same directory, so recovery follows recovery, with
// checkpoints and log truncations written during the runs.
//
// The writer prints "try put KEY VALUE" / "try del KEY" before each operation
// and "put KEY VALUE" / "del KEY" after the operation returned nil, each line
// flushed at once. An acknowledged line means the write must survive; a
// "try" without its acknowledgement is a write in flight at the kill: it may
// or may not survive, and what recovery decided must then stay decided.
//
// Reproduce a run with CORTEX_CRASH_SEED=<seed from the log>; the kill
// points are seeded, the interleaving of the writers is not. Soak with
// CORTEX_CRASH_ROUNDS=<n> (default 5).

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/tables"
)

const (
	crashHelperDirEnv   = "CORTEX_CRASH_HELPER_DIR"
	crashHelperRoundEnv = "CORTEX_CRASH_HELPER_ROUND"
	crashHelperSeedEnv  = "CORTEX_CRASH_HELPER_SEED"
	crashSeedEnv        = "CORTEX_CRASH_SEED"
	crashRoundsEnv      = "CORTEX_CRASH_ROUNDS" // more rounds, for a soak run

	crashNode            = "crash-node"
	crashTable           = "crash"
	crashRounds          = 5
	crashWriters         = 16
	crashCheckpointEvery = 2000
	crashRetention       = 1000
	crashSegmentSize     = 256 << 10 // small, so segments cycle and truncation drops whole ones

	crashMinKill = 2_000  // acknowledged writes before the kill, at least
	crashMaxKill = 20_000 // and at most
	// The writer stops by itself after this many acknowledged writes or this
	// long, whichever comes first, should nobody kill it.
	crashHelperMaxOps  = 40_000
	crashHelperMaxTime = 45 * time.Second
)

func crashOptions(logger *slog.Logger) tables.Options {
	return tables.Options{
		Name:            crashTable,
		Node:            crashNode,
		CheckpointEvery: crashCheckpointEvery,
		Retention:       crashRetention,
		SegmentSize:     crashSegmentSize,
		Logger:          logger,
		// NoSync false: every acknowledged write was fsynced.
	}
}

// crashValue is the value a writer gives key in a round: derived from both,
// of varying length, with no spaces.
func crashValue(key string, round int) string {
	h := crc32.ChecksumIEEE([]byte(key))
	v := fmt.Sprintf("%s.r%d.%08x.", key, round, h)
	return v + strings.Repeat(strconv.FormatUint(uint64(h%36), 36), int(h%97))
}

// ---------------------------------------------------------------------------
// The writer process.

// TestCrashHelperProcess is the writer process of TestCrashRecovery. It never
// returns when it runs: it is killed, or exits by itself.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv(crashHelperDirEnv)
	if dir == "" {
		t.Skip("the writer process of TestCrashRecovery; runs only when re-executed by it")
	}
	round, err1 := strconv.Atoi(os.Getenv(crashHelperRoundEnv))
	seed, err2 := strconv.ParseUint(os.Getenv(crashHelperSeedEnv), 10, 64)
	out := &crashOut{w: bufio.NewWriter(os.Stdout)}
	if err := errors.Join(err1, err2); err != nil {
		out.fatal("bad environment: %v", err)
	}
	crashWriter(dir, round, seed, out)
}

// crashOut serialises the writer's stdout lines, each flushed at once.
type crashOut struct {
	mu sync.Mutex
	w  *bufio.Writer
}

func (o *crashOut) line(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format+"\n", args...)
	if err := o.w.Flush(); err != nil {
		os.Exit(3) // the parent is gone
	}
}

func (o *crashOut) fatal(format string, args ...any) {
	o.line("fatal "+format, args...)
	os.Exit(2)
}

func crashWriter(dir string, round int, seed uint64, out *crashOut) {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	tbl, err := tables.Open(dir, crashOptions(logger))
	if err != nil {
		out.fatal("open: %v", err)
	}
	// Keys from earlier rounds, shared out among the writers: each key is
	// touched by one writer only, so its last acknowledged write is its state.
	old, err := tbl.Scan(nil, nil, 0)
	if err != nil {
		out.fatal("scan: %v", err)
	}
	inherited := make([][]string, crashWriters)
	for i, r := range old {
		inherited[i%crashWriters] = append(inherited[i%crashWriters], string(r.Key))
	}

	ctx := context.Background()
	deadline := time.Now().Add(crashHelperMaxTime)
	var acked atomic.Int64
	var wg sync.WaitGroup
	for w := range crashWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(w)))
			mine := inherited[w]
			rng.Shuffle(len(mine), func(i, j int) { mine[i], mine[j] = mine[j], mine[i] })
			var own []string // this round's keys of this writer, acknowledged and live
			for seq := 0; acked.Load() < crashHelperMaxOps && time.Now().Before(deadline); seq++ {
				var key, value string
				del, fresh := false, false
				switch p := rng.IntN(100); {
				case p < 10 && len(own) > 0: // delete one of its own
					i := rng.IntN(len(own))
					key, del = own[i], true
					own[i] = own[len(own)-1]
					own = own[:len(own)-1]
				case p < 15 && len(mine) > 0: // delete or overwrite a key of an earlier round
					key, mine = mine[len(mine)-1], mine[:len(mine)-1]
					if del = rng.IntN(2) == 0; !del {
						value = crashValue(key, round)
					}
				default:
					key = fmt.Sprintf("r%d-w%02d-%06d", round, w, seq)
					value = crashValue(key, round)
					fresh = true
				}
				if del {
					out.line("try del %s", key)
					if _, err := tbl.Delete(ctx, []byte(key)); err != nil {
						out.fatal("delete %s: %v", key, err)
					}
					out.line("del %s", key)
				} else {
					out.line("try put %s %s", key, value)
					if _, err := tbl.Put(ctx, []byte(key), []byte(value)); err != nil {
						out.fatal("put %s: %v", key, err)
					}
					out.line("put %s %s", key, value)
					if fresh {
						own = append(own, key)
					}
				}
				acked.Add(1)
			}
		}()
	}
	wg.Wait()
	// Stop without Close: no final checkpoint, like a crash after the writes.
	out.line("done")
	os.Exit(0)
}

// ---------------------------------------------------------------------------
// The test.

// crashExpect is what a key must hold after recovery.
type crashExpect struct {
	live  bool
	value string
}

// crashOp is a write the writer attempted.
type crashOp struct {
	del   bool
	value string
}

func (op crashOp) result() crashExpect { return crashExpect{live: !op.del, value: op.value} }

// crashRound is what one writer process reported.
type crashRound struct {
	acks, tries int
	inflight    map[string]crashOp // attempted, not acknowledged
	done        bool               // the writer stopped by itself
	killed      bool
	deadlineHit bool
	state       string // how the process ended
	stderr      string
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the real-process crash test in -short mode (it runs writer processes and SIGKILLs them)")
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(crashSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", crashSeedEnv, s, err)
		}
	}
	rounds := crashRounds
	if s := os.Getenv(crashRoundsEnv); s != "" {
		var err error
		if rounds, err = strconv.Atoi(s); err != nil || rounds < 1 {
			t.Fatalf("%s=%q: want a positive number", crashRoundsEnv, s)
		}
	}
	t.Logf("seed %d (set %s=%d to reuse the kill points), %d rounds", seed, crashSeedEnv, seed, rounds)

	// Bound the whole test: each round's writer is killed by its deadline at
	// the latest, whatever its target.
	start := time.Now()
	budget := time.Duration(rounds) * 8 * time.Second
	if d, ok := t.Deadline(); ok && time.Until(d) < budget+20*time.Second {
		t.Skipf("not enough time left before the test deadline (%v) for the crash test", time.Until(d).Round(time.Second))
	}

	dir := filepath.Join(t.TempDir(), "table")
	expect := map[string]crashExpect{} // every key ever attempted and settled
	var prev tables.Stats
	midRunCheckpoints := 0
	totalAcks := 0
	for round := 1; round <= rounds; round++ {
		rng := rand.New(rand.NewPCG(seed, uint64(round)))
		target := crashMinKill + rng.IntN(crashMaxKill-crashMinKill+1)
		helperSeed := rng.Uint64()
		roundBudget := (budget - time.Since(start)) / time.Duration(rounds-round+1)
		roundBudget = max(roundBudget, 2*time.Second)

		roundStart := time.Now()
		res := crashRunWriter(t, dir, round, helperSeed, target, expect, time.Now().Add(roundBudget))
		ran := time.Since(roundStart)
		totalAcks += res.acks

		// What the crash left on disk, before anything touches it.
		files := crashListing(t, dir)
		ckpts := crashCheckpoints(files)
		newest := uint64(0)
		if len(ckpts) > 0 {
			newest = ckpts[0]
		}
		midRun := newest > prev.Applied
		if midRun {
			midRunCheckpoints++
		}
		t.Logf("round %d: target %d, acknowledged %d (attempted %d, %d in flight) in %v; %s%s; newest checkpoint %d (mid-run: %v); files: %s",
			round, target, res.acks, res.tries, len(res.inflight), ran.Round(time.Millisecond), res.state,
			map[bool]string{true: " (round deadline hit)"}[res.deadlineHit], newest, midRun, strings.Join(files, " "))

		// A pristine copy of the crashed directory, to recover a second time
		// from exactly the same state.
		pristine := dir + fmt.Sprintf(".crashed-%d", round)
		crashCopyDir(t, dir, pristine)

		stats := crashVerify(t, dir, round, expect, res.inflight, res.acks, res.tries, prev)
		t.Logf("round %d: recovered: applied %d, first offset %d, %d keys, %d tombstones, digest %016x; %d keys expected",
			round, stats.Applied, stats.FirstOffset, stats.Keys, stats.Tombstones, stats.Digest, len(expect))

		// The second opening loads the checkpoint written by the first Close.
		again := crashOpenStats(t, dir)
		crashSameStats(t, "reopen after close", stats, again)
		// And recovery from the untouched crash state gives the same.
		copyStats := crashOpenStats(t, pristine)
		crashSameStats(t, "recovery of a copy of the crashed directory", stats, copyStats)
		if err := os.RemoveAll(pristine); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			t.FailNow()
		}
		prev = stats
	}
	t.Logf("%d rounds, %d acknowledged writes in all, %d keys expected at the end, %d crash(es) after a mid-run checkpoint, %v",
		rounds, totalAcks, len(expect), midRunCheckpoints, time.Since(start).Round(time.Millisecond))
	if midRunCheckpoints == 0 {
		t.Errorf("no round was killed after a checkpoint written during the run: recovery from a mid-run checkpoint was not exercised")
	}
}

// crashRunWriter runs one writer process on dir, kills it after target
// acknowledged writes (or at deadline), and folds what it acknowledged into
// expect. It returns the writes left in flight.
func crashRunWriter(t *testing.T, dir string, round int, seed uint64, target int,
	expect map[string]crashExpect, deadline time.Time) crashRound {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(),
		crashHelperDirEnv+"="+dir,
		crashHelperRoundEnv+"="+strconv.Itoa(round),
		crashHelperSeedEnv+"="+strconv.FormatUint(seed, 10),
	)
	var stderr crashTailBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the writer process: %v", err)
	}
	var (
		killOnce    sync.Once
		deadlineHit atomic.Bool
		waited      bool
	)
	kill := func() { killOnce.Do(func() { cmd.Process.Kill() }) } // SIGKILL on Unix
	timer := time.AfterFunc(time.Until(deadline), func() { deadlineHit.Store(true); kill() })
	defer func() {
		timer.Stop()
		if !waited { // a t.Fatal on the way: do not leave the process behind
			kill()
			io.Copy(io.Discard, stdout)
			cmd.Wait()
		}
	}()

	res := crashRound{inflight: map[string]crashOp{}}
	killed := false
	sc := bufio.NewScanner(stdout)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		verb, rest, _ := strings.Cut(line, " ")
		switch verb {
		case "try":
			op, key, value, err := crashParseOp(rest)
			if err != nil {
				t.Fatalf("round %d: writer line %q: %v", round, line, err)
			}
			if _, dup := res.inflight[key]; dup {
				t.Fatalf("round %d: writer line %q: a second write of %s in flight", round, line, key)
			}
			res.inflight[key] = crashOp{del: op == "del", value: value}
			res.tries++
		case "put", "del":
			_, key, value, err := crashParseOp(line)
			if err != nil {
				t.Fatalf("round %d: writer line %q: %v", round, line, err)
			}
			op, ok := res.inflight[key]
			if !ok || op.del != (verb == "del") || op.value != value {
				t.Fatalf("round %d: writer line %q acknowledges a write it did not announce", round, line)
			}
			delete(res.inflight, key)
			expect[key] = op.result()
			if res.acks++; res.acks == target && !killed {
				killed = true
				kill()
			}
		case "done":
			res.done = true
		case "fatal":
			t.Fatalf("round %d: the writer failed: %s\nstderr:\n%s", round, rest, stderr.String())
		default:
			// The testing package's own output, should there be any.
			t.Logf("round %d: writer says: %s", round, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("round %d: reading the writer: %v", round, err)
	}
	waitErr := cmd.Wait()
	waited = true
	res.killed = killed || deadlineHit.Load()
	res.deadlineHit = deadlineHit.Load()
	res.stderr = stderr.String()
	ps := cmd.ProcessState
	switch {
	case ps == nil:
		t.Fatalf("round %d: wait for the writer: %v", round, waitErr)
	case ps.Exited() && ps.ExitCode() == 0 && res.done:
		res.state = "the writer stopped by itself"
	case !ps.Exited() && res.killed:
		res.state = "killed (" + ps.String() + ")"
	default:
		t.Fatalf("round %d: the writer ended unexpectedly: %v (killed by us: %v)\nstderr:\n%s", round, ps, res.killed, res.stderr)
	}
	if strings.Contains(res.stderr, "DATA RACE") || strings.Contains(res.stderr, "panic:") {
		t.Fatalf("round %d: the writer reported a failure on stderr:\n%s", round, res.stderr)
	}
	if res.acks < crashMinKill && !res.deadlineHit {
		t.Fatalf("round %d: only %d writes acknowledged, want at least %d", round, res.acks, crashMinKill)
	}
	return res
}

// crashParseOp parses "put KEY VALUE" or "del KEY".
func crashParseOp(s string) (op, key, value string, err error) {
	f := strings.Split(s, " ")
	switch {
	case len(f) == 3 && f[0] == "put":
		return f[0], f[1], f[2], nil
	case len(f) == 2 && f[0] == "del":
		return f[0], f[1], "", nil
	}
	return "", "", "", fmt.Errorf("malformed operation %q", s)
}

// crashVerify recovers the table in dir and checks it against expect and the
// writes in flight, then settles those in expect as recovery decided them.
func crashVerify(t *testing.T, dir string, round int, expect map[string]crashExpect,
	inflight map[string]crashOp, acks, tries int, prev tables.Stats) tables.Stats {
	t.Helper()
	logger, repairs := crashLogger(t, fmt.Sprintf("round %d recovery", round))
	tbl, err := tables.Open(dir, crashOptions(logger))
	if err != nil {
		t.Fatalf("round %d: recovery failed: %v", round, err)
	}
	defer func() {
		if err := tbl.Close(); err != nil {
			t.Errorf("round %d: close: %v", round, err)
		}
	}()
	stats := tbl.Stats()

	all, err := tbl.ScanAll(nil, nil, 0)
	if err != nil {
		t.Fatalf("round %d: scan all: %v", round, err)
	}
	live, err := tbl.Scan(nil, nil, 0)
	if err != nil {
		t.Fatalf("round %d: scan: %v", round, err)
	}
	const maxReports = 20
	bad := 0
	report := func(format string, args ...any) {
		if bad++; bad <= maxReports {
			t.Errorf("round %d: "+format, append([]any{round}, args...)...)
		}
	}

	got := make(map[string]crashExpect, len(all))
	nLive := 0
	for _, r := range all {
		key := string(r.Key)
		if r.Version.Origin != crashNode {
			report("%s: origin %q, want %q", key, r.Version.Origin, crashNode)
		}
		if !r.Deleted {
			nLive++
		}
		g := crashExpect{live: !r.Deleted, value: string(r.Value)}
		got[key] = g
		exp, settled := expect[key]
		op, pending := inflight[key]
		switch {
		case !settled && !pending:
			report("%s is present (%+v) but was never written", key, g)
		case settled && g == exp, pending && g == op.result():
		default:
			report("%s holds %+v; acknowledged: %+v (%v), in flight: %+v (%v)", key, g, exp, settled, op, pending)
		}
	}
	for key, exp := range expect {
		g, ok := got[key] // absent reads as deleted
		op, pending := inflight[key]
		inFlightWon := pending && g == op.result()
		switch {
		case inFlightWon:
		case exp.live && !ok:
			report("acknowledged put of %s lost: the key is gone, want %q", key, exp.value)
		case exp.live && g != exp:
			report("acknowledged put of %s lost: holds %+v, want %q", key, g, exp.value)
		case !exp.live && ok && g.live:
			report("acknowledged delete of %s lost: it holds %q", key, g.value)
		}
		// Point reads agree with the scan.
		r, err := tbl.Get([]byte(key))
		switch {
		case ok && g.live && err != nil:
			report("get %s: %v, the scan has %q", key, err, g.value)
		case ok && g.live && string(r.Value) != g.value:
			report("get %s: %q, the scan has %q", key, r.Value, g.value)
		case !(ok && g.live) && !errors.Is(err, tables.ErrNotFound):
			report("get %s: %q, %v; want ErrNotFound (deleted)", key, r.Value, err)
		}
	}
	if bad > maxReports {
		t.Errorf("round %d: %d more problems not shown", round, bad-maxReports)
	}

	if len(live) != nLive {
		t.Errorf("round %d: Scan returns %d records, ScanAll %d live ones", round, len(live), nLive)
	}
	if stats.Keys != int64(len(live)) {
		t.Errorf("round %d: Stats().Keys = %d, a full scan counts %d", round, stats.Keys, len(live))
	}
	if stats.Tombstones != int64(len(all)-nLive) {
		t.Errorf("round %d: Stats().Tombstones = %d, a full scan counts %d", round, stats.Tombstones, len(all)-nLive)
	}
	// Every write attempted is at most one log entry, every write
	// acknowledged exactly one; the view must reflect the whole log.
	if lo, hi := prev.Applied+uint64(acks), prev.Applied+uint64(tries); stats.Applied < lo || stats.Applied > hi {
		t.Errorf("round %d: recovered up to offset %d, want %d to %d (%d + %d acknowledged to %d attempted)",
			round, stats.Applied, lo, hi, prev.Applied, acks, tries)
	}
	if _, last := tbl.Bounds(); stats.Applied != last {
		t.Errorf("round %d: the view reflects the log up to offset %d, but the log goes on to %d", round, stats.Applied, last)
	}
	if prev.LogID != "" && stats.LogID != prev.LogID {
		t.Errorf("round %d: log ID changed from %s to %s", round, prev.LogID, stats.LogID)
	}
	if stats.FirstOffset > stats.Applied+1 {
		t.Errorf("round %d: first offset %d is past applied %d + 1", round, stats.FirstOffset, stats.Applied)
	}
	if n := repairs.Load(); n > 0 {
		t.Logf("round %d: recovery logged %d notice(s)", round, n)
	}
	// A checkpoint the crash interrupted must not stay behind as a
	// temporary file: each is a copy of the whole view.
	for _, f := range crashListing(t, dir) {
		if strings.HasPrefix(f, "checkpoint-") && strings.HasSuffix(f, ".tmp") {
			t.Errorf("round %d: after recovery %s is still there (a checkpoint interrupted by the crash)", round, f)
		}
	}

	// Settle the writes in flight as recovery decided them: from now on
	// they must stay so.
	for key := range inflight {
		if g, ok := got[key]; ok {
			expect[key] = g
		} else if _, settled := expect[key]; settled {
			expect[key] = crashExpect{} // deleted (if it was live, that was reported above)
		} // else a new key whose put was lost: it must never appear
	}
	return stats
}

// crashOpenStats opens the table in dir and returns its stats, checking the
// counts against a full scan.
func crashOpenStats(t *testing.T, dir string) tables.Stats {
	t.Helper()
	logger, _ := crashLogger(t, filepath.Base(dir))
	tbl, err := tables.Open(dir, crashOptions(logger))
	if err != nil {
		t.Fatalf("reopen %s: %v", dir, err)
	}
	s := tbl.Stats()
	live, err := tbl.Scan(nil, nil, 0)
	if err != nil {
		t.Errorf("scan %s: %v", dir, err)
	} else if int64(len(live)) != s.Keys {
		t.Errorf("%s: Stats().Keys = %d, a full scan counts %d", dir, s.Keys, len(live))
	}
	if err := tbl.Close(); err != nil {
		t.Errorf("close %s: %v", dir, err)
	}
	return s
}

func crashSameStats(t *testing.T, what string, want, got tables.Stats) {
	t.Helper()
	if got.Digest != want.Digest || got.Buckets != want.Buckets || got.Keys != want.Keys ||
		got.Tombstones != want.Tombstones || got.Applied != want.Applied || got.LogID != want.LogID {
		t.Errorf("%s: applied %d, %d keys, %d tombstones, digest %016x, log %s; want applied %d, %d keys, %d tombstones, digest %016x, log %s",
			what, got.Applied, got.Keys, got.Tombstones, got.Digest, got.LogID,
			want.Applied, want.Keys, want.Tombstones, want.Digest, want.LogID)
	}
}

// crashLogger logs a table's notices into the test log and counts them.
func crashLogger(t *testing.T, prefix string) (*slog.Logger, *atomic.Int64) {
	n := new(atomic.Int64)
	return slog.New(slog.NewTextHandler(crashLogWriter{t, prefix, n}, nil)), n
}

type crashLogWriter struct {
	t      *testing.T
	prefix string
	n      *atomic.Int64
}

func (w crashLogWriter) Write(p []byte) (int, error) {
	w.n.Add(1)
	w.t.Logf("%s: %s", w.prefix, bytes.TrimSpace(p))
	return len(p), nil
}

// crashListing names the files of a table directory (wal/ files prefixed).
func crashListing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, path)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// crashCheckpoints returns the offsets of the checkpoint files, newest first.
func crashCheckpoints(files []string) []uint64 {
	var offs []uint64
	for _, f := range files {
		if s, ok := strings.CutPrefix(f, "checkpoint-"); ok && len(s) == 20 {
			if off, err := strconv.ParseUint(s, 10, 64); err == nil {
				offs = append(offs, off)
			}
		}
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] > offs[j] })
	return offs
}

// crashCopyDir copies the regular files of a table directory tree.
func crashCopyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o600)
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
}

// crashTailBuffer keeps the last 64 KiB written to it; safe for concurrent use.
type crashTailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *crashTailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if len(b.buf) > 64<<10 {
		b.buf = append(b.buf[:0], b.buf[len(b.buf)-(64<<10):]...)
	}
	return len(p), nil
}

func (b *crashTailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf)
}
