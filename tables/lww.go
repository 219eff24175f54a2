package tables

import "github.com/cortex-mesh/cortex/wal"

// Adopt is the last-write-wins rule: an incoming change replaces what a key
// holds only if its version is strictly greater. A key that holds nothing
// adopts anything; an equal version is a duplicate and changes nothing.
func Adopt(incoming wal.Version, current wal.Version, exists bool) bool {
	return !exists || incoming.Compare(current) > 0
}
