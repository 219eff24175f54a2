package integration

// The nemesis suite (docs/reliability.md): a cluster of real cortexd
// processes, a workload recording every acknowledged write and every read,
// and a seeded random schedule of faults. Each round runs the workload under
// faults, stops it, heals everything, waits for the copies to converge and
// hands the history and the final scans to the checker. The default run is
// one short round per mode; -soak=D runs rounds, with longer faults too,
// until D has passed. A failure prints its seed: -nemesis.seed=N replays the
// same choices (of faults, nodes, holds, keys and operations; the timing of
// the machine is not replayed).
//
//	go test -race -count=1 -run TestNemesis ./integration
//	go test -race -count=1 -run TestNemesisNetns ./integration -soak=10m -timeout 30m
//	go test -race -count=1 -run TestNemesisLoopback ./integration -nemesis.seed=42

import (
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	nemSeedFlag    = flag.Int64("nemesis.seed", 0, "seed of the nemesis schedule and workload (0: a new one, printed)")
	nemSoakFlag    = flag.Duration("soak", 0, "soak mode: run the nemesis tests for this long, in rounds each healed and checked (e.g. -soak=10m; off by default)")
	nemNodesFlag   = flag.Int("nemesis.nodes", 3, "cortexd processes in a nemesis cluster (3 to 5)")
	nemResultsFlag = flag.String("nemesis.results", "", "append each nemesis round's results, one JSON object a line, to this file")
)

// nemFaults are the fault kinds of each mode.
var nemFaults = map[string][]string{
	nemLoopback: {"kill9", "pause", "restart"},
	nemNetns:    {"kill9", "pause", "restart", "cut", "isolate", "bridge", "flap"},
}

// nemPlan is how one mode's rounds are shaped.
type nemPlan struct {
	Round     time.Duration // the faulty part of a round
	Hold      [2]time.Duration
	LongHold  [2]time.Duration // soak only: past the 15 s a silent link takes to be noticed
	LongEvery int              // soak only: one fault in LongEvery holds long
	Gap       [2]time.Duration
	Converge  time.Duration // the deadline for convergence after the last heal
	Workload  nemWorkloadConfig
}

func nemDefaultPlan(mode string, soak bool) nemPlan {
	p := nemPlan{
		Round:    map[string]time.Duration{nemLoopback: 18 * time.Second, nemNetns: 25 * time.Second}[mode],
		Hold:     [2]time.Duration{300 * time.Millisecond, 2500 * time.Millisecond},
		Gap:      [2]time.Duration{200 * time.Millisecond, 800 * time.Millisecond},
		Converge: 60 * time.Second,
		Workload: nemWorkloadConfig{Writers: 4, Keys: 40, DelEvery: 4, Pace: 3 * time.Millisecond,
			OpTimeout: 2 * time.Second, MaxOps: 200_000},
	}
	if soak {
		p.Round = 60 * time.Second
		p.LongHold = [2]time.Duration{16 * time.Second, 25 * time.Second}
		p.LongEvery = 5
	}
	return p
}

// nemResult is one round, as the results table of docs/reliability.md
// reports it.
type nemResult struct {
	Date       string         `json:"date"`
	Test       string         `json:"test"`
	Mode       string         `json:"mode"`
	Nodes      int            `json:"nodes"`
	Seed       int64          `json:"seed"`
	Round      int            `json:"round"`
	FaultyS    float64        `json:"faulty_s"` // the round's workload under faults
	Acked      int            `json:"acked"`    // cumulative over the rounds, as checked
	AckedPuts  int            `json:"acked_puts"`
	AckedDels  int            `json:"acked_dels"`
	Unknown    int            `json:"unknown"`
	Noop       int            `json:"noop"`
	Failed     int            `json:"failed"` // never reached a node
	Reads      int            `json:"reads"`
	Faults     map[string]int `json:"faults"` // this round's
	Lost       int            `json:"lost"`
	ConvergeS  float64        `json:"converge_s"` // from the last heal to identical copies in sync
	LastFault  string         `json:"last_fault"`
	LatP50Ms   float64        `json:"lat_p50_ms"` // acknowledged writes, cumulative
	LatMaxMs   float64        `json:"lat_max_ms"`
	RestartMax float64        `json:"restart_max_s"`
	Errors     map[string]int `json:"errors"` // unacknowledged outcomes by kind, cumulative
	Violations int            `json:"violations"`
	// From the nodes' logs, cumulative since the mesh formed and the table
	// was created: mesh connections made, replication streams interrupted,
	// snapshots received.
	Connects    int `json:"connects"`
	Interrupted int `json:"interrupted"`
	Snapshots   int `json:"snapshots"`
}

