package scope

import (
	"crypto/rand"
	"encoding/hex"
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

// MaxNodes bounds the nodes a list scope may name (and a mesh may hold).
const MaxNodes = 1024

// ScopeOf makes a list scope, checking every name.
func ScopeOf(nodes []string) (Scope, error) {
	if len(nodes) == 0 {
		return Scope{}, fmt.Errorf("%w: empty scope: use all, local or a list of node names", tables.ErrInvalid)
	}
	if len(nodes) > MaxNodes {
		return Scope{}, fmt.Errorf("%w: a scope of %d nodes: at most %d", tables.ErrInvalid, len(nodes), MaxNodes)
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

// ValidateIdentityName checks an identity name: [a-z0-9][a-z0-9_-]{0,62},
// the form of a node name.
func ValidateIdentityName(name string) error {
	if err := pki.ValidateIdentityName(name); err != nil {
		return fmt.Errorf("%w: %w", tables.ErrInvalid, err)
	}
	return nil
}

// valid reports whether the scope is one of the three forms (the zero Scope,
// which selects no node, is not).
func (s Scope) valid() bool {
	return s.All != s.Local && len(s.Nodes) == 0 || !s.All && !s.Local && len(s.Nodes) > 0
}

// TableInfo is a table's catalog record.
type TableInfo struct {
	Name  string `json:"name"`
	ID    string `json:"id"`
	Scope Scope  `json:"scope"`
	// Prev is the scope before the last change, if any: the nodes it
	// selects that the new one does not may still be handing their copies
	// off, and holders follow them until they have (see Follows).
	Prev *Scope `json:"prev_scope,omitempty"`
	// PrevUntil is the timestamp (HLC) of the change that ended Prev: a node
	// handing its copy off since then may still pass on what it had, not
	// what it writes after it was taken out.
	PrevUntil uint64    `json:"prev_until,omitempty"`
	Home      string    `json:"home"`
	Created   time.Time `json:"created,omitzero"`
	// TombstoneGraceMS is how long a tombstone is kept at least before it
	// may be purged, in ms (0: DefaultTombstoneGrace).
	TombstoneGraceMS int64 `json:"tombstone_grace_ms,omitempty"`
}

// A table's id is made when the table is created: 16 random hex digits, a
// dash and the home node's name, so that the home is a fact of the id that
// no later record can change. (Ids of 16 hex digits alone were made by
// earlier versions: their home is unknown, and only an admin may change
// them.)
const idRandLen = 16

// NewTableID returns a new id for a table whose home is home.
func NewTableID(home string) string {
	var b [idRandLen / 2]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "-" + home
}

// HomeOf returns the home node an id names ("" for an earlier version's id
// without one) and whether the id is well formed.
func HomeOf(id string) (home string, ok bool) {
	if len(id) < idRandLen {
		return "", false
	}
	for _, c := range []byte(id[:idRandLen]) {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", false
		}
	}
	switch rest := id[idRandLen:]; {
	case rest == "":
		return "", true
	case rest[0] == '-' && ValidateNodeName(rest[1:]) == nil:
		return rest[1:], true
	}
	return "", false
}

// Validate checks a catalog record of a user table before any of its fields
// is used (its name and id make a directory name): the table-name rule (no
// system names), an id of the form NewTableID makes naming the record's
// home, valid scopes.
func (ti TableInfo) Validate() error {
	if err := tables.ValidateName(ti.Name, false); err != nil {
		return err
	}
	home, ok := HomeOf(ti.ID)
	if !ok {
		return fmt.Errorf("%w: table %s: malformed id %q", tables.ErrInvalid, ti.Name, ti.ID)
	}
	if err := ValidateNodeName(ti.Home); err != nil {
		return fmt.Errorf("table %s: home: %w", ti.Name, err)
	}
	if home != "" && home != ti.Home {
		return fmt.Errorf("%w: table %s: id %s belongs to home %s, not %s", tables.ErrInvalid, ti.Name, ti.ID, home, ti.Home)
	}
	if !ti.Scope.valid() || ti.Prev != nil && (!ti.Prev.valid() || ti.PrevUntil == 0) {
		return fmt.Errorf("%w: table %s: malformed scope", tables.ErrInvalid, ti.Name)
	}
	if ms := ti.TombstoneGraceMS; ms != 0 && (ms < MinTombstoneGrace.Milliseconds() || ms > MaxTombstoneGrace.Milliseconds()) {
		return fmt.Errorf("%w: table %s: tombstone grace of %d ms", tables.ErrInvalid, ti.Name, ms)
	}
	return nil
}

// System reports whether the table is a system table.
func (ti TableInfo) System() bool { return IsSystem(ti.Name) }

// Dir is the name of the directory that holds a copy of the table: name and
// id, so a dropped and re-created table never reuses an old copy.
func (ti TableInfo) Dir() string { return ti.Name + "-" + ti.ID }
