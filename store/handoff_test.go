package store_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// A local write that reaches a copy while Reconcile is deleting it (its
// request handler took the table from Store.Table before the scope change
// moved the copy out) is either refused or kept: a copy is never deleted
// with an acknowledged write that no holder has.
func TestHandOffKeepsAWriteThatRacesTheDrop(t *testing.T) {
	ctx := context.Background()
	var (
		tbl     *tables.Table
		raced   bool
		lateErr error
		dropped bool
	)
	st, err := store.Open(store.Options{
		Dir: t.TempDir(), Node: "a", Logger: slog.New(slog.DiscardHandler), Table: tables.Options{NoSync: true},
		CanDrop: func(info scope.TableInfo, self string, last uint64, acks map[string]uint64) (string, bool) {
			if tbl != nil && !raced {
				// The racing write lands between the read of the copy's
				// last offset and the decision.
				raced = true
				_, lateErr = tbl.Put(ctx, []byte("late"), []byte("v"))
			}
			by, ok := scope.CanDrop(info, self, last, acks)
			dropped = dropped || ok
			return by, ok
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ab, _ := scope.ParseScope("a,b")
	info, err := st.CreateTable(ctx, "x", ab)
	if err != nil {
		t.Fatal(err)
	}
	if tbl, err = st.Table("x"); err != nil {
		t.Fatal(err)
	}
	if _, err := tbl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	_, last := tbl.Bounds()
	tbl.Ack("b", last) // b, which keeps x, has every entry so far

	onlyB, _ := scope.ParseScope("b")
	if _, err := st.SetScope(ctx, "x", onlyB); err != nil {
		t.Fatal(err)
	}
	if !raced {
		t.Fatal("CanDrop was not consulted")
	}
	_, stillThere := st.Copy(info)
	if lateErr == nil && !stillThere {
		t.Fatalf("the copy was deleted with an acknowledged write (offset %d) that b never acknowledged (b has up to %d)", last+1, last)
	}
	if stillThere {
		c, _ := st.Copy(info)
		if _, err := c.Get([]byte("late")); lateErr == nil && err != nil {
			t.Fatalf("the kept copy lacks the acknowledged write: %v", err)
		}
		// Once b acknowledged the late write too, the copy goes.
		_, last2 := c.Bounds()
		c.Ack("b", last2)
		if err := st.Reconcile(); err != nil {
			t.Fatal(err)
		}
		if _, ok := st.Copy(info); ok {
			t.Fatal("the copy is kept after b acknowledged all of it")
		}
	}
}
