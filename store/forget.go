package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Forgetting a node (cortex node forget NAME, an admin node only): the
// record forgot/NAME/INCARNATION in cortex_meta says that the data
// directory of that incarnation of NAME is gone from the mesh for good, and
// the node's membership record is deleted. From then on every node leaves
// it out of the members (so it is not dialed, not expected, and not a
// holder the purge horizon waits for), and refuses it as a peer when it
// presents that incarnation (or none). The same name with a new
// incarnation (its data directory wiped) is a new node: its membership
// record puts it back among the members, and it gets its copies by
// snapshot.

// ErrNoNode is wrapped by errors about a node that is not a member.
var ErrNoNode = errors.New("no such node")

// UnknownIncarnation is the key part of a forgot record of a node whose
// membership record carried no incarnation (written by an earlier version).
const UnknownIncarnation = "unknown"

// incarnationLen is the length of an incarnation id: 16 random bytes in hex.
const incarnationLen = 32

// NewIncarnation makes a new incarnation id: 32 lowercase hex digits.
func NewIncarnation() string {
	b := make([]byte, incarnationLen/2)
	rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// ValidateIncarnation checks an incarnation id: 32 lowercase hex digits.
func ValidateIncarnation(id string) error {
	if len(id) != incarnationLen || strings.Trim(id, "0123456789abcdef") != "" {
		return fmt.Errorf("%w: incarnation %q: want %d lowercase hex digits", tables.ErrInvalid, clip(id), incarnationLen)
	}
	return nil
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// Forgot is the record forgot/NODE/INCARNATION: an admin forgot that
// incarnation of the node (Incarnation empty: its record had none).
type Forgot struct {
	Node        string    `json:"node"`
	Incarnation string    `json:"incarnation,omitempty"`
	By          string    `json:"by"`
	At          time.Time `json:"at"`
	// LastSeen is the last-seen time of its membership record then (Unix
	// ms; 0 if it had none).
	LastSeen int64 `json:"last_seen_ms,omitempty"`
}

// forgotKey is the key of a forgot record.
func forgotKey(node, incarnation string) []byte {
	if incarnation == "" {
		incarnation = UnknownIncarnation
	}
	return []byte("forgot/" + node + "/" + incarnation)
}

// Message is what a node forgotten by the mesh is told, and what its peers
// log, when it comes back.
func (f Forgot) Message() string {
	return fmt.Sprintf("node %s was forgotten by the mesh at %s (by %s): wipe its data directory and start it again to rejoin",
		f.Node, f.At.UTC().Format(time.RFC3339), f.By)
}

// DecodeForgot parses and checks a forgot record's value, which must be
// the one of key forgot/NODE/INCARNATION (rest is NODE/INCARNATION).
func DecodeForgot(rest string, b []byte) (Forgot, error) {
	node, inc, ok := strings.Cut(rest, "/")
	if !ok {
		return Forgot{}, fmt.Errorf("%w: forgot key %q: want forgot/NODE/INCARNATION", tables.ErrInvalid, clip(rest))
	}
	if err := scope.ValidateNodeName(node); err != nil {
		return Forgot{}, fmt.Errorf("forgot record: %w", err)
	}
	if inc != UnknownIncarnation {
		if err := ValidateIncarnation(inc); err != nil {
			return Forgot{}, fmt.Errorf("forgot record of %s: %w", node, err)
		}
	}
	var f Forgot
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("%w: forgot record of %s: %v", tables.ErrInvalid, node, err)
	}
	want := inc
	if inc == UnknownIncarnation {
		want = ""
	}
	switch {
	case f.Node != node || f.Incarnation != want:
		return f, fmt.Errorf("%w: forgot record %q names %s incarnation %q", tables.ErrInvalid, clip(rest), clip(f.Node), clip(f.Incarnation))
	case scope.ValidateNodeName(f.By) != nil:
		return f, fmt.Errorf("%w: forgot record of %s: by %q is not a node name", tables.ErrInvalid, node, clip(f.By))
	case f.At.IsZero() || f.At.UTC().Year() > 9999:
		return f, fmt.Errorf("%w: forgot record of %s: no time or a time out of range", tables.ErrInvalid, node)
	case f.LastSeen < 0:
		return f, fmt.Errorf("%w: forgot record of %s: negative last-seen time", tables.ErrInvalid, node)
	}
	return f, nil
}

// authorizeForgot: forgot records are written and removed by an admin
// node, as the node the record says forgot.
func authorizeForgot(rest string, e *wal.Entry, put bool, s pki.Signer) error {
	if put {
		f, err := DecodeForgot(rest, e.Value)
		if err != nil {
			return err
		}
		if f.By != s.Name {
			return fmt.Errorf("%w: forgot record of %s says it was made by %s, signed by %s", ErrDenied, f.Node, f.By, s.Name)
		}
	} else if badForgotKey(rest) {
		return fmt.Errorf("%w: malformed forgot key %q", tables.ErrInvalid, clip(rest))
	}
	return needAdmin(s, "forgetting a node")
}

// badForgotKey reports whether rest is not NODE/INCARNATION.
func badForgotKey(rest string) bool {
	node, inc, ok := strings.Cut(rest, "/")
	return !ok || scope.ValidateNodeName(node) != nil || inc != UnknownIncarnation && ValidateIncarnation(inc) != nil
}

// IsForgotten decides whether a node is out of the mesh: some incarnation
// of it was forgotten (forgot), and its membership record (m, if it has
// one) is absent, has no incarnation, or is of a forgotten incarnation. A
// record of a new incarnation (the node was wiped and rejoined) puts it
// back.
func IsForgotten(forgot []Forgot, m Member, hasMember bool) bool {
	if len(forgot) == 0 {
		return false
	}
	if !hasMember || m.Incarnation == "" {
		return true
	}
	_, refused := RefusedIncarnation(forgot, m.Incarnation)
	return refused
}

// RefusedIncarnation decides whether a peer of a name with these forgot
// records, presenting incarnation (empty: none, an earlier version), is
// refused: when it presents a forgotten incarnation, or none while the
// name has been forgotten at all. It returns the forgot record that refuses
// it.
func RefusedIncarnation(forgot []Forgot, incarnation string) (Forgot, bool) {
	if len(forgot) == 0 {
		return Forgot{}, false
	}
	for _, f := range forgot {
		if f.Incarnation == incarnation {
			return f, true
		}
	}
	if incarnation == "" {
		return slices.MaxFunc(forgot, func(a, b Forgot) int { return a.At.Compare(b.At) }), true
	}
	return Forgot{}, false
}

// ForgetPlan is what forgetting a node does: the node, its incarnation and
// last-seen time, and the tables concerned. By and At are set once done.
type ForgetPlan struct {
	Node        string `json:"node"`
	Incarnation string `json:"incarnation,omitempty"`
	LastSeenMS  int64  `json:"last_seen_ms,omitempty"`
	// Named are the tables whose list scope names the node (the name stays
	// in the scope: a wiped node that rejoins gets its copies again).
	Named []string `json:"named"`
	// Blocks are the tables whose purge horizon waits for the node's copy
	// (the scope selects it): they purge again without it.
	Blocks []string `json:"blocks"`
	// Home are the tables whose home is the node: only their home moves
	// their purge horizon, so they purge no more (their records stay).
	Home []string  `json:"home"`
	By   string    `json:"by,omitempty"`
	At   time.Time `json:"at,omitzero"`
}

// PlanForget decides whether self (signer) may forget node now and what
// that does: only an admin node, not itself, only a member (m, hasMember),
// not a node connected to it now. catalog is every table's record.
func PlanForget(signer pki.Signer, node string, m Member, hasMember bool, connected []string, catalog []scope.TableInfo) (ForgetPlan, error) {
	if err := scope.ValidateNodeName(node); err != nil {
		return ForgetPlan{}, err
	}
	if err := needAdmin(signer, "forgetting node "+node); err != nil {
		return ForgetPlan{}, err
	}
	if node == signer.Name {
		return ForgetPlan{}, fmt.Errorf("%w: this node cannot forget itself: forget %s from another admin node", tables.ErrInvalid, node)
	}
	if !hasMember {
		return ForgetPlan{}, fmt.Errorf("%w: %s is not a member of the mesh (no membership record: never joined, or forgotten already); see cortex mesh peers", ErrNoNode, node)
	}
	if slices.Contains(connected, node) {
		return ForgetPlan{}, fmt.Errorf("%w: %s is connected to this node now: forget is for a node that is gone for good; stop it first (to shut a running node out, revoke it: cortex node revoke %s)", tables.ErrInvalid, node, node)
	}
	p := ForgetPlan{Node: node, Incarnation: m.Incarnation, LastSeenMS: m.LastSeen, Named: []string{}, Blocks: []string{}, Home: []string{}}
	for _, info := range catalog {
		if info.System() {
			continue
		}
		if slices.Contains(info.Scope.Nodes, node) {
			p.Named = append(p.Named, info.Name)
		}
		if scope.Holds(info, node) {
			p.Blocks = append(p.Blocks, info.Name)
		}
		if info.Home == node {
			p.Home = append(p.Home, info.Name)
		}
	}
	for _, l := range [][]string{p.Named, p.Blocks, p.Home} {
		slices.Sort(l)
	}
	p.Named, p.Blocks, p.Home = slices.Compact(p.Named), slices.Compact(p.Blocks), slices.Compact(p.Home)
	return p, nil
}

// Forget forgets a node (PlanForget says whether it may): it writes the
// forgot record of the node's incarnation and deletes its membership
// record. connected are the peers connected now. With dryRun it only
// returns the plan.
func (s *Store) Forget(ctx context.Context, node string, connected []string, dryRun bool) (ForgetPlan, error) {
	signer, _ := s.Signer()
	var m Member
	var ok bool
	if scope.ValidateNodeName(node) == nil {
		m, ok = s.Member(node)
	}
	catalog, err := s.Catalog()
	if err != nil {
		return ForgetPlan{}, err
	}
	p, err := PlanForget(signer, node, m, ok, connected, catalog)
	if err != nil || dryRun {
		return p, err
	}
	f := Forgot{Node: node, Incarnation: m.Incarnation, By: s.opts.Node, At: time.Now().UTC().Truncate(time.Millisecond), LastSeen: m.LastSeen}
	b, _ := json.Marshal(f)
	if err := s.putSystem(ctx, s.meta, scope.MetaTable, forgotKey(node, m.Incarnation), b); err != nil {
		return ForgetPlan{}, fmt.Errorf("forget %s: %w", node, err)
	}
	if err := s.deleteSystem(ctx, s.meta, scope.MetaTable, MemberKey(node)); err != nil {
		return ForgetPlan{}, fmt.Errorf("forget %s: the forgot record is written, deleting its membership record failed (run forget again): %w", node, err)
	}
	p.By, p.At = f.By, f.At
	s.log.Warn("forgot a node: it is out of the mesh, and refused if it comes back with its old data", "node", node, "incarnation", m.Incarnation)
	return p, s.Reconcile() // tells the mesh (Changed) to stop dialing it
}

// forgotten returns the forgot records of a node.
func (s *Store) forgotten(node string) []Forgot {
	recs, err := s.meta.Scan([]byte("forgot/"+node+"/"), nil, 0)
	if err != nil {
		return nil
	}
	var out []Forgot
	for _, r := range recs {
		if f, err := DecodeForgot(strings.TrimPrefix(string(r.Key), "forgot/"), r.Value); err == nil {
			out = append(out, f)
		}
	}
	return out
}

// allForgotten returns every forgot record, by node.
func (s *Store) allForgotten() (map[string][]Forgot, error) {
	recs, err := s.meta.Scan([]byte("forgot/"), nil, 0)
	if err != nil {
		return nil, err
	}
	out := map[string][]Forgot{}
	for _, r := range recs {
		if f, err := DecodeForgot(strings.TrimPrefix(string(r.Key), "forgot/"), r.Value); err == nil {
			out[f.Node] = append(out[f.Node], f)
		}
	}
	return out, nil
}

// Forgotten lists the forgot records, oldest first.
func (s *Store) Forgotten() ([]Forgot, error) {
	all, err := s.allForgotten()
	if err != nil {
		return nil, err
	}
	var out []Forgot
	for _, l := range all {
		out = append(out, l...)
	}
	slices.SortFunc(out, func(a, b Forgot) int { return a.At.Compare(b.At) })
	return out, nil
}

// IsForgotten reports whether a node is out of the mesh now (IsForgotten
// over this node's records).
func (s *Store) IsForgotten(node string) bool {
	m, ok := s.member(node)
	return IsForgotten(s.forgotten(node), m, ok)
}

// RefusesPeer reports whether a peer of that name presenting that
// incarnation is refused as forgotten, with the record that refuses it.
func (s *Store) RefusesPeer(node, incarnation string) (Forgot, bool) {
	return RefusedIncarnation(s.forgotten(node), incarnation)
}

// WasForgotten reports whether any incarnation of a node was forgotten.
func (s *Store) WasForgotten(node string) bool { return len(s.forgotten(node)) > 0 }

// ForgottenNodes lists the nodes out of the mesh now (IsForgotten), sorted.
func (s *Store) ForgottenNodes() []string {
	all, err := s.allForgotten()
	if err != nil {
		return nil
	}
	var out []string
	for node, forgot := range all {
		m, ok := s.member(node)
		if IsForgotten(forgot, m, ok) {
			out = append(out, node)
		}
	}
	slices.Sort(out)
	return out
}
