package mesh

import (
	"errors"
	"maps"
	"sync"

	"github.com/cortex-mesh/cortex/pki"
)

// Reasons for refusing a peer that errors.Is tells apart (besides pki's
// ErrForeignCA, ErrExpired and ErrWrongKind).
var (
	// ErrRevoked: the peer's certificate is on the mesh's revocation list.
	ErrRevoked = errors.New("certificate revoked")
	// ErrClockSkew: the peer's clock is more than MaxRefusedSkew off.
	ErrClockSkew = errors.New("clock skew over the limit")
	// ErrRefusedByPeer: the peer refused this node (its certificate, or
	// its hello, with the peer's reason in the text).
	ErrRefusedByPeer = errors.New("the peer refused our certificate")
	// ErrForgotten: the peer is a node the mesh forgot (cortex node
	// forget) with the data directory it had then, or, when a peer
	// refused this node for it, this node is.
	ErrForgotten = errors.New("forgotten by the mesh")
)

// reasonError is an error whose text is msg and that errors.Is takes for
// reason.
type reasonError struct {
	reason error
	msg    string
}

func (e *reasonError) Error() string        { return e.msg }
func (e *reasonError) Is(target error) bool { return target == e.reason }

// RefusalReasons are the values RefusalReason returns.
var RefusalReasons = []string{"foreign_ca", "expired", "wrong_kind", "revoked", "clock_skew", "forgotten", "refused_by_peer", "other"}

// RefusalReason names why a connection or a hello was refused in one word
// of RefusalReasons (a metric's label: a bounded set, unlike the error's
// text, which names the remote).
func RefusalReason(err error) string {
	switch {
	case errors.Is(err, pki.ErrForeignCA):
		return "foreign_ca"
	case errors.Is(err, pki.ErrExpired):
		return "expired"
	case errors.Is(err, pki.ErrWrongKind):
		return "wrong_kind"
	case errors.Is(err, ErrRevoked):
		return "revoked"
	case errors.Is(err, ErrClockSkew):
		return "clock_skew"
	case errors.Is(err, ErrForgotten):
		return "forgotten"
	case errors.Is(err, ErrRefusedByPeer):
		return "refused_by_peer"
	}
	return "other"
}

// RefusalCounts counts refusals by reason (a bounded set, such as
// RefusalReasons) since the start; the zero value is ready. The mesh and
// cortexd's RPC listener count theirs in one each, for the metrics.
type RefusalCounts struct {
	mu sync.Mutex
	n  map[string]uint64
}

// Add counts one refusal for reason.
func (c *RefusalCounts) Add(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]uint64{}
	}
	c.n[reason]++
}

// Snapshot returns the counts so far, by reason.
func (c *RefusalCounts) Snapshot() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// Refusals counts the connections and hellos this node refused, or that
// were refused to it, by RefusalReason, since it started.
func (n *Node) Refusals() map[string]uint64 { return n.refused.Snapshot() }
