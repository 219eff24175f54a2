package repl

import (
	"github.com/cortex-mesh/cortex/wal"
)

// Claim is what a subscriber says it holds of one origin's writes, in its
// own copy (docs/replication.md, "What a subscriber is not sent"): every
// entry of that origin with an HLC at or below HLC, or a newer version of
// its key. Live says the subscriber follows the origin's log directly now,
// so that it is about to claim the origin's newest entries itself.
type Claim struct {
	HLC  uint64 `json:"hlc"`
	Live bool   `json:"live,omitempty"`
}

// Decision is what a publisher does with one entry of its log for one
// subscriber.
type Decision int

// The decisions of Relay.
const (
	Send Decision = iota // send it
	Skip                 // the subscriber has it, or a newer version of its key
	Hold                 // send it unless the subscriber claims it within relayHold
)

func (d Decision) String() string {
	switch d {
	case Send:
		return "send"
	case Skip:
		return "skip"
	case Hold:
		return "hold"
	}
	return "?"
}

// Relay decides whether the publisher sends one entry (by its version) of
// its log to the subscriber, given what the subscriber claims:
//
//   - the publisher's own writes are always sent (eager push);
//   - the subscriber's own writes are always sent back: a node never claims
//     its own writes, since one restored from an older copy of its data
//     cannot know which of them it lost;
//   - a third origin's entry at or below the subscriber's claim for that
//     origin is skipped;
//   - one above it is held briefly if the subscriber follows the origin
//     directly (it is about to get it from there), else sent.
func Relay(v wal.Version, publisher, subscriber string, have map[string]Claim) Decision {
	if v.Origin == publisher || v.Origin == subscriber {
		return Send
	}
	c, ok := have[v.Origin]
	switch {
	case ok && v.HLC <= c.HLC:
		return Skip
	case ok && c.Live:
		return Hold
	}
	return Send
}

// PlanBatch applies Relay to consecutive entries of the publisher's log
// and says how many of them (n) to cover now, and which of those to send.
// With wait, it stops at the first held entry (n may then be less than
// len(vs), even 0): the caller sends what comes before it, waits for the
// subscriber's claims to move, and plans the rest again. Without wait a
// held entry is sent.
func PlanBatch(vs []wal.Version, publisher, subscriber string, have map[string]Claim, wait bool) (send []bool, n int) {
	send = make([]bool, 0, len(vs))
	for _, v := range vs {
		d := Relay(v, publisher, subscriber, have)
		if d == Hold && wait {
			break
		}
		send = append(send, d != Skip)
	}
	return send, len(send)
}
