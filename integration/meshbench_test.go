package integration

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkMesh is `make bench`: in one run it starts meshes of 3, 8 and 16
// real cortexd processes on 127.0.0.1 (built without -race, --fsync batch,
// a table of scope all, 14-byte keys, 100-byte values) and prints ONE
// markdown table with every figure of cortex issue 16:
//
//   - writes/s on a 3-node mesh from 1, 16 and 64 clients, and from 64
//     clients on 8 and 16 nodes (acknowledged writes on a, each durable on a);
//   - the replication lag a -> c by push (watchLag: a watcher on c stamps
//     each write as it arrives), at 1,000 writes/s on 3 nodes and at 500/s
//     on 3, 8 and 16;
//   - CPU seconds of all cortexd processes per 10,000 writes, from the start
//     of the 64-client load until every node holds every write
//     (/proc/PID/stat), and per node per write;
//   - catch-up entries/s of a node that missed 100,000 writes, from its
//     process launch (measureCatchUp);
//   - memory per record: the RSS delta of the writer and of a replica over
//     200,000 records (measureMemory);
//   - repair of 1,000,000 keys with 1% differing (measureRepair);
//   - the disk's raw write+fsync latency, on the data directories'
//     filesystem, in the same run.
//
// The 3-node figures are measured in rounds (3, or 1 in quick mode) and
// shown as the median (and range). Every load is bounded in count and in
// time; a figure a slow machine cannot produce is shown as n/a with the
// reason, and no figure fails the benchmark. About 10 minutes on 2 cores;
// CORTEX_BENCH_QUICK=1 runs a smoke version with small counts in about 2.
//
//	go test -run '^$' -bench '^BenchmarkMesh$' -benchtime 1x -timeout 40m ./integration
func BenchmarkMesh(b *testing.B) {
	skipRace(b)
	cfg := meshBenchConfig(os.Getenv("CORTEX_BENCH_QUICK") == "1")
	b.ReportMetric(0, "ns/op")
	began := time.Now()
	var rep meshReport
	rep.header = benchHeader(cfg)

	if st, err := measureFsync(dataFilesystemDir(), cfg.fsyncs, 20*time.Second); err != nil {
		rep.fsync = na(err)
	} else {
		rep.fsync = fmt.Sprintf("%s / %s (%s fsyncs/s, %s fsyncs)", us(st.p50), us(st.p99), num(st.rate), num(float64(st.syncs)))
		b.ReportMetric(float64(st.p50.Microseconds()), "fsync_p50_us")
	}

	// The 3-node figures, in rounds.
	var r3 []meshFigures
	for round := range cfg.rounds {
		r3 = append(r3, runMeshFigures(b, cfg, 3, round, true))
	}
	rep.mesh[0] = mergeRounds(r3)
	for i, size := range []int{8, 16} {
		rep.mesh[i+1] = mergeRounds([]meshFigures{runMeshFigures(b, cfg, size, 0, false)})
	}
	var catch, mem []string
	var catchRates []float64
	for range cfg.rounds {
		st, err := measureCatchUp(b, cfg.catchup)
		if err != nil {
			catch = append(catch, na(err))
			continue
		}
		catchRates = append(catchRates, st.fromLaunch())
		catch = append(catch, fmt.Sprintf("%.2f s", st.done.Seconds()))
	}
	rep.catchUp = summarize(catchRates, num) + fmt.Sprintf(" (%s entries; times from launch: %s)", num(float64(cfg.catchup)), strings.Join(catch, ", "))
	var memW, memR []float64
	for range cfg.rounds {
		st, err := measureMemory(b, cfg.memRecords)
		if err != nil {
			mem = append(mem, na(err))
			continue
		}
		memW, memR = append(memW, st.writer), append(memR, st.replica)
	}
	rep.memory = fmt.Sprintf("%s / %s B (%s records)%s", summarize(memW, num), summarize(memR, num), num(float64(cfg.memRecords)), errorsOf(mem))
	if st, err := measureRepair(b, cfg.repairKeys, cfg.repairKeys/100); err != nil {
		rep.repair = na(err)
	} else {
		rep.repair = fmt.Sprintf("%.2f s, %s bytes moved = %.2f%% of a full copy (%s keys adopted)", st.elapsed.Seconds(), num(float64(st.moved)), st.pctOfFull(), num(float64(st.keysMoved)))
		b.ReportMetric(st.elapsed.Seconds(), "repair_s")
	}
	rep.footer = fmt.Sprintf("load average at the end: %s; the whole run took %s", loadAverage(), time.Since(began).Round(time.Second))

	if v := median(catchRates); v > 0 {
		b.ReportMetric(v, "catchup_entries/s")
	}
	for i, size := range []int{3, 8, 16} {
		m := rep.mesh[i]
		if m.writes64 > 0 {
			b.ReportMetric(m.writes64, fmt.Sprintf("writes/s_64c_%dn", size))
		}
		if m.lag500p99 > 0 {
			b.ReportMetric(m.lag500p99, fmt.Sprintf("lag500_p99_ms_%dn", size))
		}
	}
	if m := rep.mesh[0]; m.lag1000p50 > 0 {
		b.ReportMetric(m.lag1000p50, "lag1000_p50_ms_3n")
		b.ReportMetric(m.lag1000p99, "lag1000_p99_ms_3n")
	}
	fmt.Print(rep.markdown())
}