func TestNemesisLoopback(t *testing.T) { nemRun(t, nemLoopback) }

func TestNemesisNetns(t *testing.T) { nemRun(t, nemNetns) }

func nemRun(t *testing.T, mode string) {
	seed := *nemSeedFlag
	if seed == 0 {
		seed = time.Now().UnixNano() % 1_000_000_000
	}
	t.Logf("nemesis %s: seed %d (replay with -nemesis.seed=%d)", mode, seed, seed)
	nodes := *nemNodesFlag
	if nodes < 3 || nodes > 5 {
		t.Fatalf("-nemesis.nodes=%d: 3 to 5", nodes)
	}
	soak := *nemSoakFlag
	plan := nemDefaultPlan(mode, soak > 0)
	cl := newNemCluster(t, mode, nodes)
	wl := newNemWorkload(cl, plan.Workload)
	t.Cleanup(func() {
		wl.stop() // a test that failed mid-round leaves no client running
		if t.Failed() {
			cl.keepEvidence(seed, nemEvidence(wl.history(), cl.final))
			t.Logf("nemesis %s failed: seed %d (replay with -nemesis.seed=%d)", mode, seed, seed)
		}
	})
	rng := rand.New(rand.NewPCG(uint64(seed), 0x6e656d65736973))
	started := time.Now()
	var converge []time.Duration
	faults := map[string]int{}
	for round := 1; ; round++ {
		res := nemRound(t, cl, wl, rng, plan, uint64(seed)+uint64(round))
		res.Mode, res.Nodes, res.Seed, res.Round, res.Test = mode, nodes, seed, round, t.Name()
		converge = append(converge, time.Duration(res.ConvergeS*float64(time.Second)))
		for k, n := range res.Faults {
			faults[k] += n
		}
		nemAppendResult(t, res)
		if res.Violations > 0 || t.Failed() {
			return
		}
		if soak == 0 || time.Since(started) >= soak {
			break
		}
	}
	slices.Sort(converge)
	p50, max := wl.latency()
	t.Logf("nemesis %s summary: %d nodes, %d rounds in %s, faults %v, convergence p50 %s max %s, acknowledged writes p50 %s max %s, restarts max %s",
		mode, nodes, len(converge), time.Since(started).Round(time.Second), faults,
		converge[len(converge)/2].Round(time.Millisecond), converge[len(converge)-1].Round(time.Millisecond),
		p50.Round(time.Microsecond), max.Round(time.Millisecond), slices.Max(cl.restarts).Round(time.Millisecond))
}

