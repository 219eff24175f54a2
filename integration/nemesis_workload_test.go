package integration

// The nemesis workload: concurrent writers putting and deleting a small set
// of keys on random nodes, and one reader per node, recording every
// operation with its outcome for the checker. Every loop is bounded in
// count (nemMaxOps) and ends when the round stops it.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/api"
)

type nemWorkloadConfig struct {
	Writers   int           // concurrent writing clients
	Keys      int           // keys k000..; few, so that writes conflict
	DelEvery  int           // one write in DelEvery is a delete
	Pace      time.Duration // pause between one client's operations
	OpTimeout time.Duration // a call not answered by then is of unknown outcome
	MaxOps    int           // per client and round, whatever the time
}

type nemWorkload struct {
	cl  *nemCluster
	cfg nemWorkloadConfig

	mu      sync.Mutex
	hist    nemHistory
	lat     []time.Duration // of acknowledged writes
	errs    map[string]int  // unacknowledged outcomes by kind
	nextVal atomic.Int64
	round   int
	stopRun func() // the running round's stop, nil between rounds
}

func newNemWorkload(cl *nemCluster, cfg nemWorkloadConfig) *nemWorkload {
	return &nemWorkload{cl: cl, cfg: cfg, errs: map[string]int{}}
}

func (w *nemWorkload) key(r *rand.Rand) string { return fmt.Sprintf("k%03d", r.IntN(w.cfg.Keys)) }

// errKind classifies an error for the summary.
func errKind(err error) string {
	var ae *api.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &ae):
		return "api:" + ae.Code
	case errors.Is(err, api.ErrUnreachable):
		return "unreachable"
	}
	return "other"
}

// keyNotFound tells a missing key from every other error (a missing
// table is one of those: the table is held everywhere, all the time).
func keyNotFound(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == api.CodeNotFound && strings.Contains(ae.Message, "key not found")
}

// notSent tells that a call never reached cortexd: connecting to its
// socket failed (the node is down), so the request was never written.
func notSent(err error) bool {
	var oe *net.OpError
	return errors.Is(err, api.ErrUnreachable) && errors.As(err, &oe) && oe.Op == "dial"
}

// run starts the clients of one round, seeded from seed; stop ends them and
// waits until every call in flight has returned.
func (w *nemWorkload) run(seed uint64) (stop func()) {
	w.round++
	done := make(chan struct{})
	var wg sync.WaitGroup
	for i := range w.cfg.Writers {
		client := w.round*100 + i
		r := rand.New(rand.NewPCG(seed, uint64(client)))
		wg.Go(func() { w.writer(client, r, done) })
	}
	for i, nn := range w.cl.nodes {
		r := rand.New(rand.NewPCG(seed, uint64(w.round*100+50+i)))
		wg.Go(func() { w.reader(nn, r, done) })
	}
	w.stopRun = func() {
		close(done)
		wg.Wait()
	}
	return w.stop
}

// stop ends the running round, if any, and waits for its calls.
func (w *nemWorkload) stop() {
	if w.stopRun != nil {
		w.stopRun()
		w.stopRun = nil
	}
}

func (w *nemWorkload) writer(client int, r *rand.Rand, done chan struct{}) {
	for range w.cfg.MaxOps {
		select {
		case <-done:
			return
		case <-time.After(w.cfg.Pace): // pacing
		}
		nn := w.cl.nodes[r.IntN(len(w.cl.nodes))]
		op := nemWrite{Client: client, Node: nn.name, Key: w.key(r), Del: r.IntN(w.cfg.DelEvery) == 0}
		if !op.Del {
			op.Value = fmt.Sprintf("v%07d-c%d", w.nextVal.Add(1), client)
		}
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.OpTimeout)
		op.Start = w.cl.now()
		var res api.WriteResult
		var err error
		if op.Del {
			res, err = nn.c.Delete(ctx, nemTable, []byte(op.Key))
		} else {
			res, err = nn.c.Put(ctx, nemTable, []byte(op.Key), []byte(op.Value))
		}
		op.End = w.cl.now()
		cancel()
		switch {
		case err == nil:
			op.Outcome, op.Version = nemAcked, nemVersion{uint64(res.HLC), res.Origin}
		case op.Del && keyNotFound(err):
			op.Outcome = nemNoop
		case notSent(err):
			op.Outcome, op.Err = nemFailed, err.Error()
		default:
			op.Outcome, op.Err = nemUnknown, err.Error()
		}
		w.mu.Lock()
		w.hist.Writes = append(w.hist.Writes, op)
		if err == nil {
			w.lat = append(w.lat, op.End-op.Start)
		} else if op.Outcome != nemNoop {
			w.errs[op.Outcome.String()+" "+errKind(err)]++
		}
		w.mu.Unlock()
	}
}

func (w *nemWorkload) reader(nn *nemNode, r *rand.Rand, done chan struct{}) {
	for range w.cfg.MaxOps {
		select {
		case <-done:
			return
		case <-time.After(w.cfg.Pace): // pacing
		}
		rd := nemRead{Node: nn.name, Key: w.key(r)}
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.OpTimeout)
		rd.Start = w.cl.now()
		rec, err := nn.c.Get(ctx, nemTable, []byte(rd.Key))
		rd.End = w.cl.now()
		cancel()
		rd.Incarnation = int(nn.incarnation.Load())
		switch {
		case err == nil:
			rd.Found, rd.Value, rd.Version = true, string(rec.Value), nemVersion{uint64(rec.HLC), rec.Origin}
		case keyNotFound(err):
		default:
			w.mu.Lock()
			w.errs["read "+errKind(err)]++ // a node down or stopped: no read
			w.mu.Unlock()
			continue
		}
		w.mu.Lock()
		w.hist.Reads = append(w.hist.Reads, rd)
		w.mu.Unlock()
	}
}

// history is a copy of what was recorded so far (call once the round is
// stopped).
func (w *nemWorkload) history() nemHistory {
	w.mu.Lock()
	defer w.mu.Unlock()
	return nemHistory{Writes: slices.Clone(w.hist.Writes), Reads: slices.Clone(w.hist.Reads)}
}

// latency returns the p50 and max of the acknowledged writes.
func (w *nemWorkload) latency() (p50, max time.Duration) {
	w.mu.Lock()
	all := slices.Clone(w.lat)
	w.mu.Unlock()
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return all[len(all)/2], all[len(all)-1]
}
