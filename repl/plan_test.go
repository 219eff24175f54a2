package repl

import (
	"fmt"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
)

func TestWant(t *testing.T) {
	tbl := func(name, sc string) scope.TableInfo {
		s, _ := scope.ParseScope(sc)
		return scope.TableInfo{Name: name, ID: "id-" + name, Scope: s, Home: "a"}
	}
	moved := tbl("moved", "a,b")
	prev, _ := scope.ParseScope("a,c")
	moved.Prev, moved.PrevUntil = &prev, 5
	held := []scope.TableInfo{{Name: scope.MetaTable, ID: "system", Scope: scope.Scope{All: true}}, tbl("all", "all"), tbl("ab", "a,b"), moved}
	peers := []Peer{{Name: "b"}, {Name: "c", Draining: []string{"id-moved"}}, {Name: "d", Draining: []string{"id-ab"}}}
	for _, tc := range []struct {
		name        string
		systemReady bool
		want        []string
	}{
		{"system tables first", false, []string{"b/cortex_meta", "c/cortex_meta", "d/cortex_meta"}},
		{"then every table, from holders and hand-offs the catalog shows", true, []string{
			"b/ab", "b/all", "b/cortex_meta", "b/moved", "c/all", "c/cortex_meta", "c/moved", "d/all", "d/cortex_meta"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range Want(held, peers, tc.systemReady) {
				got = append(got, s.Peer+"/"+s.Table.Name)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("Want = %v\nwant   %v", got, tc.want)
			}
		})
	}
}

func TestNeedsSnapshot(t *testing.T) {
	for _, tc := range []struct {
		name        string
		logID       string
		from        uint64
		first, last uint64
		want        bool
	}{
		{"in the log", "L", 5, 1, 10, false},
		{"right after the end (caught up)", "L", 11, 1, 10, false},
		{"no cursor", "", 1, 1, 10, true},
		{"another log", "M", 5, 1, 10, true},
		{"truncated", "L", 3, 5, 10, true},
		{"past the end (a log restored from an older backup)", "L", 12, 1, 10, true},
		{"offset zero", "L", 0, 1, 10, true},
	} {
		if got := NeedsSnapshot(tc.logID, tc.from, "L", tc.first, tc.last); got != tc.want {
			t.Errorf("%s: NeedsSnapshot = %v", tc.name, got)
		}
	}
}
