package scope

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/tables"
)

// Tombstone purge (docs/lifecycle.md): the decisions, as pure functions.
//
// A table's purge horizon H is an HLC below which every copy that counts
// holds everything: for every copy Y and every other copy S, S has
// acknowledged Y's log past every entry of it older than H, and Y writes
// nothing older than H from then on. Tombstones older than H may then be
// dropped by every copy counted in H; a copy not counted is rebuilt.

// Tombstone grace bounds: how long a tombstone is kept at least.
const (
	DefaultTombstoneGrace = 24 * time.Hour
	MinTombstoneGrace     = time.Second
	MaxTombstoneGrace     = 10 * 365 * 24 * time.Hour
)

// Grace is the table's tombstone grace (DefaultTombstoneGrace if unset).
func (ti TableInfo) Grace() time.Duration {
	if ti.TombstoneGraceMS == 0 {
		return DefaultTombstoneGrace
	}
	return time.Duration(ti.TombstoneGraceMS) * time.Millisecond
}

// CheckGrace checks a tombstone grace given by a user.
func CheckGrace(d time.Duration) error {
	if d < MinTombstoneGrace || d > MaxTombstoneGrace {
		return fmt.Errorf("%w: tombstone grace %s: it must be between %s and %s", tables.ErrInvalid, d, MinTombstoneGrace, "87600h (10 years)")
	}
	return nil
}

// Horizon is the catalog record horizon/TABLEID: the table's purge
// horizon and the copies it counted.
type Horizon struct {
	Table  string        `json:"table"` // the table's id
	HLC    uint64        `json:"hlc"`
	By     string        `json:"by"` // the node that computed it
	Copies []CountedCopy `json:"copies"`
}

// CountedCopy is one copy counted in a horizon: its log, the bound it gave
// and how far each other copy had acknowledged its log then.
type CountedCopy struct {
	Node  string            `json:"node"`
	LogID string            `json:"log_id"`
	Bound uint64            `json:"bound"`
	Acks  map[string]uint64 `json:"acks"` // other copy -> offset of this copy's log it acknowledged
}

// Validate checks a horizon record (from a peer) before any field is used.
func (h Horizon) Validate() error {
	if _, ok := HomeOf(h.Table); !ok {
		return fmt.Errorf("%w: horizon record: malformed table id %q", tables.ErrInvalid, h.Table)
	}
	if h.HLC == 0 {
		return fmt.Errorf("%w: horizon record of %s: no horizon", tables.ErrInvalid, h.Table)
	}
	if err := ValidateNodeName(h.By); err != nil {
		return fmt.Errorf("horizon record of %s: by: %w", h.Table, err)
	}
	if len(h.Copies) == 0 || len(h.Copies) > MaxNodes {
		return fmt.Errorf("%w: horizon record of %s: %d copies", tables.ErrInvalid, h.Table, len(h.Copies))
	}
	seen := map[string]bool{}
	for _, c := range h.Copies {
		if err := ValidateNodeName(c.Node); err != nil {
			return fmt.Errorf("horizon record of %s: %w", h.Table, err)
		}
		if seen[c.Node] {
			return fmt.Errorf("%w: horizon record of %s: copy of %s twice", tables.ErrInvalid, h.Table, c.Node)
		}
		seen[c.Node] = true
		if c.LogID == "" || len(c.LogID) > 64 || c.Bound < h.HLC {
			return fmt.Errorf("%w: horizon record of %s: copy of %s: bad log id or a bound below the horizon", tables.ErrInvalid, h.Table, c.Node)
		}
		if len(c.Acks) != len(h.Copies)-1 {
			return fmt.Errorf("%w: horizon record of %s: copy of %s has %d acknowledgements for %d other copies", tables.ErrInvalid, h.Table, c.Node, len(c.Acks), len(h.Copies)-1)
		}
	}
	for _, c := range h.Copies {
		for n := range c.Acks {
			if !seen[n] || n == c.Node {
				return fmt.Errorf("%w: horizon record of %s: copy of %s: acknowledgement by %q, not another counted copy", tables.ErrInvalid, h.Table, c.Node, n)
			}
		}
	}
	return nil
}

// Counted returns the copy of node counted in the horizon.
func (h Horizon) Counted(node string) (CountedCopy, bool) {
	for _, c := range h.Copies {
		if c.Node == node {
			return c, true
		}
	}
	return CountedCopy{}, false
}

// CopyReport is what one copy says of itself for the horizon (over the
// status protocol).
type CopyReport struct {
	Node       string
	LogID      string
	Floor      uint64
	Rebuilding bool
	Draining   bool
	Failed     string
	Acks       map[string]AckReport // subscriber -> how far it acknowledged this copy's log
}

// AckReport is how far a subscriber acknowledged a copy's log, and the
// bound that gives (tables.AckBound).
type AckReport struct {
	Offset uint64
	Bound  uint64
	Behind string
	AtMS   int64
}

