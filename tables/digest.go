package tables

// Buckets is the number of key-hash buckets a digest is kept in, so that two
// copies can find which parts of the key space differ.
const Buckets = 256

// Digest is an order-independent fingerprint of a copy's records (tombstones
// included): the XOR of a 64-bit hash of (key, version, value) per key, kept
// per bucket of the key's hash. Adding and removing a record is O(1); two
// copies holding the same records have equal digests whatever the order in
// which they got them.
type Digest [Buckets]uint64

// Sum folds the buckets into one value.
func (d *Digest) Sum() uint64 {
	var s uint64
	for _, b := range d {
		s ^= b
	}
	return s
}

// toggle adds a record's hash if absent, or removes it if present. rec is the
// view encoding of the record (version, flags and value).
func (d *Digest) toggle(key, rec string) {
	d[Bucket([]byte(key[len(userKeyPrefix):]))] ^= recordHash(key, rec)
}

// recordHash is a record's contribution to the digest.
func recordHash(viewKey, rec string) uint64 { return mix(fnv64(fnv64(offset64, viewKey), rec)) }

// Bucket is the digest bucket of a user key: the low 8 bits of its hash.
func Bucket(key []byte) int { return int(Leaf(key) % Buckets) }

// Leaf refines buckets for repair: the low 16 bits of the key's hash, so
// each bucket has 256 leaves (Leaf(k)%256 == Bucket(k)).
func Leaf(key []byte) int { return int(HashKey(key) & 0xffff) }

// HashKey is the 64-bit hash of a key that places it in a bucket and leaf;
// repair names keys by it.
func HashKey(key []byte) uint64 { return mix(fnv64(offset64, string(key))) }

const (
	offset64 = 14695981039346656037
	prime64  = 1099511628211
)

func fnv64(h uint64, s string) uint64 {
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime64
	}
	// Separate consecutive fields so ("ab","c") and ("a","bc") differ.
	h ^= uint64(len(s))
	h *= prime64
	return h
}

// mix is a 64-bit finaliser (from splitmix64) that spreads FNV's weak low bits.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
