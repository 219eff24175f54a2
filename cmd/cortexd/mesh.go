package main

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"os"

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
// incarnation is the data directory's id (dataDir.incarnation).
func startMesh(ctx context.Context, cfg Config, cur *pki.Current, st *store.Store, incarnation string, log *slog.Logger) (*meshed, error) {
	n, err := mesh.Start(ctx, mesh.Config{Identity: cur.Get(), Current: cur, CAFile: cfg.MeshCA, Listen: cfg.MeshListen, Peers: cfg.Peers,
		MaxClockSkew: cfg.MaxClockSkew, Store: st, Logger: log, Incarnation: incarnation})
	if err != nil {
		return nil, err
	}
	return &meshed{node: n, repl: repl.Start(n, st, log), peers: repair.NewPeers(n, st, log)}, nil
}

// meshPeers is the mesh as the readiness check asks it: the peers
// connected now, and their copies' state.
type meshPeers struct {
	*mesh.Node
	*repair.Peers
}

// loadCACert reads the mesh CA's certificate (its expiry is a metric).
func loadCACert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load mesh CA: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("load mesh CA: %s holds no PEM certificate", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load mesh CA %s: %w", path, err)
	}
	return c, nil
}

// Close stops replication, then leaves the mesh.
func (m *meshed) Close() error {
	m.repl.Close()
	return m.node.Close()
}
