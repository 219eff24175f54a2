package tables

import (
	"context"
	"fmt"
	"testing"
)

// The leaf digests of a bucket fold to its bucket digest; the key hashes of
// a leaf fold to the leaf digest; Records returns tombstones too.
func TestLeavesAndKeyHashesMatchTheDigest(t *testing.T) {
	tb, err := Open(t.TempDir(), Options{Name: "t", Node: "a", NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	ctx := context.Background()
	for i := range 2000 {
		tb.Put(ctx, []byte(fmt.Sprintf("k%04d", i)), []byte("v"))
	}
	tb.Delete(ctx, []byte("k0007"))
	st := tb.Stats()
	all := make([]int, Buckets)
	for i := range all {
		all[i] = i
	}
	leaves, err := tb.LeafDigests(all)
	if err != nil {
		t.Fatal(err)
	}
	for b := range Buckets {
		var x uint64
		for _, d := range leaves[b] {
			x ^= d
		}
		if x != st.Buckets[b] {
			t.Fatalf("bucket %d: leaves fold to %x, digest %x", b, x, st.Buckets[b])
		}
	}
	leaf := Leaf([]byte("k0007"))
	hashes, err := tb.LeafHashes([]int{leaf})
	if err != nil {
		t.Fatal(err)
	}
	var x uint64
	found := false
	for _, kh := range hashes {
		if int(kh.Key&0xffff) != leaf {
			t.Fatalf("key hash %x is not in leaf %d", kh.Key, leaf)
		}
		found = found || kh.Key == HashKey([]byte("k0007"))
		x ^= kh.Hash
	}
	if !found || x != leaves[leaf%Buckets][leaf/Buckets] {
		t.Fatalf("leaf %d: found tombstone %v, hashes fold to %x, leaf digest %x", leaf, found, x, leaves[leaf%Buckets][leaf/Buckets])
	}
	recs, err := tb.RecordsByKeyHash([]uint64{HashKey([]byte("k0007")), HashKey([]byte("k0001")), HashKey([]byte("missing"))})
	if err != nil || len(recs) != 2 || string(recs[0].Key) != "k0001" || recs[0].Deleted || !recs[1].Deleted {
		t.Fatalf("RecordsByKeyHash: %+v %v", recs, err)
	}
	if _, err := tb.LeafDigests([]int{Buckets}); err == nil {
		t.Fatal("bucket out of range accepted")
	}
}
