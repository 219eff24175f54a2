package repl

import (
	"sync"

	"github.com/cortex-mesh/cortex/wal"
)

// claims is what one copy of a table on this node holds of each other
// origin's writes, as its own subscriptions learn it (docs/replication.md,
// "What a subscriber is not sent"): the claim for origin o rises only when
// an entry of o that came on o's own stream has been applied (durably:
// Apply returns after the group commit), and only while no entry of that
// stream was refused. It is kept in memory and starts from nothing, so
// after a restart, a restore or a new copy (a new log id) nothing is
// claimed until it is seen again. The copy's own writes are never claimed.
type claims struct {
	self string

	mu      sync.Mutex
	hi      map[string]uint64
	live    map[string]int  // streams up from the origin (normally 0 or 1)
	stuck   map[string]bool // an entry of the origin's stream was refused: its claim no longer rises
	changed chan struct{}
}

func newClaims(self string) *claims {
	return &claims{self: self, hi: map[string]uint64{}, live: map[string]int{}, stuck: map[string]bool{}, changed: make(chan struct{})}
}

// notifyLocked wakes whoever waits for the claims to change.
func (c *claims) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Changed returns a channel closed at the next change.
func (c *claims) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Vector returns the claims now: one per origin with a claim or a stream up.
func (c *claims) Vector() map[string]Claim {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]Claim, len(c.hi)+len(c.live))
	for o, h := range c.hi {
		out[o] = Claim{HLC: h}
	}
	for o, n := range c.live {
		if n > 0 {
			cl := out[o]
			cl.Live = true
			out[o] = cl
		}
	}
	return out
}

// Applied records that entries that came on peer's own stream (a log
// batch, not a snapshot) were applied, none refused: peer's writes among
// them are held now, and, since a publisher sends all of its own writes in
// the order of its log, so is every earlier one.
func (c *claims) Applied(peer string, entries []wal.Entry) {
	if peer == c.self {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stuck[peer] {
		return
	}
	h := c.hi[peer]
	for i := range entries {
		if e := &entries[i]; e.Version.Origin == peer {
			h = max(h, e.Version.HLC)
		}
	}
	if h != c.hi[peer] {
		c.hi[peer] = h
		c.notifyLocked()
	}
}

// Refused records that an entry of peer's stream was refused: the copy
// may not hold every write of peer below a later one, so its claim for
// peer stays where it is while this node runs.
func (c *claims) Refused(peer string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stuck[peer] = true
}

// Live records that a stream from peer came up (true) or ended (false).
func (c *claims) Live(peer string, up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if up {
		c.live[peer]++
	} else if c.live[peer]--; c.live[peer] <= 0 {
		delete(c.live, peer)
	}
	c.notifyLocked()
}

// haveVec is a publisher's latest view of one subscriber's claims.
type haveVec struct {
	mu      sync.Mutex
	have    map[string]Claim
	changed chan struct{}
}

func newHaveVec(have map[string]Claim) *haveVec {
	return &haveVec{have: have, changed: make(chan struct{})}
}

// Get returns the claims and a channel closed when they next change.
func (h *haveVec) Get() (map[string]Claim, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.have, h.changed
}

// Set replaces the claims (the subscriber sends them whole).
func (h *haveVec) Set(have map[string]Claim) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.have = have
	close(h.changed)
	h.changed = make(chan struct{})
}
