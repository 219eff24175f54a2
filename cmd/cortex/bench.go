package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/cobra"
)

// Bounds of the bench flags: a run is bounded in count by --n and in time
// by --n over the rate (or the node's speed) and by the per-call --timeout.
const (
	benchMaxN           = 10_000_000
	benchMaxConcurrency = 1024
	benchMaxValueSize   = 1 << 20
	benchMaxRate        = 100_000
	// benchMaxInFlight bounds the writes bench replication has in flight
	// when the node cannot keep up with --rate.
	benchMaxInFlight = 256
	// benchSetupWait bounds how long bench replication waits for the --to
	// node to hold the table and to show a first write.
	benchSetupWait = 30 * time.Second
	// benchCheckEvery is how often bench replication checks, in its own
	// memory, whether the oldest write not yet delivered by the --to node's
	// watch is older than --wait.
	benchCheckEvery = 10 * time.Millisecond
)

const benchLong = `Measure a running node through the Go client: one cortex process sends many
requests over one pool of connections, like redis-benchmark or etcdctl check
perf.

  write        durable writes/s and the latency of acknowledged writes
  replication  how long a write acknowledged on this node takes to become
               readable on another node of the mesh (--to)

Every run writes new keys (named b<RUN>-<N>, RUN unique to the run) and
leaves them in the table: drop the table afterwards (cortex table drop bench).

With --json every bench prints exactly one object:
  {"ops":N,"ops_per_s":X,"p50_us":X,"p99_us":X,"max_us":X}
ops is the number of writes, ops_per_s the writes per second of wall-clock
time, and the percentiles are in microseconds (0.1 µs resolution).`

func benchCmd(a *app) *cobra.Command {
	c := groupCmd("bench", "Measure write throughput, latency and replication lag",
		benchLong,
		`  cortex bench write
  cortex bench replication --to /run/cortex-b/cortex.sock`)
	c.AddCommand(benchWriteCmd(a), benchReplicationCmd(a))
	return c
}

// benchJSON is what every bench prints with --json.
type benchJSON struct {
	Ops     int     `json:"ops"`
	OpsPerS float64 `json:"ops_per_s"`
	P50US   float64 `json:"p50_us"`
	P99US   float64 `json:"p99_us"`
	MaxUS   float64 `json:"max_us"`
}

// benchResult is one run: how many writes, over how long, and the sorted
// latencies measured (of the writes, or of their replication).
type benchResult struct {
	ops     int
	elapsed time.Duration
	sorted  []time.Duration
}

func (r benchResult) opsPerS() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// percentile is the nearest-rank percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

func micros(d time.Duration) float64 { return round1(float64(d) / float64(time.Microsecond)) }

func millis(d time.Duration) string {
	return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond))
}

func (r benchResult) json() benchJSON {
	return benchJSON{Ops: r.ops, OpsPerS: round1(r.opsPerS()), P50US: micros(percentile(r.sorted, 50)),
		P99US: micros(percentile(r.sorted, 99)), MaxUS: micros(percentile(r.sorted, 100))}
}

func (r benchResult) latencies() string {
	return fmt.Sprintf("p50 %s  p99 %s  max %s", millis(percentile(r.sorted, 50)),
		millis(percentile(r.sorted, 99)), millis(percentile(r.sorted, 100)))
}

// benchOpts are the flags both benches take.
type benchOpts struct {
	table     string
	n         int
	valueSize int
}

func (o *benchOpts) flags(c *cobra.Command) {
	c.Flags().StringVar(&o.table, "table", "bench", "table to write to (created if missing)")
	c.Flags().IntVar(&o.n, "n", 10_000, "number of writes")
	c.Flags().IntVar(&o.valueSize, "value-size", 100, "bytes in each value")
}

func (o *benchOpts) check(cmd *cobra.Command) error {
	if err := tables.ValidateName(o.table, false); err != nil {
		return cli.Usagef(cmd, "--table: %v", err)
	}
	if err := checkRange(cmd, "--n", o.n, 1, benchMaxN); err != nil {
		return err
	}
	return checkRange(cmd, "--value-size", o.valueSize, 0, benchMaxValueSize)
}

