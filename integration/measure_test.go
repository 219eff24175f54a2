package integration

// Measuring helpers of the mesh benchmarks: the lag timed by a watcher on
// the receiving node, a bounded write load, the CPU and memory of cortexd
// processes from /proc, and the raw fsync latency of the disk.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/api"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs cgo).
const clockTicks = 100

// parseStatCPU returns utime+stime of a /proc/PID/stat line. The command
// name (field 2) is in parentheses and may hold spaces and parentheses, so
// the fields are counted from the last ")".
func parseStatCPU(stat []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no ')' after the command name")
	}
	f := bytes.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields after the command name, want at least 13", len(f))
	}
	var ticks uint64
	for _, s := range f[11:13] {
		v, err := strconv.ParseUint(string(s), 10, 63)
		if err != nil {
			return 0, fmt.Errorf("/proc stat: utime/stime %q: %w", s, err)
		}
		if v > (1<<62)/uint64(time.Second/clockTicks) {
			return 0, fmt.Errorf("/proc stat: %d ticks is out of range", v)
		}
		ticks += v
	}
	return time.Duration(ticks) * (time.Second / clockTicks), nil
}

// parseVmRSS returns the VmRSS line of /proc/PID/status in bytes.
func parseVmRSS(status []byte) (int64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("/proc status: VmRSS line %q, want \"VmRSS: N kB\"", bytes.TrimSpace(line))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil || kb < 0 || kb > 1<<40 {
			return 0, fmt.Errorf("/proc status: VmRSS %q is not a size in kB", f[0])
		}
		return kb << 10, nil
	}
	return 0, errors.New("/proc status: no VmRSS line")
}

// pid is the process id of the running cortexd.
func (n *node) pid() int { return n.cmd.Process.Pid }

// cpuTime is the CPU time (user + system) n's process used so far.
func (n *node) cpuTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.pid()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", n.name, err)
	}
	return parseStatCPU(b)
}

// rss is n's resident set size (VmRSS) in bytes.
func (n *node) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.pid()))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", n.name, err)
	}
	return parseVmRSS(b)
}

// meshCPU is the CPU time all of nodes used so far.
func meshCPU(nodes []*node) (time.Duration, error) {
	var sum time.Duration
	for _, n := range nodes {
		d, err := n.cpuTime()
		if err != nil {
			return 0, err
		}
		sum += d
	}
	return sum, nil
}

// waitQuiet waits, up to limit, until nodes together use less than 5% of
// one core over 200 ms: what an earlier load started (replication, a
// checkpoint) is done. It reports whether they became quiet.
func waitQuiet(nodes []*node, limit time.Duration) bool {
	const window, busy = 200 * time.Millisecond, 10 * time.Millisecond
	deadline := time.Now().Add(limit)
	prev, err := meshCPU(nodes)
	for err == nil && time.Now().Before(deadline) {
		time.Sleep(window) // the sampling window, not a synchronisation
		var now time.Duration
		if now, err = meshCPU(nodes); err == nil && now-prev < busy {
			return true
		}
		prev = now
	}
	return false
}

// heldKeys is the key count n's table list shows for its copy of table.
func (n *node) heldKeys(ctx context.Context, table string) (int64, error) {
	c := n.client()
	defer c.Close()
	list, err := c.Tables(ctx)
	if err != nil {
		return 0, fmt.Errorf("%s: table list: %w", n.name, err)
	}
	for _, t := range list {
		if t.Name == table && t.Held {
			return t.Keys, nil
		}
	}
	return 0, fmt.Errorf("%s does not hold table %s", n.name, table)
}

// waitHeldKeys polls n's table list every every until table holds want
// keys, for up to limit.
func (n *node) waitHeldKeys(table string, want int64, limit, every time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	var got int64
	var err error
	for {
		if got, err = n.heldKeys(ctx, table); err == nil && got >= want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: table %s holds %d keys after %s, want %d (%v)", n.name, table, got, limit, want, err)
		case <-time.After(every):
		}
	}
}

// loadResult is one bounded write load: the writes acknowledged and the
// wall-clock time they took.
type loadResult struct {
	writes  int
	elapsed time.Duration
}

func (r loadResult) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.writes) / r.elapsed.Seconds()
}

// writeLoad writes value to up to n keys prefix%010d of table over c from
// clients goroutines, each sending one put at a time; no write
// starts after limit. The first failed write ends the load with its error.
func writeLoad(c *api.Client, table, prefix string, value []byte, clients, n int, limit time.Duration) (loadResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		next, done atomic.Int64
		wg         sync.WaitGroup
		once       sync.Once
		failure    error
	)
	start := time.Now()
	stopAt := start.Add(limit)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && time.Now().Before(stopAt) {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
				_, err := c.Put(wctx, table, fmt.Appendf(nil, "%s%010d", prefix, i), value)
				wcancel()
				if err != nil {
					once.Do(func() { failure = fmt.Errorf("put %d of %d: %w", i, n, err); cancel() })
					return
				}
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	res := loadResult{writes: int(done.Load()), elapsed: time.Since(start)}
	return res, failure
}

// lagStats is one lag measurement: the writes, the rate they were made at,
// and the percentiles of their lag; early counts the writes delivered by
// the watcher before the writer's acknowledgement arrived (counted as 0).
type lagStats struct {
	writes        int
	rate          float64
	p50, p99, max time.Duration
	early         int
}

// errAllArrived ends a watch stream once every write was seen.
var errAllArrived = errors.New("every write arrived")

