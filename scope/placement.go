// Package scope owns placement: a table's catalog record and its scope, and,
// from the replicated catalog and the mesh, which tables a node holds a copy
// of, which peers it follows for each, and when a copy it no longer needs may
// be dropped. Everything here is a pure
// function over plain data; the store and the mesh node apply the answers.
package scope

import (
	"slices"
)

// Holds reports whether node must hold a copy of a table: every node holds
// the system tables and the tables of scope all; a list scope selects the
// nodes it names (joined or not); a local table lives only on its home.
func Holds(t TableInfo, node string) bool { return t.System() || t.Scope.Includes(node, t.Home) }

// Desired lists, of the given nodes, those that must hold the table (sorted).
func Desired(t TableInfo, nodes []string) []string {
	var out []string
	for _, n := range nodes {
		if Holds(t, n) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Follows reports whether a node holding a table subscribes to peer for it:
// when the peer holds it by scope, or says it still has a copy it is handing
// off (peerDraining lists table ids) and the catalog shows that it held the
// table under the previous scope. A node that never held the table cannot
// make holders adopt what it publishes by announcing a hand-off.
func Follows(t TableInfo, peer string, peerDraining []string) bool {
	if Holds(t, peer) {
		return true
	}
	return slices.Contains(peerDraining, t.ID) && t.Prev != nil && t.Prev.Includes(peer, t.Home)
}

// FromDraining reports whether a change stamped hlc may be taken from a peer
// followed only because it hands off its copy (see Follows): only if it was
// made before the scope change that took the peer out. What the peer writes
// into its copy afterwards it may not pass on.
func FromDraining(t TableInfo, hlc uint64) bool { return t.Prev != nil && hlc <= t.PrevUntil }

// CanDrop decides whether a copy this node no longer holds by scope may be
// removed: only once a node that keeps the table has acknowledged every
// entry of this copy's log (lastOffset), so nothing written here is lost.
// acks are the offsets this copy's subscribers acknowledged, by node name.
// It returns the node that covers the copy, if any.
func CanDrop(t TableInfo, self string, lastOffset uint64, acks map[string]uint64) (string, bool) {
	if Holds(t, self) {
		return "", false
	}
	var names []string
	for n := range acks {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if Holds(t, n) && acks[n] >= lastOffset {
			return n, true
		}
	}
	return "", false
}
