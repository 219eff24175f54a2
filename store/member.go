package store

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// Member is a node's membership record (cortex_meta key node/NAME): who it
// is and where it listens. Only the node itself writes it.
type Member struct {
	Node     string   `json:"node"`
	PeerID   string   `json:"peer_id"`
	Addrs    []string `json:"addrs"`
	LastSeen int64    `json:"last_seen_ms"`
	// Draining names (by id) the tables of which the node keeps a copy
	// outside their scope until a node that holds them has every entry.
	Draining []string `json:"draining,omitempty"`
	// Incarnation is the id of the node's data directory (made when it was
	// first created; a wiped one gets a new one): empty in the records of
	// earlier versions, which is taken as unknown.
	Incarnation string `json:"incarnation,omitempty"`
}

// Bounds of a membership record.
const (
	maxMemberAddrs = 16
	maxPeerID      = 128
)

// MemberKey is the key of a node's membership record in cortex_meta.
func MemberKey(node string) []byte { return []byte("node/" + node) }

// DecodeMember parses and checks a membership record's value: a valid node
// name, at most 16 HOST:PORT addresses, a peer id, table ids, an
// incarnation id (or none).
func DecodeMember(b []byte) (Member, error) {
	var m Member
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%w: membership record: %v", tables.ErrInvalid, err)
	}
	if err := scope.ValidateNodeName(m.Node); err != nil {
		return m, fmt.Errorf("membership record: %w", err)
	}
	if len(m.PeerID) > maxPeerID {
		return m, fmt.Errorf("%w: membership record of %s: peer id of %d bytes", tables.ErrInvalid, m.Node, len(m.PeerID))
	}
	if len(m.Addrs) > maxMemberAddrs {
		return m, fmt.Errorf("%w: membership record of %s: %d addresses, at most %d", tables.ErrInvalid, m.Node, len(m.Addrs), maxMemberAddrs)
	}
	for _, a := range m.Addrs {
		if err := checkAddr(a); err != nil {
			return m, fmt.Errorf("%w: membership record of %s: address %q: %v", tables.ErrInvalid, m.Node, a, err)
		}
	}
	if len(m.Draining) > scope.MaxNodes {
		return m, fmt.Errorf("%w: membership record of %s: %d tables draining", tables.ErrInvalid, m.Node, len(m.Draining))
	}
	for _, id := range m.Draining {
		if _, ok := scope.HomeOf(id); !ok {
			return m, fmt.Errorf("%w: membership record of %s: malformed table id %q", tables.ErrInvalid, m.Node, id)
		}
	}
	if m.Incarnation != "" {
		if err := ValidateIncarnation(m.Incarnation); err != nil {
			return m, fmt.Errorf("membership record of %s: %w", m.Node, err)
		}
	}
	return m, nil
}

// checkAddr accepts HOST:PORT with a port of 1-65535 and a host of at most
// 253 bytes without spaces or slashes.
func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return fmt.Errorf("bad port %q", port)
	}
	if host == "" || len(host) > 253 || strings.ContainsAny(host, " /\\\x00") {
		return fmt.Errorf("bad host %q", host)
	}
	return nil
}

// Member returns a node's membership record, if this node has one that
// carries a proof (every one a peer sent was checked when it was applied;
// one without, left from standalone runs or an earlier version, is not a
// member's word). A forgotten node has none.
func (s *Store) Member(node string) (Member, bool) {
	m, ok := s.member(node)
	return m, ok && !IsForgotten(s.forgotten(node), m, true)
}

// member is Member without the forgotten check.
func (s *Store) member(node string) (Member, bool) {
	r, err := s.meta.Get(MemberKey(node))
	if err != nil || len(r.Proof) == 0 {
		return Member{}, false
	}
	m, err := DecodeMember(r.Value)
	return m, err == nil && m.Node == node
}

// MemberRecords returns the membership records that carry a proof, as the
// changes that wrote them (for the hello), but those of forgotten nodes.
func (s *Store) MemberRecords() ([]tables.Record, error) {
	recs, err := s.meta.Scan(MemberKey(""), nil, 0)
	if err != nil {
		return nil, err
	}
	forgot, err := s.allForgotten()
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(recs, func(r tables.Record) bool {
		if len(r.Proof) == 0 {
			return true
		}
		m, err := DecodeMember(r.Value)
		return err != nil || IsForgotten(forgot[m.Node], m, true)
	}), nil
}

// Members lists the names of the nodes with a membership record (not
// forgotten) and this one, sorted.
func (s *Store) Members() []string {
	out := []string{s.opts.Node}
	recs, _ := s.MemberRecords()
	for _, r := range recs {
		if m, err := DecodeMember(r.Value); err == nil {
			out = append(out, m.Node)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