// meshBenchCounts are the counts of one BenchmarkMesh run.
type meshBenchCounts struct {
	quick      bool
	rounds     int           // rounds of the 3-node figures
	fsyncs     int           // raw fsyncs
	tputWrites int           // writes of each 1/16/64-client load on 3 nodes
	meshWrites int           // writes of the 64-client load on 8 and 16 nodes
	loadFor    time.Duration // no write of a load starts after this
	lag1000    int           // writes of the lag at 1,000/s
	lag500     int           // writes of the lag at 500/s
	catchup    int           // writes the stopped node misses
	memRecords int           // records of the memory measurement
	repairKeys int           // keys of the repaired table (1% differ)
}

// meshBenchConfig returns the counts of the full run or of the quick one.
func meshBenchConfig(quick bool) meshBenchCounts {
	if quick {
		return meshBenchCounts{quick: true, rounds: 1, fsyncs: 300, tputWrites: 2_000, meshWrites: 1_000, loadFor: 5 * time.Second,
			lag1000: 1_000, lag500: 500, catchup: 5_000, memRecords: 5_000, repairKeys: 20_000}
	}
	return meshBenchCounts{rounds: 3, fsyncs: 3_000, tputWrites: 30_000, meshWrites: 10_000, loadFor: 15 * time.Second,
		lag1000: 10_000, lag500: 5_000, catchup: 100_000, memRecords: 200_000, repairKeys: 1_000_000}
}

// meshFigures are the figures of one mesh size (the 3-node ones merged over
// rounds by mergeRounds: each cell then holds a median and a range).
type meshFigures struct {
	nodes                   int
	start                   string
	writes1, writes16       string
	writes64Cell            string
	lag1000, lag500         string
	cpuPer10k, cpuPerNodeUS string

	// the numbers behind the cells, for b.ReportMetric and merging
	writes64               float64
	lag1000p50, lag1000p99 float64
	lag500p99              float64
	raw                    meshRaw
}

// meshRaw are one round's numbers (0: not measured).
type meshRaw struct {
	w1, w16, w64                 float64
	l1000p50, l1000p99, l1000max float64
	l500p50, l500p99, l500max    float64
	cpu10k, cpuNodeUS            float64
	errs                         []string
}

