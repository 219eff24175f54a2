package integration

import (
	"strings"
	"testing"
	"time"
)

// Hand-made histories for the nemesis checker: each must pass, or fail with
// (at least) a violation of the rule named.

func nms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

// nput is an acknowledged put of value on node, sent at start ms and
// acknowledged at end ms with version hlc@node.
func nput(node, key, value string, start, end int, hlc uint64) nemWrite {
	return nemWrite{Node: node, Key: key, Value: value, Start: nms(start), End: nms(end),
		Outcome: nemAcked, Version: nemVersion{hlc, node}}
}

// ndel is an acknowledged delete.
func ndel(node, key string, start, end int, hlc uint64) nemWrite {
	return nemWrite{Node: node, Del: true, Key: key, Start: nms(start), End: nms(end),
		Outcome: nemAcked, Version: nemVersion{hlc, node}}
}

// nunknown turns an acknowledged write into one whose outcome is unknown.
func nunknown(w nemWrite) nemWrite {
	w.Outcome, w.Version, w.Err = nemUnknown, nemVersion{}, "timeout"
	return w
}

// nread is a read on node that found value at hlc@origin.
func nread(node, key string, start, end int, value string, hlc uint64, origin string) nemRead {
	return nemRead{Node: node, Key: key, Start: nms(start), End: nms(end), Found: true,
		Value: value, Version: nemVersion{hlc, origin}}
}

// nabsent is a read on node that found key absent.
func nabsent(node, key string, start, end int) nemRead {
	return nemRead{Node: node, Key: key, Start: nms(start), End: nms(end)}
}

// nrec is a final record.
func nrec(value string, hlc uint64, origin string) nemRecord {
	return nemRecord{value, nemVersion{hlc, origin}}
}

// nsame is the final state of nodes a, b and c all holding recs.
func nsame(recs map[string]nemRecord) nemFinal {
	f := nemFinal{}
	for _, n := range []string{"a", "b", "c"} {
		f[n] = map[string]nemRecord{}
		for k, r := range recs {
			f[n][k] = r
		}
	}
	return f
}

