package tables

import (
	"sync"
	"time"
)

// Clock is a node's hybrid logical clock. A timestamp packs 48 bits of Unix
// milliseconds above a 16-bit logical counter, so timestamps compare as plain
// integers. Now is strictly greater than every timestamp the clock has issued
// or observed, which keeps it monotonic across restarts once it has observed
// the newest timestamp in each table's log. Safe for concurrent use.
type Clock struct {
	wall func() time.Time

	mu   sync.Mutex
	last uint64
}

// NewClock returns a clock reading wall for physical time (time.Now if nil).
func NewClock(wall func() time.Time) *Clock {
	if wall == nil {
		wall = time.Now
	}
	return &Clock{wall: wall}
}

// HLC builds a timestamp from milliseconds and a logical counter.
func HLC(ms int64, counter uint16) uint64 { return uint64(ms)<<16 | uint64(counter) }

// HLCTime splits a timestamp into its wall time and logical counter.
func HLCTime(hlc uint64) (time.Time, uint16) {
	return time.UnixMilli(int64(hlc >> 16)).UTC(), uint16(hlc)
}

// Now returns a new timestamp greater than any seen before.
func (c *Clock) Now() uint64 {
	phys := HLC(c.wall().UnixMilli(), 0)
	c.mu.Lock()
	defer c.mu.Unlock()
	if phys > c.last {
		c.last = phys
	} else {
		c.last++ // a full counter carries into the milliseconds
	}
	return c.last
}

// MaxFuture is how far ahead of this node's wall clock a remote change's
// timestamp may be: beyond it the change is refused (a runaway or forged
// clock would otherwise win every conflict, and could run the clock out).
// Peers further off than this are refused at connect, too.
const MaxFuture = 60 * time.Second

// Horizon is the greatest timestamp a remote change may carry now.
func (c *Clock) Horizon() uint64 {
	return HLC(c.wall().Add(MaxFuture).UnixMilli(), 0xffff)
}

// Observe moves the clock past a timestamp seen in a log or from a peer.
func (c *Clock) Observe(hlc uint64) {
	c.mu.Lock()
	if hlc > c.last {
		c.last = hlc
	}
	c.mu.Unlock()
}

// Last returns the greatest timestamp issued or observed.
func (c *Clock) Last() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}
