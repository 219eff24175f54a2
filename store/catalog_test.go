package store

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// A table created concurrently on two nodes under one name: both catalog
// records meet on every node and last-write-wins picks the same one
// everywhere, whatever the order; the node opens that table's copy.
func TestConcurrentCreateConvergesByLWW(t *testing.T) {
	rec := func(home, id string, hlc uint64) wal.Entry {
		b, _ := json.Marshal(scope.TableInfo{Name: "t", ID: id, Scope: scope.Scope{All: true}, Home: home, Created: time.Unix(1, 0)})
		return wal.Entry{Op: wal.OpPut, Key: catalogKey("t"), Value: b, Version: wal.Version{HLC: hlc, Origin: home}}
	}
	fromA, fromB := rec("a", "id-a", 100), rec("b", "id-b", 100) // same hlc: the origin decides
	for _, order := range [][]wal.Entry{{fromA, fromB}, {fromB, fromA}} {
		s, err := Open(Options{Dir: t.TempDir(), Node: "c", Table: tables.Options{NoSync: true}})
		if err != nil {
			t.Fatal(err)
		}
		meta, _ := s.Table(scope.MetaTable)
		for _, e := range order {
			if _, err := meta.Apply(context.Background(), []wal.Entry{e}); err != nil {
				t.Fatal(err)
			}
			if err := s.Reconcile(); err != nil {
				t.Fatal(err)
			}
		}
		info, err := s.Info("t")
		if err != nil || info.ID != "id-b" || info.Home != "b" {
			t.Fatalf("order %s first: catalog says %+v %v, want b's table", order[0].Version.Origin, info, err)
		}
		held := s.HeldInfo()
		found := false
		for _, h := range held {
			found = found || (h.Name == "t" && h.ID == "id-b")
		}
		if !found {
			t.Fatalf("order %s first: the copy of b's table is not open: %+v", order[0].Version.Origin, held)
		}
		s.Close()
	}
}