// lagIndex returns the write number of key prefix%010d, or false.
func lagIndex(prefix string, key []byte) (int, bool) {
	rest, ok := bytes.CutPrefix(key, []byte(prefix))
	if !ok || len(rest) != 10 {
		return 0, false
	}
	i := 0
	for _, d := range rest {
		if d < '0' || d > '9' {
			return 0, false
		}
		i = i*10 + int(d-'0')
	}
	return i, true
}

// lagsOf computes the lag of each write (arrival minus acknowledgement, 0
// when it arrived first) and its statistics, for writes made over elapsed.
func lagsOf(acked, arrived []time.Time, elapsed time.Duration) lagStats {
	lags := make([]time.Duration, len(acked))
	early := 0
	for i := range acked {
		if lags[i] = arrived[i].Sub(acked[i]); lags[i] < 0 {
			lags[i], early = 0, early+1
		}
	}
	slices.Sort(lags)
	st := lagStats{writes: len(lags), p50: pct(lags, 50), p99: pct(lags, 99), max: pct(lags, 100), early: early}
	if elapsed > 0 {
		st.rate = float64(len(lags)) / elapsed.Seconds()
	}
	return st
}

// watchLag measures the replication lag from src to dst by push: a watcher
// on dst (cortex watch, started before the first write) stamps each write
// of the run when the stream delivers it, while n writes of keys
// prefix%010d are made on src, paced at rate per second (a goroutine per
// write when it is due, at most 256 in flight). A write's lag is its
// arrival on dst minus its acknowledgement on src. Nothing polls dst.
// The run gives up giveUp after the last write is due.
func watchLag(src, dst *node, table, prefix string, n, rate int, giveUp time.Duration) (lagStats, error) {
	const inFlight = 256
	ca, cw := src.client(), dst.client()
	defer ca.Close()
	defer cw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(n)*time.Second/time.Duration(rate)+giveUp)
	defer cancel()

	arrived := make([]time.Time, n) // written by the watcher only, read after it returned
	started := make(chan struct{})
	watched := make(chan error, 1)
	go func() {
		seen := 0
		watched <- cw.WatchStream(ctx, api.WatchRequest{Table: table, Prefix: []byte(prefix)},
			func(api.WatchStart) error { close(started); return nil },
			func(ch api.Change) error {
				now := time.Now()
				i, ok := lagIndex(prefix, ch.Key)
				if !ok || i >= n || !arrived[i].IsZero() {
					return nil
				}
				arrived[i] = now
				if seen++; seen == n {
					return errAllArrived
				}
				return nil
			})
	}()
	select {
	case <-started:
	case err := <-watched:
		return lagStats{}, fmt.Errorf("watch on %s: %w", dst.name, err)
	case <-ctx.Done():
		return lagStats{}, fmt.Errorf("watch on %s did not start: %w", dst.name, ctx.Err())
	}

	acked := make([]time.Time, n)
	var (
		wg      sync.WaitGroup
		once    sync.Once
		failure error
	)
	sem := make(chan struct{}, inFlight)
	start := time.Now()
	for i := 0; i < n && ctx.Err() == nil; i++ {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))); d > 0 {
			time.Sleep(d) // the schedule of the paced writes
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if _, err := ca.Put(ctx, table, fmt.Appendf(nil, "%s%010d", prefix, i), benchValue); err != nil {
				once.Do(func() { failure = fmt.Errorf("put %d on %s: %w", i, src.name, err); cancel() })
				return
			}
			acked[i] = time.Now()
		}()
	}
	wg.Wait()
	var last time.Time
	for _, t := range acked {
		if t.After(last) {
			last = t
		}
	}
	err := <-watched
	if failure != nil {
		return lagStats{}, failure
	}
	if !errors.Is(err, errAllArrived) {
		got := 0
		for _, t := range arrived {
			if !t.IsZero() {
				got++
			}
		}
		return lagStats{}, fmt.Errorf("%d of %d writes on %s arrived on %s: %w", got, n, src.name, dst.name, err)
	}
	return lagsOf(acked, arrived, last.Sub(start)), nil
}

// fsyncStats is the raw latency of a 100-byte write + fsync.
type fsyncStats struct {
	syncs    int
	p50, p99 time.Duration
	rate     float64
}

// measureFsync appends 100 bytes and fsyncs, n times or until limit, in a
// new file in dir, and removes the file.
func measureFsync(dir string, n int, limit time.Duration) (fsyncStats, error) {
	f, err := os.CreateTemp(dir, "cx-fsync-")
	if err != nil {
		return fsyncStats{}, fmt.Errorf("fsync file: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	lat := make([]time.Duration, 0, n)
	start := time.Now()
	for len(lat) < n && time.Since(start) < limit {
		t0 := time.Now()
		if _, err := f.Write(benchValue); err != nil {
			return fsyncStats{}, fmt.Errorf("write %s: %w", f.Name(), err)
		}
		if err := f.Sync(); err != nil {
			return fsyncStats{}, fmt.Errorf("fsync %s: %w", f.Name(), err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	slices.Sort(lat)
	return fsyncStats{syncs: len(lat), p50: pct(lat, 50), p99: pct(lat, 99), rate: float64(len(lat)) / elapsed.Seconds()}, nil
}

// dataFilesystemDir is a directory on the filesystem of the nodes' data
// directories (newNode makes them under os.TempDir()).
func dataFilesystemDir() string { return filepath.Clean(os.TempDir()) }
