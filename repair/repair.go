package repair

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Mesh is what repair needs of the mesh: the digests, key hashes and
// records of other holders' copies, and LWW merges into them.
type Mesh interface {
	Members() []string
	RemoteBuckets(ctx context.Context, node string, info scope.TableInfo) (BucketDigests, error)
	RemoteLeaves(ctx context.Context, node string, info scope.TableInfo, buckets []int) (map[int]*[256]uint64, error)
	RemoteHashes(ctx context.Context, node string, info scope.TableInfo, leaves []int) ([]tables.KeyHash, error)
	RemoteFetch(ctx context.Context, node string, info scope.TableInfo, keys []uint64) ([]tables.Record, error)
	RemoteApply(ctx context.Context, node string, info scope.TableInfo, recs []tables.Record) (int, error)
}

// Moved is what a repair moved into one node's copy.
type Moved struct {
	Node    string  `json:"node"`
	Buckets int     `json:"buckets"` // buckets that differed from the source
	Keys    int     `json:"keys"`    // entries it adopted (dry run: differing keys it would be sent)
	Bytes   int     `json:"bytes"`   // bytes that crossed the network to find and move them (digests, hashes, records)
	Seconds float64 `json:"seconds"`
}

// Report is the outcome of a repair.
type Report struct {
	Table       string   `json:"table"`
	DryRun      bool     `json:"dry_run"`
	Source      string   `json:"source"` // the holder with the highest offset
	Holders     []string `json:"holders"`
	Unreachable []string `json:"unreachable"`
	Rounds      int      `json:"rounds"`
	Moved       []Moved  `json:"moved"`
	InSync      bool     `json:"in_sync"` // every reachable holder's digest is equal at the end
}

// maxRounds bounds a repair while writes keep changing the copies.
const maxRounds = 3

// DiffBuckets lists the buckets whose digests differ.
func DiffBuckets(a, b [tables.Buckets]uint64) []int {
	var out []int
	for i := range a {
		if a[i] != b[i] {
			out = append(out, i)
		}
	}
	return out
}

// Run repairs a table from this node, which must hold it: it compares the
// bucket digests of every reachable holder with the holder that has the
// highest offset (the source), sends the source's records of every differing
// bucket to the holder and that holder's records back to the source, each
// merged by last-write-wins (so no write anywhere is lost and no copy is
// replaced wholesale), and repeats until every digest is equal (at most
// maxRounds rounds). A dry run only reports the differing buckets and what
// would be sent.
func Run(ctx context.Context, mesh Mesh, st *store.Store, table string, dryRun bool, progress func(string)) (Report, error) {
	info, err := st.Info(table)
	if err != nil {
		return Report{}, err
	}
	local, err := st.Table(table)
	if err != nil {
		return Report{}, fmt.Errorf("run the repair on a node that holds %s: %w", table, err)
	}
	self := st.Node()
	ep := endpoints{mesh: mesh, local: local, self: self, info: info}
	rep := Report{Table: table, DryRun: dryRun, Moved: []Moved{}, Unreachable: []string{}}
	moved := map[string]*Moved{}
	for rep.Rounds = 1; ; rep.Rounds++ {
		digests := map[string]BucketDigests{}
		rep.Holders, rep.Unreachable = nil, []string{}
		for _, node := range nodes(mesh, self) {
			if !scope.Holds(info, node) {
				continue
			}
			bd, err := ep.buckets(ctx, node)
			if err != nil {
				rep.Unreachable = append(rep.Unreachable, node)
				continue
			}
			digests[node] = bd
			rep.Holders = append(rep.Holders, node)
		}
		rep.Source = source(digests)
		src := digests[rep.Source]
		rep.InSync = true
		for _, h := range rep.Holders {
			if DiffBuckets(src.Buckets, digests[h].Buckets) != nil {
				rep.InSync = false
			}
		}
		if rep.InSync || rep.Rounds > maxRounds {
			break
		}
		for _, h := range rep.Holders {
			if h == rep.Source {
				continue
			}
			diff := DiffBuckets(src.Buckets, digests[h].Buckets)
			if len(diff) == 0 {
				continue
			}
			if progress != nil {
				progress(fmt.Sprintf("round %d: %s and %s differ in %d buckets", rep.Rounds, rep.Source, h, len(diff)))
			}
			if err := ep.exchange(ctx, rep.Source, h, diff, dryRun, moved); err != nil {
				return rep, err
			}
		}
		if dryRun {
			break
		}
	}
	for _, n := range sortedKeys(moved) {
		rep.Moved = append(rep.Moved, *moved[n])
	}
	return rep, nil
}

