package scope

import (
	"slices"
	"testing"
)

func TestPlanChange(t *testing.T) {
	members := []string{"home", "laptop", "office"}
	table := func(s Scope) TableInfo { return TableInfo{Name: "notes", ID: "1-home", Home: "home", Scope: s} }
	all, local := Scope{All: true}, Scope{Local: true}
	list := func(nodes ...string) Scope { return Scope{Nodes: nodes} }
	for _, tc := range []struct {
		name          string
		current       *TableInfo
		next          Scope
		reachable     []string
		before, after []string
		unknown       []string
		risky         bool
		shown         string
	}{
		{"new table on every node", nil, all, members, nil, members, nil, false, "copies: none -> home, laptop, office"},
		{"new local table", nil, local, []string{"home"}, nil, []string{"home"}, nil, false, ""},
		{"a typo in a new table's scope", nil, list("office", "typo"), members, nil, []string{"office", "typo"}, []string{"typo"}, false, ""},
		{"all to two nodes: fewer copies", ptr(table(all)), list("office", "laptop"), members, members, []string{"laptop", "office"}, nil, true, "copies: home, laptop, office -> laptop, office"},
		{"all to one node", ptr(table(all)), list("office"), members, members, []string{"office"}, nil, true, "copies: home, laptop, office -> office"},
		{"a list to all: more copies", ptr(table(list("home"))), all, members, []string{"home"}, members, nil, false, ""},
		{"moving a copy keeps the count", ptr(table(list("home", "laptop"))), list("home", "office"), members, []string{"home", "laptop"}, []string{"home", "office"}, nil, false, ""},
		{"to a node that is down", ptr(table(list("home"))), list("laptop"), []string{"home", "office"}, []string{"home"}, []string{"laptop"}, nil, true, "copies: home -> laptop"},
		{"a node not joined yet, reachable holders", ptr(table(list("home"))), list("home", "future"), members, []string{"home"}, []string{"future", "home"}, []string{"future"}, false, ""},
		{"local to local", ptr(table(local)), local, members, []string{"home"}, []string{"home"}, nil, false, ""},
		{"nodes named that never joined hold no copy", ptr(table(list("x", "y"))), all, members, nil, members, nil, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := PlanChange(tc.current, table(tc.next), members, tc.reachable)
			if !slices.Equal(c.Before, tc.before) || !slices.Equal(c.After, tc.after) || !slices.Equal(c.Unknown, tc.unknown) {
				t.Fatalf("got %+v, want before %v after %v unknown %v", c, tc.before, tc.after, tc.unknown)
			}
			if risky := c.Risk() != ""; risky != tc.risky {
				t.Fatalf("risk %q, want risky=%v", c.Risk(), tc.risky)
			}
			if tc.shown != "" && c.String() != tc.shown {
				t.Fatalf("shown as %q, want %q", c.String(), tc.shown)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
