package repair

import (
	"slices"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

func TestVerdict(t *testing.T) {
	cp := func(node, digest string, lag uint64) Replica {
		return Replica{Node: node, Desired: true, HasCopy: true, Reachable: true, Digest: digest, Lag: lag}
	}
	down := Replica{Node: "c", Desired: true, Reachable: false}
	for _, tc := range []struct {
		name string
		in   []Replica
		want string
	}{
		{"all equal", []Replica{cp("a", "1", 0), cp("b", "1", 0), cp("c", "1", 0)}, InSync},
		{"one lags", []Replica{cp("a", "1", 0), cp("b", "0", 5)}, CatchingUp},
		{"lag wins over different digests", []Replica{cp("a", "1", 0), cp("b", "2", 1)}, CatchingUp},
		{"no lag, digests differ", []Replica{cp("a", "1", 0), cp("b", "2", 0)}, Diverged},
		{"an unreachable holder: degraded, not in sync", []Replica{cp("a", "1", 0), cp("b", "1", 0), down}, Degraded},
		{"only one holder reachable", []Replica{cp("a", "1", 0), down}, Degraded},
		{"a lag among the reachable wins over an unreachable one", []Replica{cp("a", "1", 0), cp("b", "0", 3), down}, CatchingUp},
		{"differing digests among the reachable win over an unreachable one", []Replica{cp("a", "1", 0), cp("b", "2", 0), down}, Diverged},
		{"nothing reachable", []Replica{down}, Unknown},
		{"desired node without a copy yet", []Replica{cp("a", "1", 0), {Node: "b", Desired: true, Reachable: true}}, Degraded},
		{"a copy refusing writes", []Replica{cp("a", "1", 0), {Node: "b", Desired: true, HasCopy: true, Reachable: true, Digest: "1", Failed: "disk full"}}, Degraded},
		{"the only copy did not open", []Replica{{Node: "a", Desired: true, Reachable: true, Failed: "malformed log id"}}, Degraded},
		{"single-node table", []Replica{cp("a", "1", 0)}, InSync},
		{"draining copy does not count", []Replica{cp("a", "1", 0), cp("b", "1", 0), {Node: "x", HasCopy: true, Draining: true, Reachable: true, Digest: "9"}}, InSync},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Verdict(tc.in); got != tc.want {
				t.Fatalf("Verdict = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLags(t *testing.T) {
	now := time.UnixMilli(10_000)
	copies := map[string]CopyStatus{
		"a": {LogID: "la", Offset: 100, Subscribers: []SubscriberStatus{{Node: "b", Acked: 90, LastContactMS: 7_000}}},
		"b": {LogID: "lb", Offset: 50, Cursors: map[string]tables.Cursor{"a": {LogID: "la", Offset: 90}, "c": {LogID: "lc", Offset: 10}}},
		"c": {LogID: "lc", Offset: 10, Cursors: map[string]tables.Cursor{"a": {LogID: "old", Offset: 100}, "b": {LogID: "lb", Offset: 50}}},
	}
	got := Lags(copies, now)
	if got["b"].Entries != 10 || got["b"].Seconds != 3 {
		t.Errorf("b: %+v, want 10 entries, 3 s", got["b"])
	}
	if got["c"].Entries != 100 { // its cursor is in an old log of a: all of a counts
		t.Errorf("c: %+v, want 100", got["c"])
	}
	if got["a"].Entries != 50 { // no cursors at all
		t.Errorf("a: %+v, want 50", got["a"])
	}
}

// The holders a table's horizon counts: the members its scope selects,
// never a node the mesh forgot, even one its list scope names.
func TestHolders(t *testing.T) {
	list, _ := scope.ParseScope("a,c")
	for _, tc := range []struct {
		name      string
		info      scope.TableInfo
		members   []string
		forgotten []string
		want      []string
	}{
		{"all", scope.TableInfo{Scope: scope.Scope{All: true}}, []string{"a", "b", "c"}, nil, []string{"a", "b", "c"}},
		{"all, c forgotten", scope.TableInfo{Scope: scope.Scope{All: true}}, []string{"a", "b", "c"}, []string{"c"}, []string{"a", "b"}},
		{"list naming c, forgotten", scope.TableInfo{Scope: list}, []string{"a", "b", "c"}, []string{"c"}, []string{"a"}},
		{"list naming c, not forgotten", scope.TableInfo{Scope: list}, []string{"a", "b", "c"}, nil, []string{"a", "c"}},
		{"local on a forgotten home", scope.TableInfo{Scope: scope.Scope{Local: true}, Home: "c"}, []string{"a", "c"}, []string{"c"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holders(tc.info, tc.members, tc.forgotten); !slices.Equal(got, tc.want) {
				t.Fatalf("holders = %v, want %v", got, tc.want)
			}
		})
	}
}
