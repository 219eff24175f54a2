// Package health decides whether a node is healthy (it serves and every
// copy it holds is open) and ready (every copy it holds has caught up with
// every reachable holder since it started), as pure functions over plain
// data (Healthy, Decide), and runs the check that feeds them (Checker):
// what cortexd's /healthz and /readyz and `cortex node status` answer.
package health

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Status is a verdict and why, as /healthz and /readyz answer it.
type Status struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason"`
}

// Broken is a held copy that failed to open, and the error.
type Broken struct {
	Table string
	Err   string
}

// Healthy decides /healthz: the process serves (it is answering) and every
// copy it holds opened; broken lists those that did not.
func Healthy(broken []Broken) Status {
	if len(broken) == 0 {
		return Status{OK: true, Reason: "serving; every held table is open"}
	}
	b := append([]Broken(nil), broken...)
	sort.Slice(b, func(i, j int) bool { return b[i].Table < b[j].Table })
	parts := make([]string, len(b))
	for i, x := range b {
		parts[i] = fmt.Sprintf("table %s did not open: %s", x.Table, x.Err)
	}
	return Status{Reason: strings.Join(parts, "; ")}
}

// NoPeerWait is how long a node that expects peers (it has seeds or knows
// other members) waits for one before it is ready on its own data.
const NoPeerWait = 30 * time.Second

// Lag is how far one copy this node holds is behind the reachable holders
// that answered: the most entries of any one of their logs not applied here.
type Lag struct {
	Table   string
	Entries uint64
}

// Input is what readiness is decided from.
type Input struct {
	// Mesh: the node runs in a mesh (a standalone node is ready at once).
	Mesh bool
	// ExpectPeers: the node was given seeds (--peer) or knows other
	// members from its records.
	ExpectPeers bool
	// Since is how long the node has been running.
	Since time.Duration
	// Answered is how many connected peers answered this check with the
	// state of their copies; PeerReached whether any ever did since start.
	Answered    int
	PeerReached bool
	// Lags are this node's held copies against the peers that answered.
	Lags []Lag
}

// Decide decides readiness: ready once every held copy has caught up with
// every reachable holder. Before any peer answered (or while none is
// reachable), a node that expects peers is not ready for up to NoPeerWait,
// then ready on its own data, as is a node that expects none. latch says the
// verdict is ready for good (readiness latches: a node that caught up once
// stays ready while it serves, cut off or not).
func Decide(in Input) (s Status, latch bool) {
	if !in.Mesh {
		return Status{OK: true, Reason: "standalone: serving its own data"}, true
	}
	if in.Answered == 0 {
		switch {
		case !in.ExpectPeers:
			return Status{OK: true, Reason: "no peers known: serving its own data"}, true
		case in.Since < NoPeerWait && !in.PeerReached:
			return Status{Reason: fmt.Sprintf("no peer reached yet (ready on its own data after %s)", NoPeerWait)}, false
		case in.Since < NoPeerWait:
			return Status{Reason: fmt.Sprintf("no peer reachable (ready on its own data after %s)", NoPeerWait)}, false
		}
		return Status{OK: true, Reason: fmt.Sprintf("no peer reachable in %s: serving its own data", NoPeerWait)}, true
	}
	var behind []Lag
	for _, l := range in.Lags {
		if l.Entries > 0 {
			behind = append(behind, l)
		}
	}
	if len(behind) > 0 {
		sort.Slice(behind, func(i, j int) bool {
			if behind[i].Entries != behind[j].Entries {
				return behind[i].Entries > behind[j].Entries
			}
			return behind[i].Table < behind[j].Table
		})
		r := fmt.Sprintf("catching up: table %s is %d entries behind", behind[0].Table, behind[0].Entries)
		if n := len(behind) - 1; n > 0 {
			r += fmt.Sprintf(" (and %d more tables)", n)
		}
		return Status{Reason: r}, false
	}
	return Status{OK: true, Reason: "caught up with every reachable holder"}, true
}
