package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Revocation is a record of the revocation list (cortex_meta key
// revoked/TARGET): a node name, which shuts out every certificate of that
// name, or a certificate's fingerprint, which shuts out that certificate.
// Changes signed by a revoked certificate with a timestamp at or after the
// revocation's are refused everywhere, and its connections are closed.
type Revocation struct {
	Target string    `json:"target"`
	By     string    `json:"by"`
	At     time.Time `json:"at"`
}

var fingerprintRE = regexp.MustCompile(`^sha256:[0-9a-f]{64}$`)

// checkTarget accepts a node name or a certificate fingerprint.
func checkTarget(target string) error {
	if fingerprintRE.MatchString(target) || scope.ValidateNodeName(target) == nil {
		return nil
	}
	return fmt.Errorf("%w: %q is neither a node name nor a certificate fingerprint (sha256:<64 hex digits>)", tables.ErrInvalid, target)
}

func revokedKey(target string) []byte { return []byte("revoked/" + target) }

func checkRevocation(target string, e *wal.Entry, put bool) error {
	if err := checkTarget(target); err != nil {
		return err
	}
	if !put {
		return nil
	}
	var r Revocation
	if err := json.Unmarshal(e.Value, &r); err != nil {
		return fmt.Errorf("%w: revocation of %s: %v", tables.ErrInvalid, target, err)
	}
	if r.Target != target {
		return fmt.Errorf("%w: revocation record %q names %q", tables.ErrInvalid, target, r.Target)
	}
	return nil
}

// Revoke adds a node name or a certificate fingerprint to the revocation
// list (an admin node only). A node cannot revoke itself.
func (s *Store) Revoke(ctx context.Context, target string) (Revocation, error) {
	if err := checkTarget(target); err != nil {
		return Revocation{}, err
	}
	if id := s.ident.Load(); target == s.opts.Node || id != nil && target == pki.Fingerprint(id.Leaf) {
		return Revocation{}, fmt.Errorf("%w: this node cannot revoke its own certificate: revoke it from another admin node", tables.ErrInvalid)
	}
	r := Revocation{Target: target, By: s.opts.Node, At: time.Now().UTC().Truncate(time.Millisecond)}
	b, _ := json.Marshal(r)
	if err := s.putSystem(ctx, s.meta, scope.MetaTable, revokedKey(target), b); err != nil {
		return Revocation{}, err
	}
	return r, s.Reconcile() // tells the mesh (Changed) to close the revoked peers
}

// Revocations lists the revocation list.
func (s *Store) Revocations() ([]Revocation, error) {
	recs, err := s.meta.Scan([]byte("revoked/"), nil, 0)
	if err != nil {
		return nil, err
	}
	out := make([]Revocation, 0, len(recs))
	for _, r := range recs {
		var v Revocation
		if json.Unmarshal(r.Value, &v) == nil {
			out = append(out, v)
		}
	}
	return out, nil
}

// Revoked reports whether a certificate (its node name and fingerprint) is
// on the revocation list: it may not connect.
func (s *Store) Revoked(name, fingerprint string) bool {
	_, ok := s.revokedSince(name, fingerprint)
	return ok
}

// revokedSince returns the earliest timestamp of a revocation that covers
// the certificate.
func (s *Store) revokedSince(name, fingerprint string) (uint64, bool) {
	var since uint64
	found := false
	for _, target := range []string{name, fingerprint} {
		r, err := s.meta.Get(revokedKey(target))
		if errors.Is(err, tables.ErrNotFound) || err != nil {
			continue
		}
		if !found || r.Version.HLC < since {
			since, found = r.Version.HLC, true
		}
	}
	return since, found
}
