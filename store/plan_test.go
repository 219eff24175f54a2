package store

import (
	"fmt"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
)

func TestPlan(t *testing.T) {
	tbl := func(name, sc string) scope.TableInfo {
		s, err := scope.ParseScope(sc)
		if err != nil {
			panic(err)
		}
		return scope.TableInfo{Name: name, ID: "0123456789abcdef-home", Scope: s, Home: "home"}
	}
	copies := func(infos ...scope.TableInfo) map[string]scope.TableInfo {
		m := map[string]scope.TableInfo{}
		for _, i := range infos {
			m[i.Dir()] = i
		}
		return m
	}
	all, mine, theirs := tbl("all", "all"), tbl("mine", "me,home"), tbl("theirs", "home")
	recreated := all
	recreated.ID = "fedcba9876543210-home"
	for _, tc := range []struct {
		name    string
		catalog []scope.TableInfo
		have    Copies
		want    string
	}{
		{"a new node opens what its scope selects", []scope.TableInfo{all, mine, theirs}, Copies{},
			"[open all open mine]"},
		{"held copies stay held", []scope.TableInfo{all, mine}, Copies{Held: copies(all, mine)},
			"[keep all keep mine]"},
		{"a scope change drains the copy and tries the hand-off", []scope.TableInfo{all, theirs}, Copies{Held: copies(all, tbl("theirs", "me"))},
			"[keep all drain theirs hand off theirs]"},
		{"a draining copy hands off until it is gone", []scope.TableInfo{theirs}, Copies{Draining: copies(theirs)},
			"[hand off theirs]"},
		{"selected again: undrain", []scope.TableInfo{mine}, Copies{Draining: copies(tbl("mine", "home"))},
			"[undrain mine]"},
		{"dropped: remove, held or draining", nil, Copies{Held: copies(all), Draining: copies(theirs)},
			"[remove all remove theirs]"},
		{"re-created under the same name: the old copy goes, the new one opens", []scope.TableInfo{recreated}, Copies{Held: copies(all)},
			"[remove all open all]"},
		{"a copy left on disk outside its scope is opened to finish the hand-off", []scope.TableInfo{theirs}, Copies{OnDisk: map[string]bool{theirs.Dir(): true}},
			"[open theirs]"},
		{"not selected and not on disk: nothing", []scope.TableInfo{theirs}, Copies{},
			"[]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, a := range Plan("me", tc.catalog, tc.have) {
				got = append(got, a.Step.String(), a.Info.Name)
			}
			if g := fmt.Sprint(got); g != tc.want {
				t.Fatalf("Plan = %v, want %v", g, tc.want)
			}
		})
	}
}
