package repair

import (
	"slices"
	"testing"

	"github.com/cortex-mesh/cortex/tables"
)

func TestDiffBuckets(t *testing.T) {
	var a, b [tables.Buckets]uint64
	if d := DiffBuckets(a, b); d != nil {
		t.Fatalf("equal digests differ in %v", d)
	}
	b[3], b[200] = 1, 7
	if d := DiffBuckets(a, b); !slices.Equal(d, []int{3, 200}) {
		t.Fatalf("DiffBuckets = %v", d)
	}
}

func TestDiffLeaves(t *testing.T) {
	a := map[int]*[256]uint64{5: {}, 9: {}}
	b := map[int]*[256]uint64{5: {}, 9: {}}
	b[5][2] = 1   // leaf 2*256+5
	a[9][255] = 3 // leaf 255*256+9
	if d := DiffLeaves(a, b); !slices.Equal(d, []int{2*256 + 5, 255*256 + 9}) {
		t.Fatalf("DiffLeaves = %v", d)
	}
	// A side that did not answer for a bucket differs in all its leaves.
	if d := DiffLeaves(map[int]*[256]uint64{1: {}}, nil); len(d) != 256 {
		t.Fatalf("missing side: %d leaves", len(d))
	}
	// Leaf numbering matches tables.Leaf: bucket in the low 8 bits.
	key := []byte("some key")
	if tables.Leaf(key)%tables.Buckets != tables.Bucket(key) {
		t.Fatal("a key's leaf is not in its bucket")
	}
}

func TestDiffKeys(t *testing.T) {
	kh := func(k, h uint64) tables.KeyHash { return tables.KeyHash{Key: k, Hash: h} }
	a := []tables.KeyHash{kh(1, 1), kh(2, 2), kh(3, 3)} // same, changed, only a
	b := []tables.KeyHash{kh(1, 1), kh(2, 9), kh(4, 4)} // same, changed, only b
	toB, toA := DiffKeys(a, b)
	slices.Sort(toB)
	slices.Sort(toA)
	if !slices.Equal(toB, []uint64{2, 3}) || !slices.Equal(toA, []uint64{2, 4}) {
		t.Fatalf("to b %v, to a %v", toB, toA)
	}
}