// runMeshFigures starts a mesh of size nodes and measures one round of its
// figures (the numbers in raw; mergeRounds makes the cells): the 1- and
// 16-client loads only if all is set (the 3-node mesh), the lag at 1,000/s
// likewise. The mesh is stopped before it returns.
func runMeshFigures(b *testing.B, cfg meshBenchCounts, size, round int, all bool) meshFigures {
	t0 := time.Now()
	nodes := meshOfN(b, size, 3*time.Minute)
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	f := meshFigures{nodes: size, start: time.Since(t0).Round(100 * time.Millisecond).String()}
	a, c := nodes[0], nodes[2]
	benchTable("mesh", a, nodes[1:]...)
	raw := &f.raw
	fail := func(what string, err error) { raw.errs = append(raw.errs, what+": "+err.Error()) }
	ca := a.client()
	defer ca.Close()

	load := func(clients, n int) (loadResult, error) {
		waitQuiet(nodes, 20*time.Second)
		return writeLoad(ca, "mesh", fmt.Sprintf("t%d-c%d-", round, clients), benchValue, clients, n, cfg.loadFor)
	}
	if all {
		for _, clients := range []int{1, 16} {
			res, err := load(clients, cfg.tputWrites)
			if err != nil {
				fail(fmt.Sprintf("%d clients", clients), err)
				continue
			}
			if clients == 1 {
				raw.w1 = res.perSecond()
			} else {
				raw.w16 = res.perSecond()
			}
		}
	}
	// 64 clients, and the CPU all nodes spend until every node has the writes.
	n64 := cfg.meshWrites
	if size == 3 {
		n64 = cfg.tputWrites
	}
	func() {
		waitQuiet(nodes, 20*time.Second)
		cpu0, err := meshCPU(nodes)
		if err != nil {
			fail("cpu", err)
			return
		}
		res, err := writeLoad(ca, "mesh", fmt.Sprintf("t%d-c64-", round), benchValue, 64, n64, cfg.loadFor)
		if err != nil {
			fail("64 clients", err)
			return
		}
		raw.w64 = res.perSecond()
		want, err := a.heldKeys(b.Context(), "mesh")
		if err != nil {
			fail("64 clients", err)
			return
		}
		for _, n := range nodes[1:] {
			if err := n.waitHeldKeys("mesh", want, 5*time.Minute, 50*time.Millisecond); err != nil {
				fail("cpu: replication", err)
				return
			}
		}
		cpu1, err := meshCPU(nodes)
		if err != nil {
			fail("cpu", err)
			return
		}
		perWrite := (cpu1 - cpu0).Seconds() / float64(res.writes)
		raw.cpu10k = perWrite * 10_000
		raw.cpuNodeUS = perWrite / float64(size) * 1e6
	}()
	lag := func(rate, n int) (lagStats, error) {
		waitQuiet(nodes, 20*time.Second)
		return watchLag(a, c, "mesh", fmt.Sprintf("l%d-r%d-", round, rate), n, rate, 60*time.Second)
	}
	if all {
		if st, err := lag(1000, cfg.lag1000); err != nil {
			fail("lag at 1,000/s", err)
		} else {
			raw.l1000p50, raw.l1000p99, raw.l1000max = ms(st.p50), ms(st.p99), ms(st.max)
		}
	}
	if st, err := lag(500, cfg.lag500); err != nil {
		fail("lag at 500/s", err)
	} else {
		raw.l500p50, raw.l500p99, raw.l500max = ms(st.p50), ms(st.p99), ms(st.max)
	}
	return f
}

// mergeRounds merges the rounds of one mesh size into one meshFigures whose
// cells hold the median and range of each figure.
func mergeRounds(rounds []meshFigures) meshFigures {
	var raws []meshRaw
	var starts []string
	f := meshFigures{}
	for _, m := range rounds {
		f.nodes = m.nodes
		raws = append(raws, m.raw)
		starts = append(starts, m.start)
	}
	f.start = strings.Join(starts, ", ")
	return cells(f, raws)
}

// cells fills f's cells from the numbers of one or more rounds.
func cells(f meshFigures, raws []meshRaw) meshFigures {
	pick := func(get func(meshRaw) float64) []float64 {
		var out []float64
		for _, r := range raws {
			if v := get(r); v > 0 {
				out = append(out, v)
			}
		}
		return out
	}
	var errs []string
	for _, r := range raws {
		errs = append(errs, r.errs...)
	}
	lagCell := func(p50, p99, mx []float64) string {
		if len(p50) == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%s / %s ms (max %s)", summarize(p50, msNum), summarize(p99, msNum), summarize(mx, msNum))
	}
	w1, w16, w64 := pick(func(r meshRaw) float64 { return r.w1 }), pick(func(r meshRaw) float64 { return r.w16 }), pick(func(r meshRaw) float64 { return r.w64 })
	f.writes1, f.writes16, f.writes64Cell = summarize(w1, num), summarize(w16, num), summarize(w64, num)
	f.writes64 = median(w64)
	l1p50, l1p99 := pick(func(r meshRaw) float64 { return r.l1000p50 }), pick(func(r meshRaw) float64 { return r.l1000p99 })
	f.lag1000 = lagCell(l1p50, l1p99, pick(func(r meshRaw) float64 { return r.l1000max }))
	f.lag1000p50, f.lag1000p99 = median(l1p50), median(l1p99)
	l5p99 := pick(func(r meshRaw) float64 { return r.l500p99 })
	f.lag500 = lagCell(pick(func(r meshRaw) float64 { return r.l500p50 }), l5p99, pick(func(r meshRaw) float64 { return r.l500max }))
	f.lag500p99 = median(l5p99)
	f.cpuPer10k = summarize(pick(func(r meshRaw) float64 { return r.cpu10k }), func(v float64) string { return fmt.Sprintf("%.2f s", v) })
	f.cpuPerNodeUS = summarize(pick(func(r meshRaw) float64 { return r.cpuNodeUS }), func(v float64) string { return fmt.Sprintf("%.0f µs", v) })
	f.raw = meshRaw{errs: errs}
	return f
}