func checkRange(cmd *cobra.Command, flag string, v, lo, hi int) error {
	if v < lo || v > hi {
		return cli.Usagef(cmd, "%s %d is out of range: give %d to %d", flag, v, lo, hi)
	}
	return nil
}

// benchKeys names the keys of one run: b<RUN>-<9 digits>, so that they sort
// in write order and a new run never finds the keys of an earlier one.
type benchKeys struct{ prefix string }

func newBenchKeys() benchKeys {
	return benchKeys{"b" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"}
}

func (k benchKeys) key(i int) []byte { return fmt.Appendf([]byte(k.prefix), "%09d", i) }

// index returns the write number of a key of this run, or -1.
func (k benchKeys) index(key []byte) int {
	s := string(key)
	if len(s) != len(k.prefix)+9 || s[:len(k.prefix)] != k.prefix {
		return -1
	}
	i, err := strconv.Atoi(s[len(k.prefix):])
	if err != nil {
		return -1
	}
	return i
}

// callCtx bounds one API call by --timeout, within parent.
func (a *app) callCtx(parent context.Context) (context.Context, context.CancelFunc) {
	if a.timeout > 0 {
		return context.WithTimeout(parent, a.timeout)
	}
	return context.WithCancel(parent)
}

// benchTable returns the table to write to, creating it with scope if it
// does not exist. A table this node does not hold is an error.
func benchTable(a *app, name string, scope scope.Scope) (api.TableInfo, error) {
	find := func() (api.TableInfo, bool, error) {
		list, err := call(a, func(ctx context.Context, c *api.Client) ([]api.TableInfo, error) { return c.Tables(ctx) })
		for _, t := range list {
			if t.Name == name {
				return t, true, err
			}
		}
		return api.TableInfo{}, false, err
	}
	info, ok, err := find()
	if err != nil {
		return info, err
	}
	if !ok {
		info, err = call(a, func(ctx context.Context, c *api.Client) (api.TableInfo, error) {
			return c.CreateTable(ctx, name, scope, api.Overrides{})
		})
		var ae *api.Error
		if errors.As(err, &ae) && ae.Code == api.CodeExists { // created meanwhile
			info, _, err = find()
		}
		if err != nil {
			return info, err
		}
	}
	if !info.Held {
		return info, fmt.Errorf("table %s is not held on %s (%s): run the bench against a node that holds it, or give another --table",
			name, a.where(), describeScope(info))
	}
	return info, nil
}

func benchWriteCmd(a *app) *cobra.Command {
	var o benchOpts
	var concurrency int
	c := &cobra.Command{
		Use:   "write",
		Short: "Measure durable writes/s and write latency",
		Long: `Write --n new keys with values of --value-size bytes to --table, from
--concurrency workers that each send one put at a time, and print the writes
per second and the latency of the acknowledged writes (p50, p99, max). A put
is acknowledged once it is durable on the node (fsynced unless the node runs
with --fsync never), so this is what a client of the node gets.

The table is created with scope local if it does not exist; an existing table
is used as it is (with scope all every write is also replicated, which costs
the node CPU). The keys are left in the table: drop it afterwards.

The first failed write stops the run with its error. Each put gives up after
--timeout.

With --json prints {"ops":N,"ops_per_s":X,"p50_us":X,"p99_us":X,"max_us":X}.`,
		Example: `  cortex bench write
  cortex bench write --n 100000 --concurrency 64 --value-size 1024
  cortex bench write --table scratch --json | jq .ops_per_s
  cortex table drop bench`,
		Args: cli.Positional(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.check(cmd); err != nil {
				return err
			}
			if err := checkRange(cmd, "--concurrency", concurrency, 1, benchMaxConcurrency); err != nil {
				return err
			}
			if _, err := benchTable(a, o.table, scope.Scope{Local: true}); err != nil {
				return err
			}
			c, err := a.dial()
			if err != nil {
				return err
			}
			res, err := benchWrite(a, c, o, min(concurrency, o.n))
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, res.json())
			}
			_, err = fmt.Fprintf(a.stdout, "bench write: %d writes of %d-byte values to table %s on %s, %d concurrent\n"+
				"  throughput  %.0f writes/s (%d in %s)\n"+
				"  latency     %s\n",
				o.n, o.valueSize, o.table, a.where(), min(concurrency, o.n),
				res.opsPerS(), res.ops, res.elapsed.Round(time.Millisecond), res.latencies())
			return err
		},
	}
	o.flags(c)
	c.Flags().IntVar(&concurrency, "concurrency", 16, "concurrent writers (their puts share one stream to the node)")
	return c
}

