package main

import (
	"context"
	"log/slog"

	"github.com/cortex-mesh/cortex/p2p"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/store"
)

// startMesh starts this node's libp2p host and joins the mesh.
func startMesh(ctx context.Context, cfg Config, ident *pki.Identity, st *store.Store, log *slog.Logger) (*p2p.Node, error) {
	return p2p.Start(ctx, p2p.Config{Identity: ident, CAFile: cfg.MeshCA, Listen: cfg.MeshListen, Peers: cfg.Peers,
		MaxClockSkew: cfg.MaxClockSkew, Store: st, Logger: log})
}
