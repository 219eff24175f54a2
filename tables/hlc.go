package tables

import (
	"fmt"
	"strconv"
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

// MaxFuture is how far a peer's wall clock may be ahead of this node's:
// peers further off are refused at connect (a runaway clock would otherwise
// win every conflict).
const MaxFuture = 60 * time.Second

// MaxDrift is how far ahead of its own wall clock a remote change may move a
// node's clock (ObserveRemote). Without a bound, a peer stamping changes
// just inside the admission horizon would push every node's clock there,
// and their own next writes past the horizon of a peer whose clock is a
// little behind: those would be refused.
const MaxDrift = 2 * time.Second

// Horizon is the greatest timestamp a remote change may carry now: an honest
// peer's clock is at most MaxFuture ahead of this node's wall clock and its
// own wall clock at most MaxDrift behind its clock.
func (c *Clock) Horizon() uint64 {
	return HLC(c.wall().Add(MaxFuture+MaxDrift).UnixMilli(), 0xffff)
}

// ObserveRemote moves the clock past a timestamp of a change from a peer,
// but never more than MaxDrift ahead of the wall clock: this node's next
// write may then be older than a change stamped further ahead, which wins
// the conflict until this node's clock passes it (at most MaxFuture).
func (c *Clock) ObserveRemote(hlc uint64) {
	c.Observe(min(hlc, HLC(c.wall().Add(MaxDrift).UnixMilli(), 0)))
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

// Timestamp is an HLC timestamp as JSON carries it: a decimal string
// ("hlc":"123456789012345678"), because a timestamp is above 2^53 and tools
// whose numbers are float64 (jq, JavaScript) would round a JSON number. It
// decodes from that string or from a JSON number (what older versions
// wrote), nothing else.
type Timestamp uint64

// MarshalText writes the timestamp in decimal (a JSON string).
func (t Timestamp) MarshalText() ([]byte, error) {
	return strconv.AppendUint(nil, uint64(t), 10), nil
}

// UnmarshalJSON reads a decimal string or a JSON number of decimal digits
// that fits 64 bits; null leaves the timestamp as it is.
func (t *Timestamp) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil
	}
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParseTimestamp(s)
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// ParseTimestamp reads a timestamp written in decimal digits (no sign, no
// spaces, no exponent).
func ParseTimestamp(s string) (Timestamp, error) {
	ok := s != ""
	for i := 0; ok && i < len(s); i++ {
		ok = s[i] >= '0' && s[i] <= '9'
	}
	if !ok {
		return 0, fmt.Errorf("hlc %q is not a decimal number", s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("hlc %q is not a decimal number that fits 64 bits", s)
	}
	return Timestamp(v), nil
}

// Time returns the wall time the timestamp encodes (its 48 bits of
// milliseconds) as JSON shows it next to the timestamp ("hlc_time"): RFC
// 3339, UTC, to the millisecond, "2026-12-02T15:04:05.123Z".
func (t Timestamp) Time() string {
	w, _ := HLCTime(uint64(t))
	return w.Format(HLCTimeLayout)
}

// HLCTimeLayout is how a timestamp's wall time is printed: RFC 3339 in UTC
// with milliseconds.
const HLCTimeLayout = "2006-01-02T15:04:05.000Z07:00"
