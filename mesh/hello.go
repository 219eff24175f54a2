package mesh

import (
	"encoding/json"
	"fmt"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/wal"
)

// HelloID is the protocol two nodes speak right after they connect: each
// tells the other its name, its wall-clock time (to measure clock skew),
// the addresses it listens on, and the membership records it knows.
const HelloID = "/cortex/hello/1"

const helloVersion = 1

// maxHelloSize bounds a hello frame.
const maxHelloSize = 4 << 20 // up to MaxNodes records with their certificates

// hello is one side's message.
type hello struct {
	Version int    `json:"v"`
	Node    string `json:"node"`
	TimeMS  int64  `json:"time_ms"`
	// Incarnation is the id of the sender's data directory (empty from
	// an earlier version): a node the mesh forgot is refused by it.
	Incarnation string         `json:"incarnation,omitempty"`
	Members     []memberRecord `json:"members,omitempty"`
	// Error is set when one side refuses the other: the listener in its
	// answer, or the dialer in a hello of its own after the answer; Code
	// then says what the refused node should act on (codeForgotten).
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
}

// codeForgotten: the refused node was forgotten by the mesh.
const codeForgotten = "forgotten"

// memberRecord is a membership record of cortex_meta as the entry that
// wrote it, proof included, so that the receiver checks it (only the node
// itself writes its record) and adopts it by last-write-wins with its
// original version.
type memberRecord struct {
	Value  json.RawMessage `json:"value"`
	HLC    uint64          `json:"hlc"`
	Origin string          `json:"origin"`
	Proof  []byte          `json:"proof,omitempty"`
}

// decodeHello parses and checks a hello frame (the membership records'
// proofs are checked when they are applied).
func decodeHello(b []byte) (hello, error) {
	var h hello
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("malformed hello: %w", err)
	}
	if h.Version != helloVersion {
		return h, fmt.Errorf("hello version %d: this node speaks %d", h.Version, helloVersion)
	}
	if h.Error != "" {
		h.Error = Clip(h.Error)
		if h.Code != codeForgotten {
			h.Code = ""
		}
		return h, nil
	}
	if err := scope.ValidateNodeName(h.Node); err != nil {
		return h, fmt.Errorf("hello: %w", err)
	}
	if h.Incarnation != "" {
		if err := store.ValidateIncarnation(h.Incarnation); err != nil {
			return h, fmt.Errorf("hello: %w", err)
		}
	}
	if len(h.Members) > scope.MaxNodes {
		return h, fmt.Errorf("hello: %d members is more than a mesh holds", len(h.Members))
	}
	for i, m := range h.Members {
		if _, err := m.member(); err != nil {
			return h, fmt.Errorf("hello: member %d: %w", i, err)
		}
	}
	return h, nil
}

// member decodes and checks the record's value.
func (r memberRecord) member() (store.Member, error) {
	m, err := store.DecodeMember(r.Value)
	if err != nil {
		return m, err
	}
	if r.Origin != m.Node {
		return m, fmt.Errorf("record of %s written by %s: a node writes only its own", m.Node, r.Origin)
	}
	return m, nil
}

// entry is the record as the cortex_meta change that wrote it.
func (r memberRecord) entry(node string) wal.Entry {
	return wal.Entry{Op: wal.OpPut, Key: store.MemberKey(node), Value: r.Value,
		Version: wal.Version{HLC: r.HLC, Origin: r.Origin}, Proof: r.Proof}
}

// Clip bounds a peer's message before it is logged or shown.
func Clip(msg string) string {
	const max = 512
	if len(msg) > max {
		return msg[:max] + "... (clipped)"
	}
	return msg
}

// mustJSON encodes the protocol's own types, which always encode.
func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}
