package repair

import (
	"encoding/json"
	"log/slog"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/store"
)

// StatusID is the protocol a node answers with the state of its copies:
// log position, counts, digest, its subscribers' acknowledgements and its
// own cursors. `cortex sync status` asks every node for it.
const StatusID = "/cortex/status/1"

// protoVersion is the version of the status and repair requests.
const protoVersion = 1

// Bounds of the status protocol.
const (
	maxStatusFrame = 4 << 20
	requestTimeout = 10 * time.Second
)

// Peers speaks the status and repair protocols with the other nodes over
// the mesh: it serves this node's copies to the nodes in their tables'
// scopes and asks other nodes for theirs (it is the Querier of Gather and
// the Mesh of Run).
type Peers struct {
	mesh  mesh.Transport
	store *store.Store
	log   *slog.Logger
}

// NewPeers serves the status and repair protocols on t.
func NewPeers(t mesh.Transport, st *store.Store, log *slog.Logger) *Peers {
	if log == nil {
		log = slog.Default()
	}
	p := &Peers{mesh: t, store: st, log: log}
	t.Handle(StatusID, p.serveStatus)
	t.Handle(RepairID, p.serveRepair)
	return p
}

func writeJSON(s mesh.Stream, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return mesh.WriteFrame(s, b)
}
