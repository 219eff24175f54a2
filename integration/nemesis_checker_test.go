package integration

// The nemesis checker: a pure function over what the workload recorded (every
// write it sent with its outcome, every read) and the final scans of every
// node, taken once the faults are healed and the copies have converged. It
// knows nothing of processes or networks, so that its rules can be tested on
// hand-made histories (nemesis_checker_unit_test.go).
//
// The rules, each violation reported under its name:
//
//	converged   every node's final scan is identical (keys, values, versions).
//	phantom     every value a node holds or a read returned was written by a
//	            put of that key (values are unique per put), sent to the node
//	            its version names as origin; if that put was acknowledged, with
//	            the very version it was acknowledged with.
//	lost        for every key, the final state is the greatest acknowledged
//	            write (a delete counts as a write: then the key is absent), or
//	            a write with a greater version whose acknowledgement was lost
//	            (its put's value is present, or the key is absent and some
//	            delete of it has an unknown outcome). Anything older is an
//	            acknowledged write that was lost.
//	version     acknowledged versions are unique and name the node that
//	            acknowledged them; on one origin node, a write acknowledged
//	            before another was sent has the smaller version (the clock
//	            never goes back, kill -9 included: the log holds the newest
//	            version it issued).
//	causal      a read never returns a put that was sent after the read ended.
//	monotonic   per node and key, a read that starts after another ended never
//	            sees an older version, across restarts too: the view shows a
//	            write only once it is durable (fsync before apply), so what a
//	            node showed it still holds after kill -9. A read that finds the
//	            key absent after it showed version v needs a delete of the key
//	            that may be newer than v (acknowledged with a greater version,
//	            or of unknown outcome), and a key found again after such an
//	            absence must show a version greater than v, not v again.
//
// A write whose outcome is unknown (timeout, connection lost, node killed or
// stopped mid-request, error while shutting down) may or may not have taken
// effect: the checker accepts both, but never a value that nobody wrote. A
// delete answered "not found" wrote nothing (cortexd checks before writing),
// nor did a call whose connection could not be made (the node was down):
// both are ignored.

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/wal"
)

// nemVersion is a write's version: (hlc, origin), compared as wal.Version.
type nemVersion struct {
	HLC    uint64
	Origin string
}

func (v nemVersion) cmp(w nemVersion) int {
	return wal.Version{HLC: v.HLC, Origin: v.Origin}.Compare(wal.Version{HLC: w.HLC, Origin: w.Origin})
}

func (v nemVersion) String() string { return fmt.Sprintf("%d@%s", v.HLC, v.Origin) }

// nemOutcome is what the workload learnt of a write.
type nemOutcome uint8

const (
	nemAcked   nemOutcome = iota // acknowledged with a version: durable
	nemUnknown                   // no acknowledgement: may or may not be applied
	nemNoop                      // a delete answered "not found": nothing written
	nemFailed                    // never reached cortexd (the connection could not be made)
)

func (o nemOutcome) String() string {
	return [...]string{"acked", "unknown", "noop", "failed"}[o]
}

// nemWrite is one put or delete the workload sent.
type nemWrite struct {
	Client     int
	Node       string // the node it was sent to
	Del        bool
	Key        string
	Value      string // puts: unique across the run
	Start, End time.Duration
	Outcome    nemOutcome
	Version    nemVersion // acked only
	Err        string     // unknown only
}

func (w nemWrite) String() string {
	op := "put " + w.Key + "=" + w.Value
	if w.Del {
		op = "del " + w.Key
	}
	s := fmt.Sprintf("client %d %s on %s [%s..%s] %s", w.Client, op, w.Node,
		w.Start.Round(time.Millisecond), w.End.Round(time.Millisecond), w.Outcome)
	if w.Outcome == nemAcked {
		s += " " + w.Version.String()
	}
	return s
}

// nemRead is one successful read of a key on a node.
type nemRead struct {
	Node        string
	Incarnation int // how many times the node had been (re)started
	Key         string
	Start, End  time.Duration
	Found       bool
	Value       string
	Version     nemVersion
}

func (r nemRead) String() string {
	got := "absent"
	if r.Found {
		got = r.Value + " " + r.Version.String()
	}
	return fmt.Sprintf("read %s on %s#%d [%s..%s] %s", r.Key, r.Node, r.Incarnation,
		r.Start.Round(time.Millisecond), r.End.Round(time.Millisecond), got)
}

// nemHistory is everything the workload recorded.
type nemHistory struct {
	Writes []nemWrite
	Reads  []nemRead
}

// nemRecord is a live key in a node's final scan.
type nemRecord struct {
	Value   string
	Version nemVersion
}

// nemFinal is each node's final scan: node -> key -> record.
type nemFinal map[string]map[string]nemRecord

// nemVerdict is the checker's answer.
type nemVerdict struct {
	Violations []string // "rule: description", at most nemMaxViolations
	Dropped    int      // violations beyond that
	Lost       int      // keys whose newest acknowledged write is missing from a final scan
	Acked      int      // acknowledged writes
	AckedPuts  int
	AckedDels  int
	Unknown    int
	Noop       int
	Failed     int
	Reads      int
	Keys       int // keys live in the final state
}