// nemRound runs one round and checks it; the result is what it measured.
func nemRound(t *testing.T, cl *nemCluster, wl *nemWorkload, rng *rand.Rand, plan nemPlan, seed uint64) nemResult {
	t.Helper()
	kinds := nemFaults[cl.mode]
	res := nemResult{Date: time.Now().UTC().Format("2006-01-02"), Faults: map[string]int{}}
	between := func(r [2]time.Duration) time.Duration {
		return r[0] + time.Duration(rng.Int64N(int64(r[1]-r[0])+1))
	}
	cl.logf("round %d: workload starts (%d writers, %d keys, one write in %d a delete)", wl.round+1, plan.Workload.Writers, plan.Workload.Keys, plan.Workload.DelEvery)
	stop := wl.run(seed)
	stopped := false
	start := time.Now()
	var lastHeal time.Time
	for !stopped {
		kind := kinds[rng.IntN(len(kinds))]
		hold := between(plan.Hold)
		if plan.LongEvery > 0 && rng.IntN(plan.LongEvery) == 0 && kind != "flap" {
			hold = between(plan.LongHold)
		}
		gap := between(plan.Gap)
		last := time.Since(start)+hold+gap >= plan.Round
		heal := cl.inject(kind, rng, hold)
		if last {
			// The last fault is healed with the workload stopped, so that the
			// time to converge is the recovery's alone.
			stop()
			stopped = true
			res.FaultyS = time.Since(start).Seconds()
			cl.logf("workload stopped")
		}
		heal()
		lastHeal = time.Now()
		res.Faults[kind]++
		res.LastFault = kind
		if !last {
			time.Sleep(gap) // pacing the schedule
		}
	}
	if cl.healAll() {
		lastHeal = time.Now()
		cl.logf("healed what was left")
	}
	if cl.nt != nil {
		cl.checkShape()
	}
	final, ok, why := cl.waitConverged(plan.Converge)
	cl.final = final
	took := time.Since(lastHeal)
	res.ConvergeS = took.Seconds()
	hist := wl.history()
	v := nemCheck(hist, final)
	res.Acked, res.AckedPuts, res.AckedDels, res.Unknown, res.Noop, res.Failed, res.Reads, res.Lost =
		v.Acked, v.AckedPuts, v.AckedDels, v.Unknown, v.Noop, v.Failed, v.Reads, v.Lost
	p50, max := wl.latency()
	res.LatP50Ms, res.LatMaxMs = float64(p50.Microseconds())/1000, float64(max.Microseconds())/1000
	res.RestartMax = slices.Max(cl.restarts).Seconds()
	wl.mu.Lock()
	res.Errors = maps.Clone(wl.errs)
	wl.mu.Unlock()
	res.Violations = len(v.Violations) + v.Dropped
	if !ok {
		t.Errorf("round %d: no convergence %s after the last heal (%s): %s", wl.round, plan.Converge, res.LastFault, why)
	} else {
		cl.logf("converged %s after the last heal (%s)", took.Round(time.Millisecond), res.LastFault)
	}
	for _, nn := range cl.nodes {
		cl.checkLog(nn, nn.logs.String())
	}
	res.Connects, res.Interrupted, res.Snapshots = cl.logCounts()
	res.Connects -= cl.baseline[0]
	res.Interrupted -= cl.baseline[1]
	res.Snapshots -= cl.baseline[2]
	if !v.ok() {
		t.Errorf("round %d: the checker found %d violations:\n%s", wl.round, res.Violations, &v)
	}
	for kind, n := range res.Errors {
		if strings.Contains(kind, "not_found") || strings.Contains(kind, "internal") {
			t.Errorf("round %d: %d calls answered %s: a node that should hold %s did not, or failed", wl.round, n, kind, nemTable)
		}
	}
	t.Logf("round %d: %d acknowledged writes (%d puts, %d deletes), %d unknown, %d never sent (node down), %d deletes of absent keys, %d reads, %d keys live; faults %v; lost %d; converged in %s; acknowledged writes p50 %.2f ms max %.0f ms; not acknowledged %v; so far %d mesh connections, %d replication streams interrupted, %d snapshots",
		wl.round, res.Acked, res.AckedPuts, res.AckedDels, res.Unknown, res.Failed, res.Noop, res.Reads, v.Keys, res.Faults, res.Lost,
		took.Round(time.Millisecond), res.LatP50Ms, res.LatMaxMs, res.Errors, res.Connects, res.Interrupted, res.Snapshots)
	if res.Acked == 0 || res.Reads == 0 {
		t.Errorf("round %d: the workload did nothing: %d acknowledged writes, %d reads", wl.round, res.Acked, res.Reads)
	}
	return res
}

