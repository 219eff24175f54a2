package health

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/tables"
)

func TestDecide(t *testing.T) {
	caught := []Lag{{"cortex_meta", 0}, {"fruit", 0}}
	for _, c := range []struct {
		name   string
		in     Input
		ok     bool
		latch  bool
		reason string
	}{
		{"standalone", Input{}, true, true, "standalone"},
		{"first node of a mesh, no seeds", Input{Mesh: true}, true, true, "no peers known"},
		{"seeds, none reached yet", Input{Mesh: true, ExpectPeers: true, Since: 5 * time.Second}, false, false, "no peer reached yet"},
		{"seeds, none reached in 30 s", Input{Mesh: true, ExpectPeers: true, Since: NoPeerWait}, true, true, "serving its own data"},
		{"reached once, none reachable now", Input{Mesh: true, ExpectPeers: true, PeerReached: true, Since: time.Second}, false, false, "no peer reachable"},
		{"reached once, none reachable for 30 s", Input{Mesh: true, ExpectPeers: true, PeerReached: true, Since: time.Minute}, true, true, "serving its own data"},
		{"bootstrapping a copy", Input{Mesh: true, ExpectPeers: true, Answered: 1, PeerReached: true, Since: time.Second,
			Lags: []Lag{{"cortex_meta", 0}, {"big", 50_000}}}, false, false, "catching up: table big is 50000 entries behind"},
		{"bootstrapping past 30 s is still not ready", Input{Mesh: true, ExpectPeers: true, Answered: 2, PeerReached: true, Since: time.Hour,
			Lags: []Lag{{"a", 3}, {"b", 7}, {"c", 0}}}, false, false, "table b is 7 entries behind (and 1 more tables)"},
		{"caught up", Input{Mesh: true, ExpectPeers: true, Answered: 2, PeerReached: true, Since: time.Second, Lags: caught}, true, true, "caught up"},
		{"caught up with no tables to compare", Input{Mesh: true, ExpectPeers: true, Answered: 1, PeerReached: true}, true, true, "caught up"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, latch := Decide(c.in)
			if s.OK != c.ok || latch != c.latch || !strings.Contains(s.Reason, c.reason) {
				t.Fatalf("Decide = %+v, latch %v; want ok %v, latch %v, reason containing %q", s, latch, c.ok, c.latch, c.reason)
			}
			if latch && !s.OK {
				t.Fatal("latched a verdict that is not ready")
			}
		})
	}
}

func TestHealthy(t *testing.T) {
	for _, c := range []struct {
		name   string
		broken []Broken
		ok     bool
		reason string
	}{
		{"every table open", nil, true, "every held table is open"},
		{"one broken", []Broken{{"fruit", "open: corrupt"}}, false, "table fruit did not open: open: corrupt"},
		{"two broken, in name order", []Broken{{"z", "e1"}, {"a", "e2"}}, false, "table a did not open: e2; table z did not open: e1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := Healthy(c.broken)
			if s.OK != c.ok || !strings.Contains(s.Reason, c.reason) {
				t.Fatalf("Healthy = %+v, want ok %v, reason containing %q", s, c.ok, c.reason)
			}
		})
	}
}

func TestSelfLags(t *testing.T) {
	now := time.Now()
	cur := func(logID string, off uint64) map[string]tables.Cursor {
		return map[string]tables.Cursor{"b": {LogID: logID, Offset: off}}
	}
	for _, c := range []struct {
		name   string
		local  []repair.CopyStatus
		remote map[string][]repair.CopyStatus
		want   []Lag
	}{
		{"caught up with b", []repair.CopyStatus{{Table: "t", ID: "1", LogID: "A", Offset: 5, Cursors: cur("B", 9)}},
			map[string][]repair.CopyStatus{"b": {{Table: "t", ID: "1", LogID: "B", Offset: 9}}}, []Lag{{"t", 0}}},
		{"behind b", []repair.CopyStatus{{Table: "t", ID: "1", LogID: "A", Offset: 5, Cursors: cur("B", 4)}},
			map[string][]repair.CopyStatus{"b": {{Table: "t", ID: "1", LogID: "B", Offset: 9}}}, []Lag{{"t", 5}}},
		{"no cursor yet: bootstrapping", []repair.CopyStatus{{Table: "t", ID: "1", LogID: "A"}},
			map[string][]repair.CopyStatus{"b": {{Table: "t", ID: "1", LogID: "B", Offset: 1000}}}, []Lag{{"t", 1000}}},
		{"b's copy of another table of the name is not compared", []repair.CopyStatus{{Table: "t", ID: "1", LogID: "A"}},
			map[string][]repair.CopyStatus{"b": {{Table: "t", ID: "2", LogID: "B", Offset: 1000}}}, []Lag{{"t", 0}}},
		{"copies being handed off or broken are left out", []repair.CopyStatus{{Table: "d", ID: "1", LogID: "A", Draining: true}, {Table: "x", ID: "1", Failed: "did not open"}},
			map[string][]repair.CopyStatus{"b": {{Table: "d", ID: "1", LogID: "B", Offset: 3}}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := SelfLags("a", c.local, c.remote, now); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("SelfLags = %v, want %v", got, c.want)
			}
		})
	}
}