const nemMaxViolations = 30

func (v *nemVerdict) add(rule, format string, args ...any) {
	if len(v.Violations) >= nemMaxViolations {
		v.Dropped++
		return
	}
	v.Violations = append(v.Violations, rule+": "+fmt.Sprintf(format, args...))
}

func (v *nemVerdict) ok() bool { return len(v.Violations) == 0 }

func (v *nemVerdict) String() string {
	var b strings.Builder
	for _, s := range v.Violations {
		b.WriteString(s + "\n")
	}
	if v.Dropped > 0 {
		fmt.Fprintf(&b, "... and %d more violations\n", v.Dropped)
	}
	return b.String()
}

// nemCheck applies the rules above.
func nemCheck(h nemHistory, final nemFinal) nemVerdict {
	var v nemVerdict
	puts := map[string]*nemWrite{}         // value -> its put
	byKey := map[string][]*nemWrite{}      // key -> its writes that may have applied
	byOrigin := map[string][]*nemWrite{}   // node -> writes it acknowledged
	seen := map[nemVersion]*nemWrite{}     // acknowledged versions
	unknownDel := map[string]bool{}        // keys with a delete of unknown outcome
	ackedDels := map[string][]nemVersion{} // key -> acknowledged delete versions
	for i := range h.Writes {
		w := &h.Writes[i]
		switch w.Outcome {
		case nemNoop:
			v.Noop++
			continue
		case nemFailed:
			v.Failed++
			continue
		case nemUnknown:
			v.Unknown++
			if w.Del {
				unknownDel[w.Key] = true
			}
		case nemAcked:
			v.Acked++
			if w.Del {
				v.AckedDels++
				ackedDels[w.Key] = append(ackedDels[w.Key], w.Version)
			} else {
				v.AckedPuts++
			}
			if w.Version.Origin != w.Node {
				v.add("version", "%s: acknowledged with origin %s", w, w.Version.Origin)
			}
			if o, dup := seen[w.Version]; dup {
				v.add("version", "%s and %s: the same version", o, w)
			}
			seen[w.Version] = w
			byOrigin[w.Node] = append(byOrigin[w.Node], w)
		}
		if !w.Del {
			if o, dup := puts[w.Value]; dup {
				v.add("phantom", "%s and %s: the workload wrote one value twice (a bug of the workload)", o, w)
			}
			puts[w.Value] = w
		}
		byKey[w.Key] = append(byKey[w.Key], w)
	}

	// version: per origin, stamping follows real time.
	for _, ws := range byOrigin {
		nemCheckStamping(&v, ws)
	}

	// converged: every scan the same.
	names := make([]string, 0, len(final))
	for n := range final {
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) == 0 {
		v.add("converged", "no final scan")
		return v
	}
	ref := final[names[0]]
	for _, n := range names[1:] {
		if d := nemDiff(final[n], ref); d != "" {
			v.add("converged", "%s differs from %s: %s", n, names[0], d)
		}
	}
	v.Keys = len(ref)

	// phantom: values someone wrote, as they were written.
	checkValue := func(where, key string, val string, ver nemVersion) bool {
		p, ok := puts[val]
		switch {
		case !ok:
			v.add("phantom", "%s: %s = %q %s was never written", where, key, val, ver)
		case p.Key != key:
			v.add("phantom", "%s: %s = %q %s, a value written to %s by %s", where, key, val, ver, p.Key, p)
		case ver.Origin != p.Node:
			v.add("phantom", "%s: %s = %q %s, but %s", where, key, val, ver, p)
		case p.Outcome == nemAcked && ver != p.Version:
			v.add("phantom", "%s: %s = %q %s, but %s", where, key, val, ver, p)
		default:
			return true
		}
		return false
	}
	for _, n := range names {
		for _, k := range slices.Sorted(maps.Keys(final[n])) {
			r := final[n][k]
			checkValue("final scan of "+n, k, r.Value, r.Version)
		}
	}

	// lost: each key's final state against its greatest acknowledged write.
	// Checked on every node's scan, so that a divergence is also described
	// as what it loses.
	for key, ws := range byKey {
		var top *nemWrite
		for _, w := range ws {
			if w.Outcome == nemAcked && (top == nil || w.Version.cmp(top.Version) > 0) {
				top = w
			}
		}
		if top == nil {
			continue
		}
		lost := false
		for _, n := range names {
			r, present := final[n][key]
			switch {
			case present && (r.Version.cmp(top.Version) < 0 || r.Version == top.Version && top.Del):
				lost = true
				v.add("lost", "%s: %s = %q %s, older than %s", n, key, r.Value, r.Version, top)
			case !present && !top.Del && !unknownDel[key]:
				lost = true
				v.add("lost", "%s: %s is absent, yet %s is its newest acknowledged write and no delete of it is unaccounted for", n, key, top)
			}
		}
		if lost {
			v.Lost++
		}
	}

	// causal and monotonic: the reads.
	v.Reads = len(h.Reads)
	groups := map[[2]string][]*nemRead{}
	for i := range h.Reads {
		r := &h.Reads[i]
		if r.Found && checkValue(r.String(), r.Key, r.Value, r.Version) {
			if p := puts[r.Value]; p.Start > r.End {
				v.add("causal", "%s returned %s, sent after the read ended", r, p)
			}
		}
		g := [2]string{r.Node, r.Key}
		groups[g] = append(groups[g], r)
	}
	for _, g := range slices.SortedFunc(maps.Keys(groups), func(a, b [2]string) int {
		return cmp.Or(strings.Compare(a[0], b[0]), strings.Compare(a[1], b[1]))
	}) {
		nemCheckMonotonic(&v, groups[g], ackedDels[g[1]], unknownDel[g[1]])
	}
	return v
}

