package scope

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/tables"
)

// The system tables. Every node holds a copy of each; their scope is fixed.
const (
	MetaTable       = "cortex_meta"       // the catalog: one record per table
	IdentitiesTable = "cortex_identities" // identity name -> kind and certificate
	ACLsTable       = "cortex_acls"       // identity x table -> permission
)

// SystemTables lists the system tables in the order they are opened.
var SystemTables = []string{MetaTable, IdentitiesTable, ACLsTable}

// IsSystem reports whether name is a system table.
func IsSystem(name string) bool { return slices.Contains(SystemTables, name) }

// Scope says where a table has copies: on every node ("all"), only on its
// home node ("local"), or on exactly the listed nodes.
type Scope struct {
	All   bool
	Local bool
	Nodes []string // sorted, unique; set only when neither All nor Local
}

// ParseScope reads a scope as written on the command line: all, local, or a
// comma-separated list of node names.
func ParseScope(s string) (Scope, error) {
	switch s {
	case "all":
		return Scope{All: true}, nil
	case "local":
		return Scope{Local: true}, nil
	}
	return ScopeOf(strings.Split(s, ","))
}

// ScopeOf makes a list scope, checking every name.
func ScopeOf(nodes []string) (Scope, error) {
	if len(nodes) == 0 {
		return Scope{}, fmt.Errorf("%w: empty scope: use all, local or a list of node names", tables.ErrInvalid)
	}
	out := make([]string, 0, len(nodes))
	for _, n := range nodes {
		if err := ValidateNodeName(n); err != nil {
			return Scope{}, fmt.Errorf("scope: %w", err)
		}
		out = append(out, n)
	}
	slices.Sort(out)
	return Scope{Nodes: slices.Compact(out)}, nil
}

func (s Scope) String() string {
	switch {
	case s.All:
		return "all"
	case s.Local:
		return "local"
	}
	return strings.Join(s.Nodes, ",")
}

// MarshalJSON writes "all", "local" or an array of node names.
func (s Scope) MarshalJSON() ([]byte, error) {
	if s.All || s.Local {
		return json.Marshal(s.String())
	}
	return json.Marshal(s.Nodes)
}

// UnmarshalJSON reads "all", "local" or an array of node names.
func (s *Scope) UnmarshalJSON(b []byte) error {
	var word string
	if err := json.Unmarshal(b, &word); err == nil {
		if word != "all" && word != "local" {
			return fmt.Errorf("%w: scope %q: use all, local or a list of node names", tables.ErrInvalid, word)
		}
		*s, _ = ParseScope(word)
		return nil
	}
	var nodes []string
	if err := json.Unmarshal(b, &nodes); err != nil {
		return fmt.Errorf("%w: scope must be \"all\", \"local\" or an array of node names", tables.ErrInvalid)
	}
	sc, err := ScopeOf(nodes)
	if err != nil {
		return err
	}
	*s = sc
	return nil
}

// Includes reports whether the scope puts a copy on node, for a table whose
// home is home.
func (s Scope) Includes(node, home string) bool {
	switch {
	case s.All:
		return true
	case s.Local:
		return node == home
	}
	return slices.Contains(s.Nodes, node)
}

// ValidateNodeName checks a node name: [a-z0-9][a-z0-9_-]{0,62}.
func ValidateNodeName(name string) error {
	if err := pki.ValidateName(name); err != nil {
		return fmt.Errorf("%w: %w", tables.ErrInvalid, err)
	}
	return nil
}

// TableInfo is a table's catalog record.
type TableInfo struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	Scope   Scope     `json:"scope"`
	Home    string    `json:"home"`
	Created time.Time `json:"created,omitzero"`
}

// System reports whether the table is a system table.
func (ti TableInfo) System() bool { return IsSystem(ti.Name) }

// Dir is the name of the directory that holds a copy of the table: name and
// id, so a dropped and re-created table never reuses an old copy.
func (ti TableInfo) Dir() string { return ti.Name + "-" + ti.ID }