// NextHorizon decides a table's next horizon from the reports of its
// holders (every node that must hold it and has not been forgotten), the
// current horizon prev (the zero Horizon if none) and limit (now minus the table's grace, as an HLC).
// It returns the horizon and the copies counted, or what blocks it. The
// horizon never goes down; it is at most limit. Why it is not higher is
// said in limitedBy.
func NextHorizon(holders []string, reports map[string]CopyReport, prevH Horizon, limit uint64) (h Horizon, limitedBy string, blocked []string) {
	prev := prevH.HLC
	if len(holders) == 0 {
		return Horizon{}, "", []string{"no node holds the table"}
	}
	for _, n := range holders {
		r, ok := reports[n]
		switch {
		case !ok:
			blocked = append(blocked, n+" has not reported its copy (unreachable since this node started, or it has none yet)")
		case r.Draining:
			blocked = append(blocked, n+" is handing its copy off")
		case r.Failed != "":
			blocked = append(blocked, n+"'s copy failed: "+r.Failed)
		case r.Rebuilding:
			blocked = append(blocked, n+" is rebuilding its copy (waiting for a snapshot from a copy at the horizon)")
		case r.Floor < prev && !counted(prevH, n):
			// A copy counted in the current horizon checks, when it sees
			// the next one, that it is not behind what it was counted with
			// (FloorAction); one that was not must first be rebuilt.
			blocked = append(blocked, fmt.Sprintf("%s was not counted in the current horizon and has not applied it yet", n))
		}
	}
	if len(blocked) > 0 {
		return Horizon{}, "", blocked
	}
	hlc, limitedBy := limit, "the tombstone grace"
	for _, y := range holders {
		r := reports[y]
		c := CountedCopy{Node: y, LogID: r.LogID, Bound: ^uint64(0), Acks: map[string]uint64{}}
		for _, s := range holders {
			if s == y {
				continue
			}
			a, ok := r.Acks[s]
			switch {
			case !ok:
				blocked = append(blocked, fmt.Sprintf("%s has not acknowledged %s's log", s, y))
				continue
			case a.Behind != "":
				blocked = append(blocked, fmt.Sprintf("%s has not acknowledged %s's log %s: %s", s, y, since(a.AtMS), a.Behind))
				continue
			}
			c.Acks[s] = a.Offset
			if a.Bound < c.Bound {
				c.Bound = a.Bound
			}
			if a.Bound < hlc {
				hlc = a.Bound
				limitedBy = fmt.Sprintf("%s has acknowledged %s's log up to offset %d %s", s, y, a.Offset, since(a.AtMS))
			}
		}
		if len(holders) == 1 { // a copy alone: what it writes from now on
			c.Bound = limit
		}
		h.Copies = append(h.Copies, c)
	}
	if len(blocked) > 0 {
		return Horizon{}, "", blocked
	}
	if hlc <= prev {
		return Horizon{}, limitedBy, nil
	}
	h.HLC = hlc
	for i := range h.Copies {
		h.Copies[i].Bound = max(h.Copies[i].Bound, hlc)
	}
	return h, limitedBy, nil
}

func counted(h Horizon, node string) bool {
	_, ok := h.Counted(node)
	return ok
}

func since(ms int64) string {
	if ms <= 0 {
		return ""
	}
	return "(last at " + time.UnixMilli(ms).UTC().Format(time.RFC3339) + ")"
}

// FloorStep is what a copy does with a horizon record.
type FloorStep int

// The floor steps.
const (
	FloorKeep    FloorStep = iota // the floor is at the horizon already
	FloorPurge                    // counted and still in sync: raise the floor and purge
	FloorRebuild                  // not counted, or behind what it was counted with: rebuild
)

func (s FloorStep) String() string { return [...]string{"keep", "purge", "rebuild"}[s] }

// FloorAction decides what a copy of node self does with horizon h, given
// its floor, whether it is rebuilding and its cursors in the other copies'
// logs: purge only if it was counted and its cursors are not behind the
// acknowledgements it was counted with (a copy restored from an old backup
// has older cursors); otherwise rebuild. The reason says why.
func FloorAction(h Horizon, self string, floor uint64, rebuilding bool, cursors map[string]tables.Cursor) (FloorStep, string) {
	if h.HLC <= floor {
		return FloorKeep, ""
	}
	if rebuilding {
		return FloorRebuild, "the copy is still rebuilding"
	}
	if _, ok := h.Counted(self); !ok {
		return FloorRebuild, "the copy was not counted in the horizon (it was away, or is new)"
	}
	var behind []string
	for _, o := range h.Copies {
		if o.Node == self {
			continue
		}
		want := o.Acks[self]
		cur, ok := cursors[o.Node]
		switch {
		case !ok:
			behind = append(behind, fmt.Sprintf("no cursor in %s's log", o.Node))
		case cur.LogID != o.LogID:
			behind = append(behind, fmt.Sprintf("its cursor is in another log of %s (%s, counted with %s)", o.Node, cur.LogID, o.LogID))
		case cur.Offset < want:
			behind = append(behind, fmt.Sprintf("its cursor in %s's log is at %d, behind the %d it had acknowledged (restored from an older state?)", o.Node, cur.Offset, want))
		}
	}
	if len(behind) > 0 {
		slices.Sort(behind)
		return FloorRebuild, strings.Join(behind, "; ")
	}
	return FloorPurge, ""
}