// nemCheckStamping checks that on one origin, a write acknowledged before
// another was sent has the smaller version.
func nemCheckStamping(v *nemVerdict, ws []*nemWrite) {
	byEnd := slices.Clone(ws)
	slices.SortFunc(byEnd, func(a, b *nemWrite) int { return cmp.Compare(a.End, b.End) })
	// prefix[i] is the write of greatest version among byEnd[:i+1].
	prefix := make([]*nemWrite, len(byEnd))
	for i, w := range byEnd {
		prefix[i] = w
		if i > 0 && prefix[i-1].Version.cmp(w.Version) > 0 {
			prefix[i] = prefix[i-1]
		}
	}
	for _, w := range ws {
		i := sort.Search(len(byEnd), func(i int) bool { return byEnd[i].End >= w.Start }) - 1
		if i >= 0 && prefix[i].Version.cmp(w.Version) >= 0 {
			v.add("version", "%s was acknowledged before %s was sent, yet its version is not smaller", prefix[i], w)
		}
	}
}

// nemCheckMonotonic checks the reads of one key on one node.
func nemCheckMonotonic(v *nemVerdict, reads []*nemRead, ackedDels []nemVersion, unknownDel bool) {
	byEnd := slices.Clone(reads)
	slices.SortFunc(byEnd, func(a, b *nemRead) int { return cmp.Compare(a.End, b.End) })
	ends := make([]time.Duration, len(byEnd))
	for i, r := range byEnd {
		ends[i] = r.End
	}
	// before(t) is the index past the last read that ended before t.
	before := func(t time.Duration) int {
		return sort.Search(len(ends), func(i int) bool { return ends[i] >= t })
	}
	// maxFound[i]: the found read of greatest version among byEnd[:i+1].
	maxFound := make([]*nemRead, len(byEnd))
	for i, r := range byEnd {
		if i > 0 {
			maxFound[i] = maxFound[i-1]
		}
		if r.Found && (maxFound[i] == nil || r.Version.cmp(maxFound[i].Version) > 0) {
			maxFound[i] = r
		}
	}
	prior := func(r *nemRead) *nemRead {
		if i := before(r.Start); i > 0 {
			return maxFound[i-1]
		}
		return nil
	}
	// For an absence: the newest version shown before it. maxGone[i] is the
	// greatest such version among the absences in byEnd[:i+1], with the
	// read that showed it.
	type gone struct{ shown, absent *nemRead }
	maxGone := make([]gone, len(byEnd))
	for i, r := range byEnd {
		if i > 0 {
			maxGone[i] = maxGone[i-1]
		}
		if r.Found {
			continue
		}
		p := prior(r)
		if p == nil {
			continue
		}
		if cur := maxGone[i].shown; cur == nil || p.Version.cmp(cur.Version) > 0 {
			maxGone[i] = gone{p, r}
		}
	}
	for _, r := range reads {
		p := prior(r)
		if p == nil {
			continue
		}
		if !r.Found {
			explained := unknownDel
			for _, d := range ackedDels {
				explained = explained || d.cmp(p.Version) > 0
			}
			if !explained {
				v.add("monotonic", "%s after %s, and no delete of %s newer than %s", r, p, r.Key, p.Version)
			}
			continue
		}
		if r.Version.cmp(p.Version) < 0 {
			v.add("monotonic", "%s after %s: the version went back", r, p)
			continue
		}
		if i := before(r.Start); i > 0 {
			if g := maxGone[i-1]; g.shown != nil && r.Version.cmp(g.shown.Version) <= 0 {
				v.add("monotonic", "%s after %s and then %s: a deleted version came back", r, g.shown, g.absent)
			}
		}
	}
}

// nemDiff describes how got differs from want, at most a few keys.
func nemDiff(got, want map[string]nemRecord) string {
	var d []string
	for k, w := range want {
		if g, ok := got[k]; !ok {
			d = append(d, fmt.Sprintf("%s missing (%q %s)", k, w.Value, w.Version))
		} else if g != w {
			d = append(d, fmt.Sprintf("%s = %q %s, not %q %s", k, g.Value, g.Version, w.Value, w.Version))
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			d = append(d, fmt.Sprintf("%s = %q %s, not absent", k, g.Value, g.Version))
		}
	}
	sort.Strings(d)
	if len(d) > 5 {
		d = append(d[:5], fmt.Sprintf("... %d more", len(d)-5))
	}
	return strings.Join(d, "; ")
}