func TestNemesisChecker(t *testing.T) {
	type recs = map[string]nemRecord
	for _, tc := range []struct {
		name   string
		writes []nemWrite
		reads  []nemRead
		final  nemFinal
		rule   string // "" = must pass
	}{
		{name: "empty history, empty tables", final: nsame(recs{})},
		{
			name:   "the greatest acknowledged put wins",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 5, 15, 200)},
			final:  nsame(recs{"k": nrec("v2", 200, "b")}),
		},
		{
			name:   "a later put with a smaller version loses, and that is not a loss",
			writes: []nemWrite{nput("b", "k", "v2", 0, 10, 200), nput("a", "k", "v1", 20, 30, 100)},
			final:  nsame(recs{"k": nrec("v2", 200, "b")}),
		},
		{
			name:   "an acknowledged put replaced by an older version is lost",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 5, 15, 200)},
			final:  nsame(recs{"k": nrec("v1", 100, "a")}),
			rule:   "lost",
		},
		{
			name:   "an acknowledged put missing with no delete is lost",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100)},
			final:  nsame(recs{}),
			rule:   "lost",
		},
		{
			name:   "an acknowledged delete as the greatest version: absent",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), ndel("b", "k", 20, 30, 150)},
			final:  nsame(recs{}),
		},
		{
			name:   "an acknowledged delete overwritten by an older put is lost",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), ndel("b", "k", 20, 30, 150)},
			final:  nsame(recs{"k": nrec("v1", 100, "a")}),
			rule:   "lost",
		},
		{
			name:   "a delete with a smaller version does not remove a newer put",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 200), ndel("b", "k", 20, 30, 150)},
			final:  nsame(recs{"k": nrec("v1", 200, "a")}),
		},
		{
			name:   "an unacknowledged put that really applied, with a greater version, may win",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nunknown(nput("b", "k", "v2", 20, 30, 0))},
			final:  nsame(recs{"k": nrec("v2", 300, "b")}),
		},
		{
			name:   "an unacknowledged put may also be missing",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nunknown(nput("b", "k", "v2", 20, 30, 0)), nunknown(nput("c", "j", "v3", 20, 30, 0))},
			final:  nsame(recs{"k": nrec("v1", 100, "a")}),
		},
		{
			name:   "an unacknowledged put is not a way to lose a newer acknowledged one",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 500), nunknown(nput("b", "k", "v2", 20, 30, 0))},
			final:  nsame(recs{"k": nrec("v2", 300, "b")}),
			rule:   "lost",
		},
		{
			name:   "an unacknowledged delete may explain an absence",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nunknown(ndel("b", "k", 20, 30, 0))},
			final:  nsame(recs{}),
		},
		{
			name:   "a delete answered not found explains nothing",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), {Node: "b", Del: true, Key: "k", Start: nms(20), End: nms(30), Outcome: nemNoop}},
			final:  nsame(recs{}),
			rule:   "lost",
		},
		{
			name:   "a delete that never reached a node explains nothing",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), {Node: "b", Del: true, Key: "k", Start: nms(20), End: nms(30), Outcome: nemFailed}},
			final:  nsame(recs{}),
			rule:   "lost",
		},
		{
			name:   "a value never written",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100)},
			final:  nsame(recs{"k": nrec("v1", 100, "a"), "x": nrec("junk", 150, "a")}),
			rule:   "phantom",
		},
		{
			name:   "a value written to another key",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("a", "j", "v2", 0, 10, 101)},
			final:  nsame(recs{"k": nrec("v1", 100, "a"), "j": nrec("v1", 100, "a")}),
			rule:   "phantom",
		},
		{
			name:   "an acknowledged value with another version than acknowledged",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100)},
			final:  nsame(recs{"k": nrec("v1", 120, "a")}),
			rule:   "phantom",
		},
		{
			name:   "an unacknowledged value with an origin it was not sent to",
			writes: []nemWrite{nunknown(nput("a", "k", "v1", 0, 10, 0))},
			final:  nsame(recs{"k": nrec("v1", 120, "b")}),
			rule:   "phantom",
		},
		{
			name:   "copies that differ",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 5, 15, 200)},
			final: nemFinal{
				"a": {"k": nrec("v2", 200, "b")},
				"b": {"k": nrec("v2", 200, "b")},
				"c": {"k": nrec("v1", 100, "a")},
			},
			rule: "converged",
		},
		{
			name:   "a node missing a key the others hold",
			writes: []nemWrite{nunknown(nput("a", "k", "v1", 0, 10, 0))},
			final:  nemFinal{"a": {"k": nrec("v1", 100, "a")}, "b": {"k": nrec("v1", 100, "a")}, "c": {}},
			rule:   "converged",
		},
		{
			name:   "two acknowledged writes with one version",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("a", "j", "v2", 20, 30, 100)},
			final:  nsame(recs{"k": nrec("v1", 100, "a"), "j": nrec("v2", 100, "a")}),
			rule:   "version",
		},
		{
			name: "an acknowledged version naming another origin",
			writes: []nemWrite{{Node: "a", Key: "k", Value: "v1", Start: nms(0), End: nms(10),
				Outcome: nemAcked, Version: nemVersion{100, "b"}}},
			final: nsame(recs{"k": nrec("v1", 100, "b")}),
			rule:  "version",
		},
		{
			name:   "the clock of one origin went back (after a restart, say)",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 200), nput("a", "j", "v2", 20, 30, 150)},
			final:  nsame(recs{"k": nrec("v1", 200, "a"), "j": nrec("v2", 150, "a")}),
			rule:   "version",
		},
		{
			name:   "concurrent writes on one origin may be stamped in either order",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 200), nput("a", "j", "v2", 5, 15, 150)},
			final:  nsame(recs{"k": nrec("v1", 200, "a"), "j": nrec("v2", 150, "a")}),
		},
		{
			name:   "reads that only go forward",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 20, 30, 200)},
			reads: []nemRead{
				nabsent("c", "k", 0, 1), nread("c", "k", 12, 13, "v1", 100, "a"),
				nread("c", "k", 14, 15, "v1", 100, "a"), nread("c", "k", 40, 41, "v2", 200, "b"),
			},
			final: nsame(recs{"k": nrec("v2", 200, "b")}),
		},
		{
			name:   "a read that goes back on one node",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 20, 30, 200)},
			reads:  []nemRead{nread("c", "k", 40, 41, "v2", 200, "b"), nread("c", "k", 50, 51, "v1", 100, "a")},
			final:  nsame(recs{"k": nrec("v2", 200, "b")}),
			rule:   "monotonic",
		},
		{
			name:   "a read that goes back across a restart of the node (kill -9 keeps what it showed)",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 20, 30, 200)},
			reads: []nemRead{
				{Node: "c", Incarnation: 0, Key: "k", Start: nms(40), End: nms(41), Found: true, Value: "v2", Version: nemVersion{200, "b"}},
				{Node: "c", Incarnation: 1, Key: "k", Start: nms(90), End: nms(91), Found: true, Value: "v1", Version: nemVersion{100, "a"}},
			},
			final: nsame(recs{"k": nrec("v2", 200, "b")}),
			rule:  "monotonic",
		},
		{
			name:   "different nodes may be at different points",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 20, 30, 200)},
			reads:  []nemRead{nread("b", "k", 40, 41, "v2", 200, "b"), nread("c", "k", 50, 51, "v1", 100, "a")},
			final:  nsame(recs{"k": nrec("v2", 200, "b")}),
		},
		{
			name:   "overlapping reads on one node may be seen in either order",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nput("b", "k", "v2", 20, 30, 200)},
			reads:  []nemRead{nread("c", "k", 40, 60, "v2", 200, "b"), nread("c", "k", 45, 61, "v1", 100, "a")},
			final:  nsame(recs{"k": nrec("v2", 200, "b")}),
		},
		{
			name:   "absent after a version, with a newer delete",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), ndel("b", "k", 20, 30, 200)},
			reads:  []nemRead{nread("c", "k", 12, 13, "v1", 100, "a"), nabsent("c", "k", 40, 41)},
			final:  nsame(recs{}),
		},
		{
			name:   "absent after a version, with no delete that could be newer",
			writes: []nemWrite{ndel("b", "k", 0, 5, 50), nput("a", "k", "v1", 10, 20, 100), nput("a", "k", "v2", 30, 40, 300)},
			reads:  []nemRead{nread("c", "k", 22, 23, "v1", 100, "a"), nabsent("c", "k", 24, 25)},
			final:  nsame(recs{"k": nrec("v2", 300, "a")}),
			rule:   "monotonic",
		},
		{
			name:   "a deleted version that comes back",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100), nunknown(ndel("b", "k", 20, 30, 0))},
			reads: []nemRead{
				nread("c", "k", 12, 13, "v1", 100, "a"), nabsent("c", "k", 40, 41),
				nread("c", "k", 50, 51, "v1", 100, "a"),
			},
			final: nsame(recs{"k": nrec("v1", 100, "a")}),
			rule:  "monotonic",
		},
		{
			name:   "a read of a value never written",
			writes: []nemWrite{nput("a", "k", "v1", 0, 10, 100)},
			reads:  []nemRead{nread("c", "k", 12, 13, "v9", 100, "a")},
			final:  nsame(recs{"k": nrec("v1", 100, "a")}),
			rule:   "phantom",
		},
		{
			name:   "a read of a put sent after the read ended",
			writes: []nemWrite{nput("a", "k", "v1", 50, 60, 100)},
			reads:  []nemRead{nread("c", "k", 12, 13, "v1", 100, "a")},
			final:  nsame(recs{"k": nrec("v1", 100, "a")}),
			rule:   "causal",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := nemCheck(nemHistory{Writes: tc.writes, Reads: tc.reads}, tc.final)
			switch {
			case tc.rule == "" && !v.ok():
				t.Fatalf("want no violation, got:\n%s", &v)
			case tc.rule != "" && v.ok():
				t.Fatalf("want a violation of %s, got none", tc.rule)
			case tc.rule != "":
				found := false
				for _, s := range v.Violations {
					found = found || strings.HasPrefix(s, tc.rule+": ")
				}
				if !found {
					t.Fatalf("want a violation of %s, got others:\n%s", tc.rule, &v)
				}
				t.Logf("%s", &v)
			}
		})
	}
}

// The counts the summary reports.
func TestNemesisCheckerCounts(t *testing.T) {
	v := nemCheck(nemHistory{
		Writes: []nemWrite{
			nput("a", "k", "v1", 0, 10, 100), ndel("b", "k", 20, 30, 200), nunknown(nput("c", "j", "v2", 0, 10, 0)),
			{Node: "a", Del: true, Key: "z", Outcome: nemNoop},
			{Node: "b", Key: "z", Value: "v3", Outcome: nemFailed},
		},
		Reads: []nemRead{nabsent("a", "k", 40, 41)},
	}, nsame(map[string]nemRecord{"j": nrec("v2", 300, "c")}))
	if !v.ok() || v.Acked != 2 || v.AckedPuts != 1 || v.AckedDels != 1 || v.Unknown != 1 || v.Noop != 1 || v.Failed != 1 || v.Reads != 1 || v.Keys != 1 || v.Lost != 0 {
		t.Fatalf("%+v", v)
	}
}