// benchWrite runs the writes of bench write.
func benchWrite(a *app, c *api.Client, o benchOpts, workers int) (benchResult, error) {
	keys := newBenchKeys()
	value := make([]byte, o.valueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	lat := make([][]time.Duration, workers)
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= o.n || ctx.Err() != nil {
					return
				}
				cctx, ccancel := a.callCtx(ctx)
				t0 := time.Now()
				_, err := c.Put(cctx, o.table, keys.key(i), value)
				d := time.Since(t0)
				ccancel()
				if err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				lat[w] = append(lat[w], d)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return benchResult{}, firstErr
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return benchResult{ops: len(all), elapsed: elapsed, sorted: all}, nil
}

func benchReplicationCmd(a *app) *cobra.Command {
	var o benchOpts
	var to string
	var rate int
	var wait time.Duration
	c := &cobra.Command{
		Use:   "replication --to SOCKET",
		Short: "Measure how long a write takes to become readable on another node",
		Long: `Write --n new keys on this node, paced at --rate writes per second, and
measure for each one how long after this node acknowledged it (durable here)
it becomes readable on the node behind --to (the Unix socket of another node
of the mesh). Prints the write rate reached and the replication lag p50, p99
and max.

--table is created with scope all if it does not exist; an existing table
must be held here and replicate to the --to node. Before measuring, the bench
waits (up to 30s) until the --to node holds the table and shows a first
write, so that the lag of a stream being set up is not counted.

How the lag is measured, by push: a watch on the --to node (the stream of
cortex watch, for the keys of this run), started before the first write,
stamps each write when the stream delivers it; nothing polls --to, which
only encodes each change once for the stream. A write's lag is its arrival
through the watch minus this node's acknowledgement; a write delivered
before the acknowledgement arrived counts as 0. A write not delivered by
--to within --wait of its sending stops the run with an error, and so does
the end of the watch stream (for example when --to stops).

With --json prints {"ops":N,"ops_per_s":X,"p50_us":X,"p99_us":X,"max_us":X}:
the percentiles are of the replication lag.`,
		Example: `  cortex --socket /run/cortex-a/cortex.sock bench replication --to /run/cortex-b/cortex.sock
  cortex bench replication --to /run/cortex-b/cortex.sock --n 20000 --rate 2000 --json
  cortex table drop bench`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return cli.Usagef(cmd, "unexpected argument %q: usage: %s", args[0], cmd.UseLine())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if to == "" {
				return cli.Usagef(cmd, "missing --to SOCKET: give the Unix socket of the node to read the writes back from")
			}
			if err := o.check(cmd); err != nil {
				return err
			}
			if err := checkRange(cmd, "--rate", rate, 1, benchMaxRate); err != nil {
				return err
			}
			if wait <= 0 {
				return cli.Usagef(cmd, "--wait %s is not positive: give a duration such as 30s", wait)
			}
			dst := api.Dial(to)
			defer dst.Close()
			r := &replBench{a: a, dst: dst, to: to, o: o, rate: rate, wait: wait, keys: newBenchKeys()}
			if err := r.setup(cmd); err != nil {
				return err
			}
			res, err := r.run()
			if err != nil {
				return err
			}
			if a.json {
				return cli.WriteJSON(a.stdout, res.json())
			}
			_, err = fmt.Fprintf(a.stdout, "bench replication: %d writes of %d-byte values to table %s on %s at %d/s, read back on %s\n"+
				"  throughput  %.0f writes/s (%d in %s)\n"+
				"  lag         %s (acknowledged on %s to readable on %s)\n",
				o.n, o.valueSize, o.table, r.srcName, rate, r.dstName,
				res.opsPerS(), res.ops, res.elapsed.Round(time.Millisecond), res.latencies(), r.srcName, r.dstName)
			return err
		},
	}
	o.flags(c)
	c.Flags().StringVar(&to, "to", "", "Unix socket of the node to read the writes back from (required)")
	c.Flags().IntVar(&rate, "rate", 1000, "writes per second")
	c.Flags().DurationVar(&wait, "wait", 30*time.Second, "give up when a write is not readable on --to after this long")
	return c
}

