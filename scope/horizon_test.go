package scope

import (
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/tables"
)

// hzAcks builds a copy's acknowledgements: subscriber -> offset, bound.
func hzAcks(kv ...any) map[string]AckReport {
	out := map[string]AckReport{}
	for i := 0; i+2 < len(kv)+1; i += 3 {
		out[kv[i].(string)] = AckReport{Offset: uint64(kv[i+1].(int)), Bound: uint64(kv[i+2].(int))}
	}
	return out
}

func TestNextHorizon(t *testing.T) {
	three := []string{"a", "b", "c"}
	full := map[string]CopyReport{
		"a": {Node: "a", LogID: "la", Acks: hzAcks("b", 10, 500, "c", 10, 400)},
		"b": {Node: "b", LogID: "lb", Acks: hzAcks("a", 7, 600, "c", 7, 600)},
		"c": {Node: "c", LogID: "lc", Acks: hzAcks("a", 3, 700, "b", 3, 650)},
	}
	with := func(node string, f func(*CopyReport)) map[string]CopyReport {
		out := map[string]CopyReport{}
		for k, v := range full {
			v.Acks = hzAcks()
			for s, a := range full[k].Acks {
				v.Acks[s] = a
			}
			out[k] = v
		}
		r := out[node]
		f(&r)
		out[node] = r
		return out
	}
	atFloor := func(f uint64) map[string]CopyReport {
		out := map[string]CopyReport{}
		for k, v := range full {
			v.Floor = f
			out[k] = v
		}
		return out
	}
	cases := []struct {
		name      string
		holders   []string
		reports   map[string]CopyReport
		prev      Horizon
		limit     uint64
		want      uint64
		blocked   string // a substring of the blockers
		limitedBy string
	}{
		{name: "the smallest bound", holders: three, reports: full, limit: 1000, want: 400, limitedBy: "c has acknowledged a's log up to offset 10"},
		{name: "the grace", holders: three, reports: full, limit: 300, want: 300, limitedBy: "grace"},
		{name: "never down", holders: three, reports: atFloor(450), prev: Horizon{HLC: 450}, limit: 1000, want: 0, limitedBy: "c has acknowledged a's log"},
		{name: "a holder not reported", holders: []string{"a", "b", "c", "d"}, reports: full, limit: 1000, blocked: "d has not reported"},
		{name: "a missing acknowledgement", holders: three, reports: with("a", func(r *CopyReport) { delete(r.Acks, "c") }), limit: 1000, blocked: "c has not acknowledged a's log"},
		{name: "an acknowledgement behind the log", holders: three, reports: with("b", func(r *CopyReport) { r.Acks["a"] = AckReport{Behind: "behind"} }), limit: 1000, blocked: "a has not acknowledged b's log"},
		{name: "rebuilding", holders: three, reports: with("c", func(r *CopyReport) { r.Rebuilding = true }), limit: 1000, blocked: "c is rebuilding"},
		{name: "floor behind the current horizon, not counted in it", holders: three, reports: with("b", func(r *CopyReport) { r.Floor = 100 }), prev: Horizon{HLC: 200, Copies: []CountedCopy{{Node: "a"}, {Node: "c"}}}, limit: 1000, blocked: "b was not counted in the current horizon"},
		{name: "floor behind the current horizon, counted in it (down, or not yet applied)", holders: three, reports: full, prev: Horizon{HLC: 200, Copies: []CountedCopy{{Node: "a"}, {Node: "b"}, {Node: "c"}}}, limit: 1000, want: 400},
		{name: "draining", holders: three, reports: with("b", func(r *CopyReport) { r.Draining = true }), limit: 1000, blocked: "handing its copy off"},
		{name: "failed", holders: three, reports: with("b", func(r *CopyReport) { r.Failed = "disk full" }), limit: 1000, blocked: "disk full"},
		{name: "a forgotten holder is not asked", holders: []string{"a", "b"}, reports: with("a", func(r *CopyReport) { delete(r.Acks, "c") }), limit: 1000, want: 500},
		{name: "a local table", holders: []string{"a"}, reports: map[string]CopyReport{"a": {Node: "a", LogID: "la"}}, limit: 900, want: 900},
		{name: "no holder", holders: nil, limit: 900, blocked: "no node"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, limitedBy, blocked := NextHorizon(c.holders, c.reports, c.prev, c.limit)
			if c.blocked != "" {
				if !strings.Contains(strings.Join(blocked, "; "), c.blocked) || h.HLC != 0 {
					t.Fatalf("blocked %q (horizon %d), want %q", blocked, h.HLC, c.blocked)
				}
				return
			}
			if len(blocked) > 0 || h.HLC != c.want {
				t.Fatalf("horizon %d blocked %q, want %d", h.HLC, blocked, c.want)
			}
			if !strings.Contains(limitedBy, c.limitedBy) {
				t.Fatalf("limited by %q, want %q", limitedBy, c.limitedBy)
			}
			if h.HLC == 0 {
				return
			}
			h.Table, h.By = "0123456789abcdef-a", "a"
			if err := h.Validate(); err != nil {
				t.Fatalf("the record it makes does not validate: %v", err)
			}
			if len(h.Copies) != len(c.holders) {
				t.Fatalf("counted %d copies, want %d", len(h.Copies), len(c.holders))
			}
		})
	}
}

