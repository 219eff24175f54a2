package main

import (
	"context"
	"log/slog"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/store"
)

// meshed is this node in the mesh: its libp2p host, replication, and the
// status and repair protocols.
type meshed struct {
	node  *mesh.Node
	repl  *repl.Replicator
	peers *repair.Peers
}

// startMesh starts this node's libp2p host, joins the mesh, and serves and
// follows replication, status and repair over it.
func startMesh(ctx context.Context, cfg Config, cur *pki.Current, st *store.Store, log *slog.Logger) (*meshed, error) {
	n, err := mesh.Start(ctx, mesh.Config{Identity: cur.Get(), Current: cur, CAFile: cfg.MeshCA, Listen: cfg.MeshListen, Peers: cfg.Peers,
		MaxClockSkew: cfg.MaxClockSkew, Store: st, Logger: log})
	if err != nil {
		return nil, err
	}
	return &meshed{node: n, repl: repl.Start(n, st, log), peers: repair.NewPeers(n, st, log)}, nil
}

// Close stops replication, then leaves the mesh.
func (m *meshed) Close() error {
	m.repl.Close()
	return m.node.Close()
}
