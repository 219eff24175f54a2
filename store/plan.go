package store

import (
	"slices"

	"github.com/cortex-mesh/cortex/scope"
)

// A reconcile plan: from the catalog and the copies this node has, what to
// do so that the copies match the catalog. Plan decides (a pure function);
// Reconcile does it.

// Step is what to do with one copy.
type Step int

// The steps of a plan.
const (
	// StepKeep: a held copy stays held; its catalog record may be newer.
	StepKeep Step = iota
	// StepOpen: open the copy of a table the scope selects, or the copy left on
	// disk of one it no longer does (the node stopped while handing it off),
	// which then drains.
	StepOpen
	// StepDrain: the scope no longer selects this node: keep serving the copy
	// until a node that holds the table has all of it.
	StepDrain
	// StepUndrain: a draining copy is selected again.
	StepUndrain
	// StepHandOff: a draining copy stays draining; delete it once a holder has
	// acknowledged all of it (the executor asks scope.CanDrop).
	StepHandOff
	// StepRemove: the table was dropped (or re-created): delete the copy.
	StepRemove
)

func (s Step) String() string {
	return [...]string{"keep", "open", "drain", "undrain", "hand off", "remove"}[s]
}

// Action is one step for one copy.
type Action struct {
	Step Step
	Info scope.TableInfo // the catalog record (for StepRemove: the copy's own)
}

// Copies is what a node has: the copies it holds and drains (by directory,
// with the record they were opened with), and which directories of
// catalogued tables it does not have open are on disk.
type Copies struct {
	Held, Draining map[string]scope.TableInfo
	OnDisk         map[string]bool
}

// Plan decides the steps that make a node's copies match the catalog, in
// directory order (the steps of one copy in the order they are to be done).
func Plan(self string, catalog []scope.TableInfo, c Copies) []Action {
	listed := map[string]scope.TableInfo{}
	for _, info := range catalog {
		listed[info.Dir()] = info
	}
	var out []Action
	for dir, old := range c.Held {
		info, ok := listed[dir]
		switch {
		case !ok:
			out = append(out, Action{StepRemove, old})
		case scope.Holds(info, self):
			out = append(out, Action{StepKeep, info})
		default: // and try the hand-off at once
			out = append(out, Action{StepDrain, info}, Action{StepHandOff, info})
		}
	}
	for dir, old := range c.Draining {
		info, ok := listed[dir]
		switch {
		case !ok:
			out = append(out, Action{StepRemove, old})
		case scope.Holds(info, self):
			out = append(out, Action{StepUndrain, info})
		default:
			out = append(out, Action{StepHandOff, info})
		}
	}
	for dir, info := range listed {
		_, held := c.Held[dir]
		_, draining := c.Draining[dir]
		if !held && !draining && (scope.Holds(info, self) || c.OnDisk[dir]) {
			out = append(out, Action{StepOpen, info})
		}
	}
	slices.SortStableFunc(out, func(a, b Action) int {
		switch da, db := a.Info.Dir(), b.Info.Dir(); {
		case da < db:
			return -1
		case da > db:
			return 1
		}
		return 0
	})
	return out
}
