package backup

import (
	"errors"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

func TestPlan(t *testing.T) {
	list := func(nodes ...string) scope.Scope { s, _ := scope.ScopeOf(nodes); return s }
	sec := func(name string, sc scope.Scope) TableMeta { m := meta(name, 1); m.Scope = sc; return m }
	local := scope.Scope{Local: true}
	cases := []struct {
		name string
		in   PlanInput
		want []Step // To, Create, Scope compared
		err  error
		says string
	}{
		{name: "new tables keep the file's scope",
			in:   PlanInput{Sections: []TableMeta{sec("a", scope.Scope{All: true}), sec("b", list("home", "restored"))}, Node: "restored"},
			want: []Step{{To: "a", Create: true, Scope: scope.Scope{All: true}}, {To: "b", Create: true, Scope: list("home", "restored")}}},
		{name: "an existing table is merged",
			in:   PlanInput{Sections: []TableMeta{sec("a", local)}, Node: "n", Present: map[string]Presence{"a": Held}},
			want: []Step{{To: "a"}}},
		{name: "--as renames",
			in:   PlanInput{Sections: []TableMeta{sec("a", local)}, As: "a_old", Node: "n", Present: map[string]Presence{"a": Held}},
			want: []Step{{To: "a_old", Create: true, Scope: local}}},
		{name: "--scope overrides",
			in:   PlanInput{Sections: []TableMeta{sec("a", list("home"))}, Scope: &local, Node: "n"},
			want: []Step{{To: "a", Create: true, Scope: local}}},
		{name: "a scope without this node",
			in:  PlanInput{Sections: []TableMeta{sec("a", list("home", "office"))}, Node: "n"},
			err: tables.ErrInvalid, says: "leaves this node (n) without a copy"},
		{name: "--as with two tables",
			in:  PlanInput{Sections: []TableMeta{sec("a", local), sec("b", local)}, As: "c", Node: "n"},
			err: tables.ErrInvalid, says: "--as names one table"},
		{name: "--as a system table",
			in:  PlanInput{Sections: []TableMeta{sec("a", local)}, As: "cortex_acls", Node: "n"},
			err: tables.ErrInvalid, says: "reserved"},
		{name: "held elsewhere",
			in:  PlanInput{Sections: []TableMeta{sec("a", local)}, Node: "n", Present: map[string]Presence{"a": NotHeld}},
			err: ErrNotHeld, says: "holds no copy"},
		{name: "a section named as a system table",
			in:  PlanInput{Sections: []TableMeta{sec("cortex_meta", local)}, Node: "n", Present: map[string]Presence{"cortex_meta": Held}},
			err: tables.ErrInvalid, says: "reserved"},
		{name: "import into a missing table",
			in:  PlanInput{Sections: []TableMeta{sec("a", local)}, Node: "n", MustExist: true},
			err: ErrMissing, says: "cortex table create a"},
		{name: "nothing chosen", in: PlanInput{Node: "n"}, err: tables.ErrInvalid, says: "nothing to restore"},
	}
	for _, tc := range cases {
		got, err := Plan(tc.in)
		if tc.err != nil {
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("%s: %v, want %v saying %q", tc.name, err, tc.err, tc.says)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("%s: %+v, %v", tc.name, got, err)
			continue
		}
		for i, w := range tc.want {
			g := got[i]
			if g.To != w.To || g.Create != w.Create || g.Scope.String() != w.Scope.String() || g.From.Name != tc.in.Sections[i].Name {
				t.Errorf("%s: step %d = %+v, want %+v", tc.name, i, g, w)
			}
		}
	}
}
