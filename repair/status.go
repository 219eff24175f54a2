// Package repair owns the view across copies: sync status (each copy's log
// position, digest and lag, and a verdict per table) and repair (making the
// copies of a table equal again by last-write-wins merge).
package repair

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// The verdicts of a table's status.
const (
	InSync     = "in_sync"     // every node that should hold the table was reached and holds an equal copy, no lag
	Degraded   = "degraded"    // the reachable holders agree, but a node that should hold a copy is unreachable, has none yet, or its copy failed
	CatchingUp = "catching_up" // some reachable holder is behind
	Diverged   = "diverged"    // no lag, yet digests differ: repair needed
	Unknown    = "unknown"     // no holder reachable to tell
)

// Replica is one node's part in a table's status.
type Replica struct {
	Node      string  `json:"node"`
	Desired   bool    `json:"desired"`  // the scope selects this node
	HasCopy   bool    `json:"has_copy"` // it answered with a copy
	Draining  bool    `json:"draining,omitempty"`
	Reachable bool    `json:"reachable"`
	LogID     string  `json:"log_id,omitempty"`
	Offset    uint64  `json:"offset"`
	Keys      int64   `json:"keys"`
	Digest    string  `json:"digest,omitempty"`
	Lag       uint64  `json:"lag"`   // entries of other holders' logs not applied here yet
	LagS      float64 `json:"lag_s"` // seconds since this node last acknowledged what it lags behind
	Error     string  `json:"error,omitempty"`
	// LastContactMS is, for a node not reached, the last time this node was
	// connected to it or a reached holder had an acknowledgement from it,
	// in Unix ms (0: not since this node started).
	LastContactMS int64  `json:"last_contact_ms,omitempty"`
	Failed        string `json:"failed,omitempty"` // writes refused for now, or the copy did not open
	Damage        string `json:"damage,omitempty"` // damage found in its log and what was done
	Tombstones    int64  `json:"tombstones"`
	// Floor is the copy's purge floor (HLC, a decimal string in JSON):
	// tombstones older than it are gone; FloorAt is its wall time.
	Floor      tables.Timestamp `json:"floor,omitempty"`
	FloorAt    string           `json:"floor_at,omitempty"`
	Rebuilding bool             `json:"rebuilding,omitempty"`
}

// PurgeStatus is a table's purge horizon: the one in the catalog, and the
// next one the copies allow now, or what blocks it.
type PurgeStatus struct {
	GraceS float64 `json:"grace_s"`
	// Horizon and Next are HLC timestamps (decimal strings in JSON), with
	// their wall times (RFC 3339, UTC, milliseconds).
	Horizon   tables.Timestamp `json:"horizon"`              // 0: none yet
	HorizonAt string           `json:"horizon_at,omitempty"` // its wall time
	Next      tables.Timestamp `json:"next,omitempty"`       // what the copies allow now
	NextAt    string           `json:"next_at,omitempty"`    // its wall time
	LimitedBy string           `json:"limited_by,omitempty"` // why next is not higher
	Blocked   []string         `json:"blocked,omitempty"`    // what keeps the horizon from moving
}

// TableStatus is the status of one table across the mesh.
type TableStatus struct {
	Table      string       `json:"table"`
	Scope      scope.Scope  `json:"scope"`
	Replicated bool         `json:"replicated"` // false for local tables
	Desired    []string     `json:"desired"`
	Replicas   []Replica    `json:"replicas"`
	State      string       `json:"state"`
	InSync     bool         `json:"in_sync"`
	Note       string       `json:"note,omitempty"` // why the state is unknown, when it is not for want of holders
	Purge      *PurgeStatus `json:"purge,omitempty"`
	// Forgotten are the nodes its list scope names that the mesh forgot
	// (cortex node forget): not expected to hold a copy, not waited for.
	Forgotten []string `json:"forgotten,omitempty"`
}

// Status is `cortex sync status`.
type Status struct {
	Tables []TableStatus `json:"tables"`
}

// Verdict decides a table's state from its replicas: in sync only when
// every node that should hold the table was reached and holds an equal copy
// with no lag and none failed. Copies being handed off are shown but do
// not count: they take no new writes.
func Verdict(replicas []Replica) string {
	var live []Replica
	missing, failed := false, false // a node that should hold a working copy was not reached, has none, or its copy failed
	for _, r := range replicas {
		if r.Desired && (!r.Reachable || !r.HasCopy || r.Failed != "") {
			missing = true
		}
		failed = failed || r.Reachable && r.Failed != ""
		if r.Reachable && r.HasCopy && !r.Draining {
			live = append(live, r)
		}
	}
	if len(live) == 0 && failed {
		return Degraded // known to be unwell, not unknown
	}
	if len(live) == 0 {
		return Unknown
	}
	for _, r := range live {
		if r.Lag > 0 {
			return CatchingUp
		}
	}
	for _, r := range live[1:] {
		if r.Digest != live[0].Digest {
			return Diverged
		}
	}
	if missing {
		return Degraded
	}
	return InSync
}

// Lags computes, for each copy, how many entries of the other copies' logs
// it has not applied (the largest over those copies, from its cursors), and
// for how long (since it last acknowledged to that copy).
func Lags(copies map[string]CopyStatus, now time.Time) map[string]Lag {
	out := map[string]Lag{}
	for r, rc := range copies {
		var lag uint64
		var secs float64
		for h, hc := range copies {
			if h == r || hc.Draining {
				continue
			}
			behind := hc.Offset
			if cur, ok := rc.Cursors[h]; ok && cur.LogID == hc.LogID {
				behind = hc.Offset - min(cur.Offset, hc.Offset)
			}
			if behind == 0 {
				continue
			}
			lag = max(lag, behind)
			for _, s := range hc.Subscribers {
				if s.Node == r && s.LastContactMS > 0 {
					secs = max(secs, now.Sub(time.UnixMilli(s.LastContactMS)).Seconds())
				}
			}
		}
		out[r] = Lag{lag, secs}
	}
	return out
}

