package store

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

const (
	inc1 = "0123456789abcdef0123456789abcdef"
	inc2 = "fedcba9876543210fedcba9876543210"
)

func TestValidateIncarnation(t *testing.T) {
	if err := ValidateIncarnation(NewIncarnation()); err != nil {
		t.Fatal(err)
	}
	if NewIncarnation() == NewIncarnation() {
		t.Fatal("two incarnations alike")
	}
	for _, bad := range []string{"", "x", strings.ToUpper(inc1), inc1 + "0", inc1[:31] + "g", "../" + inc1[3:]} {
		if err := ValidateIncarnation(bad); !errors.Is(err, tables.ErrInvalid) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// Who is forgotten, and which peers are refused, from the forgot records
// and the membership record.
func TestIsForgottenAndRefusedIncarnation(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	f1 := Forgot{Node: "c", Incarnation: inc1, By: "boss", At: at}
	fu := Forgot{Node: "c", By: "boss", At: at.Add(time.Hour)}
	rec := func(inc string) Member { return Member{Node: "c", Incarnation: inc} }
	for _, tc := range []struct {
		name      string
		forgot    []Forgot
		m         Member
		hasMember bool
		forgotten bool
	}{
		{"never forgotten", nil, rec(inc1), true, false},
		{"never forgotten, no record", nil, Member{}, false, false},
		{"forgotten, record deleted", []Forgot{f1}, Member{}, false, true},
		{"forgotten, its old record came back", []Forgot{f1}, rec(inc1), true, true},
		{"forgotten, a record without incarnation", []Forgot{f1}, rec(""), true, true},
		{"wiped and rejoined", []Forgot{f1}, rec(inc2), true, false},
		{"forgotten twice, the second rejoined", []Forgot{f1, {Node: "c", Incarnation: inc2, By: "boss", At: at}}, rec(inc2), true, true},
		{"forgotten with an unknown incarnation, rejoined", []Forgot{fu}, rec(inc2), true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsForgotten(tc.forgot, tc.m, tc.hasMember); got != tc.forgotten {
				t.Fatalf("IsForgotten = %v, want %v", got, tc.forgotten)
			}
		})
	}
	for _, tc := range []struct {
		name      string
		forgot    []Forgot
		presented string
		refused   bool
		by        Forgot
	}{
		{"not forgotten", nil, inc1, false, Forgot{}},
		{"not forgotten, no incarnation", nil, "", false, Forgot{}},
		{"the forgotten incarnation", []Forgot{f1}, inc1, true, f1},
		{"a new incarnation", []Forgot{f1}, inc2, false, Forgot{}},
		{"no incarnation (an earlier version)", []Forgot{f1}, "", true, f1},
		{"unknown forgotten, no incarnation: the newest record", []Forgot{f1, fu}, "", true, fu},
		{"unknown forgotten, an incarnation", []Forgot{fu}, inc1, false, Forgot{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, refused := RefusedIncarnation(tc.forgot, tc.presented)
			if refused != tc.refused || f != tc.by {
				t.Fatalf("RefusedIncarnation = %+v, %v; want %+v, %v", f, refused, tc.by, tc.refused)
			}
		})
	}
	if msg := f1.Message(); !strings.Contains(msg, "node c was forgotten by the mesh at 2030-01-02T03:04:05Z") ||
		!strings.Contains(msg, "wipe its data directory and start it again to rejoin") {
		t.Fatal(msg)
	}
}

func TestPlanForget(t *testing.T) {
	admin := pki.Signer{Name: "boss", Role: pki.RoleAdmin}
	member := pki.Signer{Name: "home", Role: pki.RoleMember}
	c := Member{Node: "c", Incarnation: inc1, LastSeen: 1234}
	list, _ := scope.ParseScope("c,home")
	catalog := []scope.TableInfo{
		{Name: scope.MetaTable, ID: "system", Scope: scope.Scope{All: true}},
		{Name: "everywhere", ID: "0123456789abcdef-boss", Scope: scope.Scope{All: true}, Home: "boss"},
		{Name: "listed", ID: "0123456789abcdef-home", Scope: list, Home: "home"},
		{Name: "homes", ID: "0123456789abcdef-c", Scope: scope.Scope{Local: true}, Home: "c"},
		{Name: "elsewhere", ID: "1123456789abcdef-home", Scope: scope.Scope{Local: true}, Home: "home"},
	}
	for _, tc := range []struct {
		name      string
		signer    pki.Signer
		node      string
		m         Member
		hasMember bool
		connected []string
		want      error
	}{
		{"admin forgets a node that is gone", admin, "c", c, true, []string{"home"}, nil},
		{"a member node", member, "c", c, true, nil, ErrDenied},
		{"itself", admin, "boss", Member{Node: "boss"}, true, nil, tables.ErrInvalid},
		{"unknown name", admin, "nobody", Member{}, false, nil, ErrNoNode},
		{"connected now", admin, "c", c, true, []string{"c"}, tables.ErrInvalid},
		{"bad name", admin, "../c", Member{}, false, nil, tables.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanForget(tc.signer, tc.node, tc.m, tc.hasMember, tc.connected, catalog)
			if tc.want != nil {
				if !errors.Is(err, tc.want) {
					t.Fatalf("PlanForget = %v, want %v", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := ForgetPlan{Node: "c", Incarnation: inc1, LastSeenMS: 1234, Named: []string{"listed"},
				Blocks: []string{"everywhere", "homes", "listed"}, Home: []string{"homes"}}
			if p.Node != want.Node || p.Incarnation != want.Incarnation || p.LastSeenMS != want.LastSeenMS ||
				!slices.Equal(p.Named, want.Named) || !slices.Equal(p.Blocks, want.Blocks) || !slices.Equal(p.Home, want.Home) {
				t.Fatalf("plan %+v, want %+v", p, want)
			}
		})
	}
	// The refusals say what to do.
	_, err := PlanForget(member, "c", c, true, nil, catalog)
	if err == nil || !strings.Contains(err.Error(), "needs an admin node") {
		t.Fatal(err)
	}
	_, err = PlanForget(admin, "c", c, true, []string{"c"}, catalog)
	if err == nil || !strings.Contains(err.Error(), "is connected to this node now") {
		t.Fatal(err)
	}
}

// An admin forgets c: its forgot record and the deletion of its record
// reach a member node, which then leaves c out of the members and refuses
// c's old membership record; a new incarnation of c is a member again.
func TestForgetAcrossStores(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	boss, home := ca.open("boss", pki.RoleAdmin), ca.open("home", pki.RoleMember)
	cID := ca.identity("c", pki.RoleMember)
	record := func(inc string, at time.Time) wal.Entry {
		return signed(t, cID, scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: MemberKey("c"),
			Value:   mustJSON(Member{Node: "c", Addrs: []string{"127.0.0.1:9"}, Incarnation: inc, LastSeen: at.UnixMilli()}),
			Version: wal.Version{HLC: tables.HLC(at.UnixMilli(), 0)}})
	}
	for _, s := range []*Store{boss, home} {
		if err := applyMeta(t, s, record(inc1, time.Now())); err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(s.Members(), "c") {
			t.Fatalf("%s: members %v", s.Node(), s.Members())
		}
	}
	if _, err := home.Forget(ctx, "c", nil, false); !errors.Is(err, ErrDenied) {
		t.Fatalf("a member forgets: %v", err)
	}
	if _, err := boss.Forget(ctx, "c", []string{"c"}, false); err == nil {
		t.Fatal("forgot a connected node")
	}
	if !slices.Contains(boss.Members(), "c") {
		t.Fatal("a refused forget changed something")
	}
	preview, err := boss.Forget(ctx, "c", nil, true)
	if err != nil || preview.Incarnation != inc1 || !preview.At.IsZero() || !slices.Contains(boss.Members(), "c") {
		t.Fatalf("dry run: %+v %v", preview, err)
	}
	p, err := boss.Forget(ctx, "c", nil, false)
	if err != nil || p.By != "boss" || p.At.IsZero() {
		t.Fatalf("forget: %+v %v", p, err)
	}
	if _, err := boss.Forget(ctx, "c", nil, false); !errors.Is(err, ErrNoNode) {
		t.Fatalf("forget again: %v", err)
	}
	if _, err := ship(t, boss, home, scope.MetaTable); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Store{boss, home} {
		if slices.Contains(s.Members(), "c") || !s.IsForgotten("c") {
			t.Fatalf("%s: members %v after the forget", s.Node(), s.Members())
		}
		if f, ok := s.RefusesPeer("c", inc1); !ok || f.By != "boss" {
			t.Fatalf("%s: the old incarnation is not refused", s.Node())
		}
		if _, ok := s.RefusesPeer("c", inc2); ok {
			t.Fatalf("%s: a new incarnation is refused", s.Node())
		}
		list, err := s.Forgotten()
		if err != nil || len(list) != 1 || list[0].Incarnation != inc1 {
			t.Fatalf("%s: forgotten %+v %v", s.Node(), list, err)
		}
	}
	// c's old record, made later than the forget: refused.
	var re *tables.RefusedError
	if err := applyMeta(t, home, record(inc1, time.Now().Add(time.Second))); !errors.As(err, &re) {
		t.Fatalf("the old incarnation's record: %v", err)
	}
	// The wiped node's record: c is back.
	if err := applyMeta(t, home, record(inc2, time.Now().Add(2*time.Second))); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(home.Members(), "c") || home.IsForgotten("c") {
		t.Fatalf("the new incarnation is not a member: %v", home.Members())
	}
	if _, ok := home.RefusesPeer("c", inc1); !ok {
		t.Fatal("the old incarnation is accepted once the new one joined")
	}
}
