package tables

import "github.com/cortex-mesh/cortex/wal"

// Adopt is the last-write-wins rule: an incoming change replaces what a key
// holds only if its version is strictly greater. A key that holds nothing
// adopts anything; an equal version is a duplicate and changes nothing.
func Adopt(incoming wal.Version, current wal.Version, exists bool) bool {
	return !exists || incoming.Compare(current) > 0
}

// AdoptRecord is Adopt with the records' contents, for two changes of a key
// with the same version and different contents (which only a faulty or
// forging node makes): the one whose view encoding hashes greater is kept,
// so that every copy keeps the same one and digests agree. Equal contents
// are a duplicate. curSum is the contentSum of what the key holds; inSum
// computes the incoming change's (called only when the versions are equal).
func AdoptRecord(incoming, current wal.Version, exists bool, inSum func() uint64, curSum uint64) bool {
	if !exists {
		return true
	}
	if c := incoming.Compare(current); c != 0 {
		return c > 0
	}
	return inSum() > curSum
}

// contentSum orders two encodings of one version of a key.
func contentSum(rec string) uint64 { return mix(fnv64(offset64, rec)) }
