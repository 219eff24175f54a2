package scope

import (
	"fmt"
	"slices"
	"strings"
)

// Change is what creating a table or changing its scope does to its copies,
// as the checks that guard placement see it.
type Change struct {
	Before []string // the members holding a copy by the current scope (none for a new table)
	After  []string // the nodes holding a copy by the new scope (members, and nodes it names)
	// Unknown are the nodes the new scope names that are not members of
	// the mesh (a typo, or a node that has not joined yet).
	Unknown []string
	// Unreachable: no node of After can be reached now, so no copy could
	// take a write.
	Unreachable bool
}

// PlanChange computes the Change from the table's current record (nil for a
// new table) to next, given the mesh's members and the nodes reachable now
// (this one included).
func PlanChange(current *TableInfo, next TableInfo, members, reachable []string) Change {
	var c Change
	if current != nil {
		c.Before = Desired(*current, members) // the copies there are: nodes named that never joined hold none
	}
	c.After = Desired(next, append(slices.Clone(members), next.Scope.Nodes...))
	for _, n := range next.Scope.Nodes {
		if !slices.Contains(members, n) {
			c.Unknown = append(c.Unknown, n)
		}
	}
	c.Unreachable = !slices.ContainsFunc(c.After, func(n string) bool { return slices.Contains(reachable, n) })
	return c
}

// Risk says why the change needs a confirmation, "" if it does not: it
// lowers the number of copies, or leaves the table without a holder that
// can be reached.
func (c Change) Risk() string {
	switch {
	case len(c.Before) > 0 && len(c.After) < len(c.Before):
		return fmt.Sprintf("fewer copies: %s", c)
	case c.Unreachable:
		return fmt.Sprintf("no node that would hold a copy is reachable now: %s", c)
	}
	return ""
}

// String shows the change of holders: "copies: home, office, laptop -> office".
func (c Change) String() string {
	before := strings.Join(c.Before, ", ")
	if len(c.Before) == 0 {
		before = "none"
	}
	return fmt.Sprintf("copies: %s -> %s", before, strings.Join(c.After, ", "))
}
