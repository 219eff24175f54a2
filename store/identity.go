package store

import (
	"errors"
	"fmt"

	"github.com/cortex-mesh/cortex/pki"
)

// SetIdentity replaces the certificate this node signs its system-table
// changes with (a renewed one, on SIGHUP): it must be the same node's, with
// the same role (check it with pki.CheckRenewal first). Changes signed
// before keep the old certificate in their proofs, which stay valid: a proof
// is checked at its change's own time.
func (s *Store) SetIdentity(id *pki.Identity) error {
	cur := s.ident.Load()
	switch {
	case cur == nil:
		return errors.New("store: a standalone node has no certificate to replace")
	case id.Name != cur.Name || id.Role != cur.Role:
		return fmt.Errorf("store: the certificate of %s (%s) cannot replace that of %s (%s)", id.Name, id.Role, cur.Name, cur.Role)
	}
	s.ident.Store(id)
	return nil
}