// catchUpStats is one catch-up: from the restarted process's launch until
// its socket answered, and until its copy held every missed write.
type catchUpStats struct {
	writes      int
	ready, done time.Duration
}

func (s catchUpStats) fromLaunch() float64 { return float64(s.writes) / s.done.Seconds() }

// measureCatchUp stops b of a fresh 3-node mesh (SIGTERM), makes writes on
// a (64 clients) until c holds them all, waits until the nodes are quiet,
// and launches b again: the time runs from the launch of b's process until
// b's copy holds every key (key count polled every 2 ms). b finds a and c
// from its membership records and resumes from its cursors in their logs.
func measureCatchUp(t testing.TB, writes int) (catchUpStats, error) {
	st := catchUpStats{writes: writes}
	nodes := meshOfN(t, 3, time.Minute)
	na, nb, nc := nodes[0], nodes[1], nodes[2]
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	benchTable("catchup", na, nb, nc)
	if err := nb.stop(); err != nil {
		return st, fmt.Errorf("stop b: %w", err)
	}
	nb.args = removePeers(nb.args)
	ca := na.client()
	defer ca.Close()
	if _, err := writeLoad(ca, "catchup", "key-", benchValue, 64, writes, 10*time.Minute); err != nil {
		return st, err
	}
	want := int64(writes + 1) // and the warm-up key
	if err := nc.waitHeldKeys("catchup", want, 5*time.Minute, 20*time.Millisecond); err != nil {
		return st, err
	}
	// What the load started (replication to c, the checkpoint that every
	// 100,000 entries trigger) ends first: only the catch-up is measured.
	waitQuiet([]*node{na, nc}, 30*time.Second)
	start := time.Now()
	if err := nb.startNoWait(); err != nil {
		return st, err
	}
	nb.waitReady()
	st.ready = time.Since(start)
	if err := nb.waitHeldKeys("catchup", want, 5*time.Minute, 2*time.Millisecond); err != nil {
		return st, err
	}
	st.done = time.Since(start)
	return st, nil
}

// memoryStats is the RSS growth per record of the writer and of a replica.
type memoryStats struct {
	records         int
	writer, replica float64 // bytes per record
}

// measureMemory writes records 100-byte records on a of a fresh 3-node
// mesh (64 clients) and takes the VmRSS delta of a (the writer) and of c
// (a replica) from before the load until c holds them all and both are
// quiet, divided by records.
func measureMemory(t testing.TB, records int) (memoryStats, error) {
	st := memoryStats{records: records}
	nodes := meshOfN(t, 3, time.Minute)
	na, nc := nodes[0], nodes[2]
	defer func() {
		for _, n := range nodes {
			n.stop()
		}
	}()
	benchTable("mem", na, nodes[1:]...)
	waitQuiet(nodes, 20*time.Second)
	rss := func() (a, c int64, err error) {
		if a, err = na.rss(); err == nil {
			c, err = nc.rss()
		}
		return a, c, err
	}
	a0, c0, err := rss()
	if err != nil {
		return st, err
	}
	ca := na.client()
	defer ca.Close()
	if _, err := writeLoad(ca, "mem", "key-", benchValue, 64, records, 10*time.Minute); err != nil {
		return st, err
	}
	for _, n := range nodes[1:] {
		if err := n.waitHeldKeys("mem", int64(records+1), 5*time.Minute, 50*time.Millisecond); err != nil {
			return st, err
		}
	}
	waitQuiet(nodes, 30*time.Second)
	a1, c1, err := rss()
	if err != nil {
		return st, err
	}
	st.writer, st.replica = float64(a1-a0)/float64(records), float64(c1-c0)/float64(records)
	return st, nil
}