// inject makes a fault of kind on random nodes, holds it for hold and
// returns how to heal it.
func (cl *nemCluster) inject(kind string, rng *rand.Rand, hold time.Duration) (heal func()) {
	cl.t.Helper()
	nn := cl.nodes[rng.IntN(len(cl.nodes))]
	switch kind {
	case "kill9":
		cl.logf("kill -9 %s, down for %s", nn.name, hold.Round(time.Millisecond))
		cl.kill9(nn)
		time.Sleep(hold) // the fault's duration
		return func() {
			cl.restartNode(nn)
			cl.logf("%s restarted in %s", nn.name, cl.restarts[len(cl.restarts)-1].Round(time.Millisecond))
		}
	case "pause":
		cl.logf("SIGSTOP %s for %s", nn.name, hold.Round(time.Millisecond))
		cl.pause(nn)
		time.Sleep(hold) // the fault's duration
		return func() {
			cl.resume(nn)
			cl.logf("SIGCONT %s", nn.name)
		}
	case "restart":
		cl.logf("SIGTERM %s, down for %s", nn.name, hold.Round(time.Millisecond))
		cl.term(nn)
		time.Sleep(hold) // the fault's duration
		return func() {
			cl.restartNode(nn)
			cl.logf("%s restarted in %s", nn.name, cl.restarts[len(cl.restarts)-1].Round(time.Millisecond))
		}
	case "cut":
		cl.logf("cut %s's link for %s", nn.name, hold.Round(time.Millisecond))
		cl.setLink(nn, false)
		cl.checkShape()
		time.Sleep(hold) // the fault's duration
		return func() {
			cl.setLink(nn, true)
			cl.checkShape()
			cl.logf("%s's link healed", nn.name)
		}
	case "isolate":
		cl.logf("isolate %s (blackhole routes both ways) for %s", nn.name, hold.Round(time.Millisecond))
		cl.isolate(nn, true)
		cl.checkShape()
		time.Sleep(hold) // the fault's duration
		return func() {
			cl.isolate(nn, false)
			cl.checkShape()
			cl.logf("%s rejoined", nn.name)
		}
	case "bridge":
		// a and c cannot talk; every other pair can (b bridges them).
		perm := rng.Perm(len(cl.nodes))
		a, c := cl.nodes[perm[0]], cl.nodes[perm[1]]
		cl.logf("bridge: %s-%s cut, every other pair up, for %s", a.name, c.name, hold.Round(time.Millisecond))
		cl.cutPair(a, c, true)
		cl.checkShape()
		time.Sleep(hold) // the fault's duration
		return func() {
			cl.cutPair(a, c, false)
			cl.checkShape()
			cl.logf("%s-%s healed", a.name, c.name)
		}
	case "flap":
		times := 3 + rng.IntN(4)
		var steps []time.Duration
		for range 2 * times {
			steps = append(steps, time.Duration(50+rng.IntN(350))*time.Millisecond)
		}
		cl.logf("flap %s's link %d times (%v)", nn.name, times, steps)
		for i := range times {
			cl.setLink(nn, false)
			time.Sleep(steps[2*i]) // the fault's shape
			cl.setLink(nn, true)
			if i < times-1 {
				time.Sleep(steps[2*i+1]) // the fault's shape
			}
		}
		return func() {
			cl.checkShape()
			cl.logf("%s's link stays up", nn.name)
		}
	}
	cl.t.Fatalf("unknown fault %q", kind)
	return nil
}

// nemEvidence is the history (and final scans) as files for keepEvidence.
func nemEvidence(h nemHistory, final nemFinal) map[string][]byte {
	out := map[string][]byte{}
	var b strings.Builder
	for _, w := range h.Writes {
		b.WriteString(w.String())
		if w.Err != "" {
			b.WriteString(" (" + w.Err + ")")
		}
		b.WriteByte('\n')
	}
	out["writes.txt"] = []byte(b.String())
	b.Reset()
	for _, r := range h.Reads {
		b.WriteString(r.String() + "\n")
	}
	out["reads.txt"] = []byte(b.String())
	if final != nil {
		data, _ := json.MarshalIndent(final, "", " ")
		out["final.json"] = data
	}
	return out
}

// nemAppendResult appends a round's result to -nemesis.results.
func nemAppendResult(t *testing.T, res nemResult) {
	if *nemResultsFlag == "" {
		return
	}
	data, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(*nemResultsFlag, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "%s\n", data); err != nil {
		t.Fatal(err)
	}
}