// replBench is one run of bench replication.
type replBench struct {
	a       *app
	dst     *api.Client
	to      string
	o       benchOpts
	rate    int
	wait    time.Duration
	keys    benchKeys
	src     *api.Client
	srcName string
	dstName string

	issued []time.Time  // when write i was sent (set before count is raised)
	acked  []time.Time  // when write i was acknowledged
	seen   []time.Time  // when the watch on --to delivered write i (set by the watcher only)
	count  atomic.Int64 // writes issued
	lowest atomic.Int64 // every write before it was delivered by the watch
}

// toErr names the --to node in an error from it.
func (r *replBench) toErr(err error) error {
	var ae *api.Error
	if errors.As(err, &ae) {
		return &api.Error{Status: ae.Status, Code: ae.Code, Message: fmt.Sprintf("the --to node (%s): %s", r.to, ae.Message)}
	}
	return fmt.Errorf("the --to node: %w", err)
}

// setup checks both nodes, makes sure the table replicates to --to, and
// waits until a first write is readable there.
func (r *replBench) setup(cmd *cobra.Command) error {
	a := r.a
	src, err := call(a, func(ctx context.Context, c *api.Client) (api.NodeStatus, error) { return c.NodeStatus(ctx) })
	if err != nil {
		return err
	}
	dst, err := call(a, func(ctx context.Context, _ *api.Client) (api.NodeStatus, error) { return r.dst.NodeStatus(ctx) })
	if err != nil {
		return r.toErr(err)
	}
	r.srcName, r.dstName = src.Node, dst.Node
	if dst.Node == src.Node {
		return cli.Usagef(cmd, "--to %s is node %s itself: give the socket of another node of the mesh", r.to, dst.Node)
	}
	if !src.Mesh || !dst.Mesh {
		standalone := src.Node
		if src.Mesh {
			standalone = dst.Node
		}
		return fmt.Errorf("node %s is standalone (not in mesh mode), so nothing replicates between %s and %s: start cortexd with --mesh-ca, --mesh-cert and --mesh-key", standalone, src.Node, dst.Node)
	}
	info, err := benchTable(a, r.o.table, scope.Scope{All: true})
	if err != nil {
		return err
	}
	if !info.Scope.Includes(dst.Node, info.Home) {
		return fmt.Errorf("table %s does not replicate to %s (%s): give another --table, or widen its scope (cortex table scope %s all)",
			info.Name, dst.Node, describeScope(info), info.Name)
	}
	if r.src, err = a.dial(); err != nil {
		return err
	}
	deadline := time.Now().Add(benchSetupWait)
	for {
		list, err := call(a, func(ctx context.Context, _ *api.Client) ([]api.TableInfo, error) { return r.dst.Tables(ctx) })
		if err != nil {
			return r.toErr(err)
		}
		held := false
		for _, t := range list {
			held = held || t.Name == info.Name && t.ID == info.ID && t.Held
		}
		if held {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %s does not hold table %s %s after it was made: is it connected to %s? (cortex mesh peers)",
				dst.Node, info.Name, benchSetupWait, src.Node)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	// A first write, readable on --to: the stream is up.
	probe := []byte(r.keys.prefix[:len(r.keys.prefix)-1] + "w")
	if _, err := call(a, func(ctx context.Context, c *api.Client) (api.WriteResult, error) {
		return c.Put(ctx, info.Name, probe, []byte("warm-up"))
	}); err != nil {
		return err
	}
	for {
		_, err := call(a, func(ctx context.Context, _ *api.Client) (api.Record, error) { return r.dst.Get(ctx, info.Name, probe) })
		var ae *api.Error
		if err == nil {
			return nil
		}
		if !errors.As(err, &ae) || ae.Code != api.CodeNotFound {
			return r.toErr(err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("a write on %s is not readable on %s after %s: is %s connected to %s? (cortex mesh peers)",
				src.Node, dst.Node, benchSetupWait, dst.Node, src.Node)
		}
		time.Sleep(time.Millisecond) // poll interval
	}
}

// run makes the paced writes and watches --to for them.
func (r *replBench) run() (benchResult, error) {
	n := r.o.n
	r.issued, r.acked, r.seen = make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var errOnce sync.Once
	var firstErr error
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	started := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		if err := r.watch(ctx, started); err != nil {
			fail(err)
		}
	}()
	select {
	case <-started:
	case <-watched:
		return benchResult{}, firstErr
	}
	checked := make(chan struct{})
	go func() {
		defer close(checked)
		if err := r.check(ctx, watched); err != nil {
			fail(err)
		}
	}()
	value := make([]byte, r.o.valueSize)
	for i := range value {
		value[i] = 'a' + byte(i%26)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, benchMaxInFlight)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		due := start.Add(time.Duration(int64(i) * int64(time.Second) / int64(r.rate)))
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		r.issued[i] = time.Now()
		r.count.Store(int64(i + 1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cctx, ccancel := r.a.callCtx(ctx)
			defer ccancel()
			if _, err := r.src.Put(cctx, r.o.table, r.keys.key(i), value); err != nil {
				fail(err)
				return
			}
			r.acked[i] = time.Now()
		}()
	}
	wg.Wait()
	var last time.Time
	for _, t := range r.acked {
		if t.After(last) {
			last = t
		}
	}
	<-watched
	<-checked
	if firstErr != nil {
		return benchResult{}, firstErr
	}
	lags := make([]time.Duration, n)
	for i := range lags {
		lags[i] = max(r.seen[i].Sub(r.acked[i]), 0)
	}
	slices.Sort(lags)
	return benchResult{ops: n, elapsed: last.Sub(start), sorted: lags}, nil
}

// errAllDelivered ends the watch once every write of the run arrived.
var errAllDelivered = errors.New("every write was delivered")

// watch follows the --to node's watch stream for the keys of the run,
// closes started once the stream is open, and stamps each write of the run
// when the stream delivers it, until every write arrived (nil), ctx ends
// (nil) or the stream ends (its error).
func (r *replBench) watch(ctx context.Context, started chan<- struct{}) error {
	n := r.o.n
	lowest := 0
	err := r.dst.WatchStream(ctx, api.WatchRequest{Table: r.o.table, Prefix: []byte(r.keys.prefix)},
		func(api.WatchStart) error { close(started); return nil },
		func(ch api.Change) error {
			now := time.Now()
			i := r.keys.index(ch.Key)
			if i < 0 || i >= n || !r.seen[i].IsZero() {
				return nil
			}
			r.seen[i] = now
			for lowest < n && !r.seen[lowest].IsZero() {
				lowest++
			}
			r.lowest.Store(int64(lowest))
			if lowest == n {
				return errAllDelivered
			}
			return nil
		})
	switch {
	case errors.Is(err, errAllDelivered), ctx.Err() != nil:
		return nil
	case err == nil:
		err = errors.New("the watch stream ended")
	}
	return r.toErr(fmt.Errorf("watching table %s: %w", r.o.table, err))
}

// check stops the run when the oldest write not yet delivered by the watch
// was sent more than --wait ago. It reads only this process's memory, every
// benchCheckEvery, until the watch is done or ctx ends.
func (r *replBench) check(ctx context.Context, watched <-chan struct{}) error {
	tick := time.NewTicker(benchCheckEvery)
	defer tick.Stop()
	for {
		select {
		case <-watched:
			return nil
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		l := r.lowest.Load()
		if l >= r.count.Load() {
			continue
		}
		if sent := r.issued[l]; time.Since(sent) > r.wait {
			return fmt.Errorf("write %d of %d (key %s) was not delivered by %s %s after it was sent: is %s still connected to %s? (cortex mesh peers)",
				l+1, r.o.n, r.keys.key(int(l)), r.dstName, r.wait, r.dstName, r.srcName)
		}
	}
}
