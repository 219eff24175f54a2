package scope

import (
	"slices"
	"testing"
)

func info(name, home string, scope string) TableInfo {
	sc, err := ParseScope(scope)
	if err != nil {
		panic(err)
	}
	return TableInfo{Name: name, ID: "id-" + name, Scope: sc, Home: home}
}

func TestHolds(t *testing.T) {
	for _, tc := range []struct {
		name string
		t    TableInfo
		node string
		want bool
	}{
		{"all on any node", info("t", "home", "all"), "laptop", true},
		{"all on a node not joined yet", info("t", "home", "all"), "newcomer", true},
		{"local on its home", info("t", "home", "local"), "home", true},
		{"local elsewhere", info("t", "home", "local"), "office", false},
		{"list names the node", info("t", "home", "home,office"), "office", true},
		{"list names a node not joined yet", info("t", "home", "office,future"), "future", true},
		{"list does not name the node", info("t", "home", "home,office"), "laptop", false},
		{"list without its home", info("t", "home", "office,laptop"), "home", false},
		{"system table everywhere", TableInfo{Name: MetaTable, ID: "system", Scope: Scope{All: true}}, "x", true},
		{"system table even if its record says otherwise", TableInfo{Name: ACLsTable, Scope: Scope{Local: true}, Home: "a"}, "b", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Holds(tc.t, tc.node); got != tc.want {
				t.Fatalf("Holds = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDesired(t *testing.T) {
	nodes := []string{"laptop", "home", "office", "home"}
	for _, tc := range []struct {
		t    TableInfo
		want []string
	}{
		{info("t", "home", "all"), []string{"home", "laptop", "office"}},
		{info("t", "home", "local"), []string{"home"}},
		{info("t", "home", "office,laptop"), []string{"laptop", "office"}},
		{info("t", "home", "future"), nil},
	} {
		if got := Desired(tc.t, nodes); !slices.Equal(got, tc.want) {
			t.Errorf("Desired(%s) = %v, want %v", tc.t.Scope, got, tc.want)
		}
	}
}

// Scope changes as the spec describes them, seen from each node.
func TestScopeChanges(t *testing.T) {
	nodes := []string{"home", "office", "laptop"}
	for _, tc := range []struct {
		name          string
		before, after string
		added, gone   []string
	}{
		{"local -> all creates copies everywhere", "local", "all", []string{"laptop", "office"}, nil},
		{"[home,office] -> [office,laptop]", "home,office", "office,laptop", []string{"laptop"}, []string{"home"}},
		{"all -> local keeps only the home copy", "all", "local", nil, []string{"laptop", "office"}},
		{"node removed from a list", "home,office,laptop", "home,office", nil, []string{"laptop"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, a := info("t", "home", tc.before), info("t", "home", tc.after)
			var added, gone []string
			for _, n := range nodes {
				switch {
				case !Holds(b, n) && Holds(a, n):
					added = append(added, n)
				case Holds(b, n) && !Holds(a, n):
					gone = append(gone, n)
				}
			}
			slices.Sort(added)
			slices.Sort(gone)
			if !slices.Equal(added, tc.added) || !slices.Equal(gone, tc.gone) {
				t.Fatalf("added %v gone %v, want %v %v", added, gone, tc.added, tc.gone)
			}
		})
	}
}

func TestFollows(t *testing.T) {
	moved := info("t", "home", "home,office")
	prev, _ := ParseScope("home,laptop")
	moved.Prev = &prev // laptop was in the scope before the last change
	for _, tc := range []struct {
		name     string
		t        TableInfo
		peer     string
		draining []string
		want     bool
	}{
		{"a holder by scope", moved, "office", nil, true},
		{"outside the scope", moved, "laptop", nil, false},
		{"held it before, hands it off", moved, "laptop", []string{"other", "id-t"}, true},
		{"hands off another table of the name", moved, "laptop", []string{"t"}, false},
		{"never held it, says it hands it off", moved, "evil", []string{"id-t"}, false},
		{"no previous scope", info("t", "home", "home,office"), "laptop", []string{"id-t"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Follows(tc.t, tc.peer, tc.draining); got != tc.want {
				t.Fatalf("Follows(%s) = %v, want %v", tc.peer, got, tc.want)
			}
		})
	}
}

func TestFromDraining(t *testing.T) {
	moved := info("t", "home", "home,office")
	prev, _ := ParseScope("home,laptop")
	moved.Prev, moved.PrevUntil = &prev, 100
	for _, tc := range []struct {
		hlc  uint64
		want bool
	}{{99, true}, {100, true}, {101, false}} {
		if got := FromDraining(moved, tc.hlc); got != tc.want {
			t.Errorf("FromDraining(%d) = %v", tc.hlc, got)
		}
	}
	if FromDraining(info("t", "home", "all"), 1) {
		t.Error("FromDraining without a previous scope")
	}
}

func TestTableIDs(t *testing.T) {
	id := NewTableID("home")
	if home, ok := HomeOf(id); !ok || home != "home" || len(id) != 16+1+4 {
		t.Fatalf("NewTableID = %q: home %q, %v", id, home, ok)
	}
	if id == NewTableID("home") {
		t.Fatal("two ids alike")
	}
	for _, tc := range []struct {
		id   string
		home string
		ok   bool
	}{
		{"0123456789abcdef", "", true}, // an earlier version's
		{"0123456789abcdef-office", "office", true},
		{"0123456789abcdef-", "", false},
		{"0123456789abcde", "", false},
		{"0123456789ABCDEF-home", "", false},
		{"0123456789abcdefx", "", false},
		{"0123456789abcdef-../x", "", false},
		{"/../../../../etc-home", "", false},
		{"0123456789abcdef-Home", "", false},
		{"", "", false},
		{"system", "", false},
	} {
		if home, ok := HomeOf(tc.id); home != tc.home || ok != tc.ok {
			t.Errorf("HomeOf(%q) = %q, %v; want %q, %v", tc.id, home, ok, tc.home, tc.ok)
		}
	}
}

func TestValidateTableInfo(t *testing.T) {
	all := Scope{All: true}
	good := TableInfo{Name: "notes", ID: "0123456789abcdef-home", Scope: all, Home: "home"}
	for _, tc := range []struct {
		name string
		edit func(*TableInfo)
		ok   bool
	}{
		{"good", func(*TableInfo) {}, true},
		{"an earlier version's id", func(ti *TableInfo) { ti.ID = "0123456789abcdef" }, true},
		{"with a previous scope", func(ti *TableInfo) { ti.Prev, ti.PrevUntil = &Scope{Local: true}, 7 }, true},
		{"a previous scope without its end", func(ti *TableInfo) { ti.Prev = &Scope{Local: true} }, false},
		{"system name", func(ti *TableInfo) { ti.Name = "cortex_acls" }, false},
		{"bad name", func(ti *TableInfo) { ti.Name = "../x" }, false},
		{"path in the id", func(ti *TableInfo) { ti.ID = "/../../.." }, false},
		{"id of another home", func(ti *TableInfo) { ti.ID = "0123456789abcdef-evil" }, false},
		{"no home", func(ti *TableInfo) { ti.Home = "" }, false},
		{"bad home", func(ti *TableInfo) { ti.Home = "a/b"; ti.ID = "0123456789abcdef" }, false},
		{"zero scope", func(ti *TableInfo) { ti.Scope = Scope{} }, false},
		{"all and local", func(ti *TableInfo) { ti.Scope = Scope{All: true, Local: true} }, false},
		{"zero previous scope", func(ti *TableInfo) { ti.Prev, ti.PrevUntil = &Scope{}, 7 }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ti := good
			tc.edit(&ti)
			if err := ti.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate(%+v) = %v, want ok %v", ti, err, tc.ok)
			}
		})
	}
}

func TestCanDrop(t *testing.T) {
	tb := info("t", "home", "office,laptop") // home was removed from the list
	for _, tc := range []struct {
		name  string
		self  string
		last  uint64
		acks  map[string]uint64
		by    string
		allow bool
	}{
		{"still in scope: never", "office", 10, map[string]uint64{"laptop": 10}, "", false},
		{"no acknowledgement yet", "home", 10, nil, "", false},
		{"keeper behind", "home", 10, map[string]uint64{"office": 9}, "", false},
		{"keeper caught up", "home", 10, map[string]uint64{"office": 9, "laptop": 10}, "laptop", true},
		{"ahead counts too", "home", 10, map[string]uint64{"office": 12}, "office", true},
		{"only a non-keeper caught up", "home", 10, map[string]uint64{"other": 10}, "", false},
		{"empty copy", "home", 0, map[string]uint64{"office": 0}, "office", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			by, ok := CanDrop(tb, tc.self, tc.last, tc.acks)
			if ok != tc.allow || by != tc.by {
				t.Fatalf("CanDrop = %q %v, want %q %v", by, ok, tc.by, tc.allow)
			}
		})
	}
}