// lastContact is the last time any reached copy heard from node (its
// acknowledgements as a subscriber), 0 if none did: what the other holders
// know of a node this one may never have met.
func lastContact(copies map[string]CopyStatus, node string) int64 {
	var last int64
	for _, c := range copies {
		for _, s := range c.Subscribers {
			if s.Node == node {
				last = max(last, s.LastContactMS)
			}
		}
	}
	return last
}

// Lag is how far a copy is behind the other copies.
type Lag struct {
	Entries uint64
	Seconds float64
}

var errNeverJoined = errors.New("has not joined the mesh")

// Querier asks a node for the status of its copies.
type Querier interface {
	QueryStatus(ctx context.Context, node string, tables []string) ([]CopyStatus, error)
	Members() []string
	// LastContact is when this node was last connected to node (zero if
	// never since it started).
	LastContact(node string) time.Time
}

// Gather asks every member (bounded by timeout) for its copies of the named
// tables (all when empty) and builds the status of each table.
func Gather(ctx context.Context, q Querier, stor *store.Store, names []string, timeout time.Duration) (Status, error) {
	catalog, err := stor.Catalog()
	if err != nil {
		return Status{}, err
	}
	members := []string{stor.Node()}
	if q != nil {
		members = q.Members()
	}
	forgotten := stor.ForgottenNodes()
	members = slices.DeleteFunc(slices.Clone(members), func(n string) bool { return slices.Contains(forgotten, n) })
	type answer struct {
		copies map[string]CopyStatus
		err    error
	}
	answers := make(map[string]answer, len(members))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, m := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			qctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			var list []CopyStatus
			var err error
			if q == nil {
				list = LocalStatus(stor, stor.Node(), names)
			} else {
				list, err = q.QueryStatus(qctx, m, names)
			}
			a := answer{copies: map[string]CopyStatus{}, err: err}
			for _, c := range list {
				a.copies[c.Table] = c
			}
			mu.Lock()
			answers[m] = a
			mu.Unlock()
		}()
	}
	wg.Wait()
	now := time.Now()
	st := Status{Tables: []TableStatus{}}
	for _, info := range catalog {
		if len(names) > 0 && !slices.Contains(names, info.Name) {
			continue
		}
		ts := TableStatus{Table: info.Name, Scope: info.Scope, Replicated: !info.Scope.Local, Desired: []string{}}
		if !scope.Holds(info, stor.Node()) && len(names) == 0 {
			continue // all tables: those this node holds, the ones it can judge
		}
		if !scope.Holds(info, stor.Node()) {
			// Peers answer only for the tables the asking node holds.
			ts.Desired, ts.Replicas, ts.State = holders(info, append(slices.Clone(members), info.Scope.Nodes...), forgotten), []Replica{}, Unknown
			ts.Note = "this node does not hold " + info.Name + ": nodes answer only for tables the asking node holds; ask one that holds it"
			st.Tables = append(st.Tables, ts)
			continue
		}
		copies := map[string]CopyStatus{}
		for _, m := range members {
			if c, ok := answers[m].copies[info.Name]; ok && c.ID == info.ID {
				copies[m] = c
			}
		}
		lags := Lags(copies, now)
		nodes := members
		for _, n := range info.Scope.Nodes { // named in the scope, never joined (or forgotten)
			switch {
			case slices.Contains(forgotten, n):
				ts.Forgotten = append(ts.Forgotten, n)
			case !slices.Contains(nodes, n):
				nodes = append(slices.Clip(nodes), n)
				answers[n] = answer{err: errNeverJoined}
			}
		}
		ts.Desired = append(ts.Desired, scope.Desired(info, nodes)...)
		for _, m := range nodes {
			r := Replica{Node: m, Desired: scope.Holds(info, m), Reachable: answers[m].err == nil}
			if err := answers[m].err; err != nil {
				r.Error = err.Error()
			}
			c, ok := copies[m]
			if !ok && !r.Desired {
				continue // neither should nor does hold it
			}
			if ok {
				r.Failed, r.Damage = c.Failed, c.Damage
			}
			if ok && c.LogID != "" {
				r.HasCopy, r.Draining, r.LogID, r.Offset, r.Keys, r.Digest = true, c.Draining, c.LogID, c.Offset, c.Keys, c.Digest
				r.Tombstones, r.Floor, r.Rebuilding = c.Tombstones, tables.Timestamp(c.Floor), c.Rebuilding
				if c.Floor != 0 {
					r.FloorAt = r.Floor.Time()
				}
				r.Lag, r.LagS = lags[m].Entries, lags[m].Seconds
			}
			if !r.Reachable {
				r.LastContactMS = lastContact(copies, m)
				if at := q.LastContact(m); !at.IsZero() {
					r.LastContactMS = max(r.LastContactMS, at.UnixMilli())
				}
			}
			ts.Replicas = append(ts.Replicas, r)
		}
		ts.State = Verdict(ts.Replicas)
		ts.InSync = ts.State == InSync
		if !info.System() {
			ts.Purge = purgeStatus(stor, info, nodes, forgotten, copies, now)
		}
		st.Tables = append(st.Tables, ts)
	}
	return st, nil
}