func TestFloorAction(t *testing.T) {
	h := Horizon{Table: "0123456789abcdef-a", HLC: 500, By: "a", Copies: []CountedCopy{
		{Node: "a", LogID: "la", Bound: 600, Acks: map[string]uint64{"b": 10}},
		{Node: "b", LogID: "lb", Bound: 600, Acks: map[string]uint64{"a": 7}},
	}}
	cur := func(log string, off uint64) map[string]tables.Cursor {
		return map[string]tables.Cursor{"a": {LogID: log, Offset: off}}
	}
	cases := []struct {
		name       string
		self       string
		floor      uint64
		rebuilding bool
		cursors    map[string]tables.Cursor
		want       FloorStep
		why        string
	}{
		{"in sync", "b", 0, false, cur("la", 10), FloorPurge, ""},
		{"ahead", "b", 100, false, cur("la", 40), FloorPurge, ""},
		{"at the horizon", "b", 500, false, nil, FloorKeep, ""},
		{"past it", "b", 900, true, nil, FloorKeep, ""},
		{"restored from a backup", "b", 0, false, cur("la", 4), FloorRebuild, "behind the 10"},
		{"another log", "b", 0, false, cur("lx", 99), FloorRebuild, "another log"},
		{"no cursor", "b", 0, false, nil, FloorRebuild, "no cursor"},
		{"not counted", "c", 0, false, cur("la", 99), FloorRebuild, "not counted"},
		{"rebuilding", "b", 100, true, cur("la", 99), FloorRebuild, "still rebuilding"},
	}
	for _, c := range cases {
		got, why := FloorAction(h, c.self, c.floor, c.rebuilding, c.cursors)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: %v %q, want %v %q", c.name, got, why, c.want, c.why)
		}
	}
}

func TestHorizonValidate(t *testing.T) {
	good := Horizon{Table: "0123456789abcdef-a", HLC: 5, By: "a", Copies: []CountedCopy{
		{Node: "a", LogID: "la", Bound: 5, Acks: map[string]uint64{"b": 1}},
		{Node: "b", LogID: "lb", Bound: 9, Acks: map[string]uint64{"a": 1}},
	}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := map[string]func(h *Horizon){
		"table id":      func(h *Horizon) { h.Table = "../x" },
		"zero":          func(h *Horizon) { h.HLC = 0 },
		"by":            func(h *Horizon) { h.By = "A/B" },
		"no copies":     func(h *Horizon) { h.Copies = nil },
		"node":          func(h *Horizon) { h.Copies[0].Node = "" },
		"twice":         func(h *Horizon) { h.Copies[1].Node = "a" },
		"bound below":   func(h *Horizon) { h.Copies[0].Bound = 4 },
		"log id":        func(h *Horizon) { h.Copies[0].LogID = strings.Repeat("x", 65) },
		"ack by other":  func(h *Horizon) { h.Copies[0].Acks = map[string]uint64{"z": 1} },
		"ack by itself": func(h *Horizon) { h.Copies[0].Acks = map[string]uint64{"a": 1} },
		"acks missing":  func(h *Horizon) { h.Copies[0].Acks = nil },
	}
	for name, f := range bad {
		h := good
		h.Copies = []CountedCopy{good.Copies[0], good.Copies[1]}
		f(&h)
		if err := h.Validate(); err == nil {
			t.Errorf("%s: validated", name)
		}
	}
}

func TestGrace(t *testing.T) {
	if (TableInfo{}).Grace() != 24*time.Hour || (TableInfo{TombstoneGraceMS: 1500}).Grace() != 1500*time.Millisecond {
		t.Fatal("Grace")
	}
	for _, d := range []time.Duration{0, 999 * time.Millisecond, MaxTombstoneGrace + time.Hour, -time.Second} {
		if CheckGrace(d) == nil {
			t.Errorf("CheckGrace(%s) accepted", d)
		}
	}
	info := TableInfo{Name: "t", ID: "0123456789abcdef-a", Home: "a", Scope: Scope{All: true}, TombstoneGraceMS: 1 << 62}
	if info.Validate() == nil {
		t.Error("a huge grace validated")
	}
}
