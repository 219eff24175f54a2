package health

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/store"
)

// Peers is what the checker needs of the mesh: the peers connected now and
// the state of their copies (repair.Peers over a mesh.Transport).
type Peers interface {
	Ready() []string
	QueryStatus(ctx context.Context, node string, tables []string) ([]repair.CopyStatus, error)
}

// Config configures a Checker.
type Config struct {
	Store *store.Store
	// Peers is nil for a standalone node.
	Peers Peers
	// Seeds: the node was started with --peer seeds.
	Seeds bool
	// Started is when the node started (default: now).
	Started time.Time
	// Every is how often readiness is checked until it latches (default
	// 250 ms); Timeout bounds one peer's answer (default 3 s).
	Every, Timeout time.Duration
	Logger         *slog.Logger
}

// Checker checks readiness until it latches, and health when asked.
type Checker struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	ready   Status
	latched bool
	reached bool // some peer answered since the start
}

// NewChecker starts checking readiness (every cfg.Every, until it latches
// or Close).
func NewChecker(cfg Config) *Checker {
	if cfg.Started.IsZero() {
		cfg.Started = time.Now()
	}
	if cfg.Every <= 0 {
		cfg.Every = 250 * time.Millisecond
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Checker{cfg: cfg, done: make(chan struct{}), ready: Status{Reason: "starting: not checked yet"}}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.loop()
	return c
}

// Close stops the checks and waits for the one in flight.
func (c *Checker) Close() {
	c.cancel()
	<-c.done
}

// Ready is the latest readiness verdict.
func (c *Checker) Ready() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ready
}

// Health is the health verdict now.
func (c *Checker) Health() Status {
	var broken []Broken
	for _, b := range c.cfg.Store.Broken() {
		broken = append(broken, Broken{Table: b.Info.Name, Err: b.Err.Error()})
	}
	return Healthy(broken)
}

func (c *Checker) loop() {
	defer close(c.done)
	t := time.NewTicker(c.cfg.Every)
	defer t.Stop()
	for {
		if c.check(c.ctx) {
			return
		}
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check decides readiness once and reports whether it latched.
func (c *Checker) check(ctx context.Context) bool {
	in := Input{Mesh: c.cfg.Peers != nil, Since: time.Since(c.cfg.Started)}
	if in.Mesh {
		self := c.cfg.Store.Node()
		in.ExpectPeers = c.cfg.Seeds || len(c.cfg.Store.Members()) > 1
		remote := map[string][]repair.CopyStatus{}
		for _, p := range c.cfg.Peers.Ready() {
			qctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
			list, err := c.cfg.Peers.QueryStatus(qctx, p, nil)
			cancel()
			if err != nil {
				c.cfg.Logger.Debug("readiness: a peer did not answer", "peer", p, "err", err)
				continue
			}
			remote[p] = list
		}
		if ctx.Err() != nil {
			return true
		}
		in.Answered, in.Lags = len(remote), SelfLags(self, repair.LocalStatus(c.cfg.Store, self, nil), remote, time.Now())
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reached = c.reached || in.Answered > 0
	in.PeerReached = c.reached
	s, latch := Decide(in)
	c.ready, c.latched = s, latch
	if latch {
		c.cfg.Logger.Info("ready", "reason", s.Reason, "after", in.Since.Round(time.Millisecond))
	}
	return latch
}

// SelfLags is how far each copy self holds (not being handed off, opened)
// is behind the copies of the same table the peers answered with (by
// repair.Lags: the most entries of any one of their logs self has not
// applied).
func SelfLags(self string, local []repair.CopyStatus, remote map[string][]repair.CopyStatus, now time.Time) []Lag {
	var out []Lag
	for _, l := range local {
		if l.Draining || l.LogID == "" {
			continue
		}
		copies := map[string]repair.CopyStatus{self: l}
		for peer, list := range remote {
			for _, r := range list {
				if r.Table == l.Table && r.ID == l.ID && r.LogID != "" {
					copies[peer] = r
				}
			}
		}
		out = append(out, Lag{Table: l.Table, Entries: repair.Lags(copies, now)[self].Entries})
	}
	return out
}
