package pki

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"time"
)

// Current is the identity a node uses now: the mesh security transport and
// the RPC listener read it for every new connection, and a reload (SIGHUP)
// replaces it whole. Connections already up keep the certificate they were
// made with. Safe for concurrent use.
type Current struct{ p atomic.Pointer[Identity] }

// NewCurrent returns a Current holding id.
func NewCurrent(id *Identity) *Current {
	c := &Current{}
	c.p.Store(id)
	return c
}

// Get returns the identity in use.
func (c *Current) Get() *Identity { return c.p.Load() }

// Set replaces the identity in use (check it first with CheckRenewal).
func (c *Current) Set(id *Identity) { c.p.Store(id) }

// TLS returns the certificate to present on a new connection.
func (c *Current) TLS() *tls.Certificate { return &c.p.Load().TLS }

// CheckRenewal decides whether next may replace cur as a running node's
// identity: it must be a node certificate of the same name, signed by the
// mesh CA (roots) and valid at now, with the same key (the node's mesh peer
// ID is derived from it, and peers know the node by it) and the same role
// (what the node may do is settled when it starts). cortex cert renew makes
// such a certificate. The error says which check failed.
func CheckRenewal(cur, next *Identity, roots *x509.CertPool, now time.Time) error {
	if next.Kind != KindNode {
		return fmt.Errorf("it is a %s certificate, not a node certificate", next.Kind)
	}
	if next.Name != cur.Name {
		return fmt.Errorf("it is the certificate of node %q, and this node is %q", next.Name, cur.Name)
	}
	if _, err := Verify([][]byte{next.Leaf.Raw}, roots, KindNode, now); err != nil {
		return err
	}
	curKey, ok1 := cur.Leaf.PublicKey.(*ecdsa.PublicKey)
	nextKey, ok2 := next.Leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok1 || !ok2 || !curKey.Equal(nextKey) {
		return fmt.Errorf("it has another key than the running certificate (the node's mesh peer ID is derived from its key): renew the certificate keeping its key (cortex cert renew), or restart cortexd to take a new key")
	}
	if next.Role != cur.Role {
		return fmt.Errorf("its role is %s, and this node runs as %s: restart cortexd to take a new role", next.Role, cur.Role)
	}
	return nil
}