// meshReport is everything BenchmarkMesh prints.
type meshReport struct {
	header  []string
	mesh    [3]meshFigures // 3, 8 and 16 nodes
	catchUp string
	memory  string
	repair  string
	fsync   string
	footer  string
}

// markdown renders the report: a few lines on the machine and the run, and
// one table ready to paste into docs/benchmarks.md.
func (r meshReport) markdown() string {
	var s strings.Builder
	s.WriteString("\n")
	for _, h := range r.header {
		s.WriteString(h + "  \n")
	}
	s.WriteString("\n| figure | 3 nodes | 8 nodes | 16 nodes |\n|---|---|---|---|\n")
	m3, m8, m16 := r.mesh[0], r.mesh[1], r.mesh[2]
	row := func(name string, cells ...string) {
		for len(cells) < 3 {
			cells = append(cells, "")
		}
		fmt.Fprintf(&s, "| %s | %s |\n", name, strings.Join(cells, " | "))
	}
	row("start until fully connected", m3.start, m8.start, m16.start)
	row("writes/s, 1 client", m3.writes1)
	row("writes/s, 16 clients", m3.writes16)
	row("writes/s, 64 clients", m3.writes64Cell, m8.writes64Cell, m16.writes64Cell)
	row("lag a→c at 1,000 writes/s, p50 / p99 (by watch)", m3.lag1000)
	row("lag a→c at 500 writes/s, p50 / p99 (by watch)", m3.lag500, m8.lag500, m16.lag500)
	row("CPU of all cortexd per 10,000 writes (64 clients, until all nodes hold them)", m3.cpuPer10k, m8.cpuPer10k, m16.cpuPer10k)
	row("CPU per node per write", m3.cpuPerNodeUS, m8.cpuPerNodeUS, m16.cpuPerNodeUS)
	row("catch-up entries/s after missed writes, from process launch", r.catchUp)
	row("memory per 100-byte record, RSS delta: writer / replica", r.memory)
	row("repair of a 1% difference (2 nodes)", r.repair)
	row("disk: raw write 100 B + fsync, p50 / p99", r.fsync)
	var errs []string
	for _, m := range r.mesh {
		for _, e := range m.raw.errs {
			errs = append(errs, fmt.Sprintf("%d nodes: %s", m.nodes, e))
		}
	}
	if len(errs) > 0 {
		s.WriteString("\nNot measured (n/a):\n")
		for _, e := range errs {
			s.WriteString("- " + e + "\n")
		}
	}
	s.WriteString("\n" + r.footer + "\n")
	return s.String()
}

// benchHeader describes the machine and the run.
func benchHeader(cfg meshBenchCounts) []string {
	mode := fmt.Sprintf("full run, the 3-node figures in %d rounds (median, and range in parentheses)", cfg.rounds)
	if cfg.quick {
		mode = "QUICK run (CORTEX_BENCH_QUICK=1: small counts, one round): a smoke test, not figures"
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	return []string{
		"BenchmarkMesh " + time.Now().UTC().Format("2006-01-02 15:04 MST"),
		fmt.Sprintf("machine: %d CPUs (nproc), Linux %s, %s", runtime.NumCPU(), strings.TrimSpace(string(kernel)), runtime.Version()),
		"load average at the start: " + loadAverage(),
		mode,
	}
}

// loadAverage is the first three fields of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown (" + err.Error() + ")"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}

// median is the median of vals (the mean of the middle two for an even
// count), 0 for none.
func median(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(vals))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// summarize renders vals as format(median), with the range in parentheses
// when there is more than one; "n/a" for none.
func summarize(vals []float64, format func(float64) string) string {
	switch len(vals) {
	case 0:
		return "n/a"
	case 1:
		return format(vals[0])
	}
	return fmt.Sprintf("%s (%s–%s)", format(median(vals)), format(slices.Min(vals)), format(slices.Max(vals)))
}

// num renders a number with thousands separators, no decimals.
func num(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// msNum renders milliseconds with two decimals.
func msNum(v float64) string { return fmt.Sprintf("%.2f", v) }

// us renders a duration in whole microseconds.
func us(d time.Duration) string { return num(float64(d.Microseconds())) + " µs" }

// na is the cell of a figure not measured.
func na(err error) string { return "n/a: " + err.Error() }

// errorsOf renders the failed rounds of a figure ("" if none).
func errorsOf(cells []string) string {
	if len(cells) == 0 {
		return ""
	}
	return "; " + strings.Join(cells, "; ")
}
