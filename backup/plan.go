package backup

import (
	"errors"
	"fmt"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// Presence is what a node knows of a table name: none, a table it holds,
// or a table held elsewhere.
type Presence int

// The presences of a table name.
const (
	Absent Presence = iota
	Held
	NotHeld
)

// ErrNotHeld is wrapped when a restore targets a table this node does not
// hold; ErrMissing when an import targets a table that does not exist.
var (
	ErrNotHeld = errors.New("table not held on this node")
	ErrMissing = errors.New("no such table")
)

// PlanInput is what a restore decides from: the sections chosen, --as,
// --scope, this node's name and what it knows of the target names.
type PlanInput struct {
	Sections []TableMeta
	As       string
	Scope    *scope.Scope
	Node     string
	Present  map[string]Presence // by target name; missing means Absent
	// MustExist: every target must exist (an import); none is created.
	MustExist bool
}

// Step is where one section goes: into table To, created (with Scope, this
// node its home) or merged by last-write-wins into the copy held here.
type Step struct {
	From   TableMeta
	To     string
	Create bool
	Scope  scope.Scope // when Create
}

// Plan decides where each section goes. It refuses --as with more than one
// section, a target that is not a user table name, two sections into one
// table, a table held elsewhere (restore on a node that holds it), and a
// new table whose scope would leave it without a copy here.
func Plan(in PlanInput) ([]Step, error) {
	if len(in.Sections) == 0 {
		return nil, fmt.Errorf("%w: nothing to restore: no table chosen", tables.ErrInvalid)
	}
	if in.As != "" && len(in.Sections) != 1 {
		return nil, fmt.Errorf("%w: --as names one table, and %d are chosen: name the table to restore (cortex restore FILE TABLE --as NAME)", tables.ErrInvalid, len(in.Sections))
	}
	seen := map[string]bool{}
	var steps []Step
	for _, sec := range in.Sections {
		to := sec.Name
		if in.As != "" {
			to = in.As
		}
		if err := tables.ValidateName(to, false); err != nil {
			return nil, err
		}
		if seen[to] {
			return nil, fmt.Errorf("%w: two sections go to table %s", tables.ErrInvalid, to)
		}
		seen[to] = true
		st := Step{From: sec, To: to}
		switch in.Present[to] {
		case Held:
		case NotHeld:
			return nil, fmt.Errorf("%w: table %s exists but this node holds no copy of it: restore on a node that holds it", ErrNotHeld, to)
		default:
			if in.MustExist {
				return nil, fmt.Errorf("%w: %s (create it first: cortex table create %s)", ErrMissing, to, to)
			}
			st.Create, st.Scope = true, sec.Scope
			if in.Scope != nil {
				st.Scope = *in.Scope
			}
			if !st.Scope.Includes(in.Node, in.Node) {
				return nil, fmt.Errorf("%w: table %s would be created with scope %s, which leaves this node (%s) without a copy to restore into: give --scope (local, all, or a list with %s)",
					tables.ErrInvalid, to, st.Scope, in.Node, in.Node)
			}
		}
		steps = append(steps, st)
	}
	return steps, nil
}
