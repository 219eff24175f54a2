package repl

import (
	"slices"

	"github.com/cortex-mesh/cortex/scope"
)

// Peer is a ready peer as replication sees it: its name and the tables (by
// id) its membership record says it is handing off.
type Peer struct {
	Name     string
	Draining []string
}

// Sub is one subscription: a table (by its catalog record) followed from a
// peer.
type Sub struct {
	Peer  string
	Table scope.TableInfo
}

// key names a subscription across catalog changes of its table's record.
func (s Sub) key() string { return s.Peer + "\x00" + s.Table.Dir() }

// Want decides which subscriptions should exist: for every table this node
// holds and every ready peer that placement says it follows for it. A node
// that has not yet followed any peer's system tables (systemReady false)
// follows only those, so that identities and ACLs are checked locally from
// the start.
func Want(held []scope.TableInfo, peers []Peer, systemReady bool) []Sub {
	var out []Sub
	for _, info := range held {
		if !info.System() && !systemReady {
			continue
		}
		for _, p := range peers {
			if scope.Follows(info, p.Name, p.Draining) {
				out = append(out, Sub{Peer: p.Name, Table: info})
			}
		}
	}
	slices.SortFunc(out, func(a, b Sub) int {
		if a.key() < b.key() {
			return -1
		} else if a.key() > b.key() {
			return 1
		}
		return 0
	})
	return out
}

// NeedsSnapshot decides how a publisher answers a subscriber's cursor
// (logID, from: the first offset it wants) given its own log (id and the
// offsets it holds): from the log, or with a snapshot first when the cursor
// is of another log, empty, behind what the log still holds, or past its
// end (the log lost entries the subscriber has: a data directory restored
// from a backup).
func NeedsSnapshot(logID string, from uint64, ownID string, first, last uint64) bool {
	return logID != ownID || from == 0 || from < first || from > last+1
}