// source is the holder with the highest offset (ties: the first by name).
func source(d map[string]BucketDigests) string {
	best := ""
	for _, n := range sortedKeys(d) {
		if best == "" || d[n].Offset > d[best].Offset {
			best = n
		}
	}
	return best
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func nodes(mesh Mesh, self string) []string {
	if mesh == nil {
		return []string{self}
	}
	return mesh.Members()
}

// endpoints reaches a holder's copy: this node's directly, others' through
// the mesh.
type endpoints struct {
	mesh  Mesh
	local *tables.Table
	self  string
	info  scope.TableInfo
}

func (e endpoints) buckets(ctx context.Context, node string) (BucketDigests, error) {
	if node == e.self {
		st := e.local.Stats()
		return BucketDigests{Offset: st.Applied, Keys: st.Keys, Buckets: st.Buckets}, nil
	}
	if e.mesh == nil {
		return BucketDigests{}, fmt.Errorf("%s: not in a mesh", node)
	}
	return e.mesh.RemoteBuckets(ctx, node, e.info)
}

func (e endpoints) leaves(ctx context.Context, node string, buckets []int) (map[int]*[256]uint64, error) {
	if node == e.self {
		return e.local.LeafDigests(buckets)
	}
	return e.mesh.RemoteLeaves(ctx, node, e.info, buckets)
}

func (e endpoints) hashes(ctx context.Context, node string, leaves []int) ([]tables.KeyHash, error) {
	if node == e.self {
		return e.local.LeafHashes(leaves)
	}
	return e.mesh.RemoteHashes(ctx, node, e.info, leaves)
}

func (e endpoints) fetch(ctx context.Context, node string, keys []uint64) ([]tables.Record, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	if node == e.self {
		return e.local.RecordsByKeyHash(keys)
	}
	return e.mesh.RemoteFetch(ctx, node, e.info, keys)
}

func (e endpoints) apply(ctx context.Context, node string, recs []tables.Record) (int, error) {
	if len(recs) == 0 {
		return 0, nil
	}
	if node == e.self {
		entries := make([]wal.Entry, len(recs))
		for i, r := range recs {
			entries[i] = r.Entry()
		}
		n, err := e.local.Apply(ctx, entries)
		if tables.OnlyRefused(err) { // refused records are skipped (and logged)
			err = nil
		}
		return n, err
	}
	return e.mesh.RemoteApply(ctx, node, e.info, recs)
}

// exchange narrows the differing buckets of a and b down to leaves, then
// to keys, and sends each side the other's records of those keys. It counts
// the bytes that cross the network (this node's own copy costs none).
func (e endpoints) exchange(ctx context.Context, a, b string, buckets []int, dryRun bool, moved map[string]*Moved) error {
	start := time.Now()
	wire := func(node string, n int) int {
		if node == e.self {
			return 0
		}
		return n
	}
	la, err := e.leaves(ctx, a, buckets)
	if err != nil {
		return fmt.Errorf("leaf digests of %s: %w", a, err)
	}
	lb, err := e.leaves(ctx, b, buckets)
	if err != nil {
		return fmt.Errorf("leaf digests of %s: %w", b, err)
	}
	leafBytes := len(buckets) * 256 * 8
	leaves := DiffLeaves(la, lb)
	ha, err := e.hashes(ctx, a, leaves)
	if err != nil {
		return fmt.Errorf("key hashes of %s: %w", a, err)
	}
	hb, err := e.hashes(ctx, b, leaves)
	if err != nil {
		return fmt.Errorf("key hashes of %s: %w", b, err)
	}
	finding := map[string]int{a: wire(a, leafBytes+16*len(ha)), b: wire(b, leafBytes+16*len(hb))}
	toB, toA := DiffKeys(ha, hb)
	for _, dir := range []struct {
		from, to string
		keys     []uint64
	}{{a, b, toB}, {b, a, toA}} {
		m := moved[dir.to]
		if m == nil {
			m = &Moved{Node: dir.to}
			moved[dir.to] = m
		}
		m.Buckets = max(m.Buckets, len(buckets))
		m.Bytes += finding[dir.from]
		if dryRun {
			m.Keys += len(dir.keys)
			continue
		}
		recs, err := e.fetch(ctx, dir.from, dir.keys)
		if err != nil {
			return fmt.Errorf("fetch from %s: %w", dir.from, err)
		}
		m.Bytes += wire(dir.from, 21*len(dir.keys)) // the request: key hashes as JSON numbers
		adopted, err := e.apply(ctx, dir.to, recs)
		if err != nil {
			return fmt.Errorf("apply on %s: %w", dir.to, err)
		}
		m.Keys += adopted
		m.Bytes += wire(dir.from, recordBytes(recs)) + wire(dir.to, recordBytes(recs))
	}
	for _, n := range []string{a, b} {
		moved[n].Seconds += time.Since(start).Seconds() / 2
	}
	return nil
}

// DiffLeaves lists the leaves (Leaf values) whose digests differ.
func DiffLeaves(a, b map[int]*[256]uint64) []int {
	var out []int
	for bucket, da := range a {
		db := b[bucket]
		for i := range da {
			if db == nil || da[i] != db[i] {
				out = append(out, i*tables.Buckets+bucket)
			}
		}
	}
	slices.Sort(out)
	return out
}

// DiffKeys compares two sides' key hashes: the keys a has that b lacks or
// holds differently go to b, and the other way round.
func DiffKeys(a, b []tables.KeyHash) (toB, toA []uint64) {
	hb := make(map[uint64]uint64, len(b))
	for _, kh := range b {
		hb[kh.Key] = kh.Hash
	}
	ha := make(map[uint64]uint64, len(a))
	for _, kh := range a {
		ha[kh.Key] = kh.Hash
		if h, ok := hb[kh.Key]; !ok || h != kh.Hash {
			toB = append(toB, kh.Key)
		}
	}
	for _, kh := range b {
		if h, ok := ha[kh.Key]; !ok || h != kh.Hash {
			toA = append(toA, kh.Key)
		}
	}
	return toB, toA
}

func recordBytes(recs []tables.Record) int {
	n := 0
	for _, r := range recs {
		n += len(r.Key) + len(r.Value) + 12 + len(r.Version.Origin)
	}
	return n
}
