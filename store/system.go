package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// This node's changes to the system tables: each is checked with Authorize
// as this node (so the local socket has this node's rights, no more) and
// signed by the table's Sign hook once its version is stamped. Changes from
// peers are checked by the Admit hook: a valid proof by a node certificate
// of the mesh CA, Authorize, and the revocation list.

// putSystem sets key in a system table as this node.
func (s *Store) putSystem(ctx context.Context, t *tables.Table, table string, key, value []byte) error {
	e := wal.Entry{Op: wal.OpPut, Key: key, Value: value, Version: wal.Version{Origin: s.self.Name}}
	if err := Authorize(table, &e, s.self); err != nil {
		return err
	}
	_, err := t.Put(ctx, key, value)
	return err
}

// deleteSystem deletes key from a system table as this node.
func (s *Store) deleteSystem(ctx context.Context, t *tables.Table, table string, key []byte) error {
	e := wal.Entry{Op: wal.OpDelete, Key: key, Version: wal.Version{Origin: s.self.Name}}
	if err := Authorize(table, &e, s.self); err != nil {
		return err
	}
	_, err := t.Delete(ctx, key)
	return err
}

// signer returns the Sign hook of a system table: nil when standalone.
func (s *Store) signer(table string) func(*wal.Entry) []byte {
	if s.opts.Identity == nil {
		return nil
	}
	return func(e *wal.Entry) []byte {
		if err := Sign(s.ident.Load(), table, e); err != nil { // the key was checked at start: never
			s.log.Error("signing a system-table change", "table", table, "err", err)
		}
		return e.Proof
	}
}

// admitter returns the Admit hook of a system table.
func (s *Store) admitter(table string) func(*wal.Entry) error {
	return func(e *wal.Entry) error {
		if s.verifier == nil {
			return fmt.Errorf("%w: a standalone node takes no system-table changes from peers", ErrDenied)
		}
		at, _ := tables.HLCTime(e.Version.HLC)
		signer, err := s.verifier.Verify(e.Proof, changeMessage(table, e), at)
		if err != nil {
			return err
		}
		if err := Authorize(table, e, signer); err != nil {
			return err
		}
		if since, ok := s.revokedSince(signer.Name, signer.Fingerprint); ok && e.Version.HLC >= since {
			return fmt.Errorf("%w: %s's certificate %s is revoked", ErrDenied, signer.Name, signer.Fingerprint)
		}
		if table == scope.MetaTable && e.Op == wal.OpPut && strings.HasPrefix(string(e.Key), "node/") {
			// Authorize decoded it: the membership record of a forgotten
			// incarnation does not put the node back.
			if m, err := DecodeMember(e.Value); err == nil {
				if f, ok := s.RefusesPeer(m.Node, m.Incarnation); ok {
					return fmt.Errorf("%w: membership record of %s: %s", ErrDenied, m.Node, f.Message())
				}
			}
		}
		return nil
	}
}

// resign signs, as this node's own changes, the system records written
// without a proof (by this node while it ran standalone, or by an earlier
// version) that this node may make, so that peers take them; the others
// are left as they are and listed in the log. A re-signed record keeps its
// place in time: its version is its old timestamp plus one, so any change
// the mesh made to it since (a delete, say) still wins over it. An admin
// node also moves catalog records from an earlier version's key to
// table/NAME/ID (the same way).
func (s *Store) resign(ctx context.Context) error {
	for _, st := range []struct {
		name string
		t    *tables.Table
	}{{scope.MetaTable, s.meta}, {scope.IdentitiesTable, s.idents}, {scope.ACLsTable, s.acls}} {
		recs, err := st.t.ScanAll(nil, nil, 0)
		if err != nil {
			return err
		}
		var left []string
		var signed []wal.Entry
		for _, r := range recs {
			if len(r.Proof) > 0 {
				continue
			}
			e := r.Entry()
			e.Version = wal.Version{HLC: r.Version.HLC + 1, Origin: s.self.Name}
			if st.t == s.meta && !r.Deleted && isLegacyTableKey(string(r.Key)) && s.self.Role == pki.RoleAdmin {
				info, err := decodeTableInfo(r)
				if err != nil {
					left = append(left, string(r.Key))
					continue
				}
				gone := wal.Entry{Op: wal.OpDelete, Key: r.Key, Version: e.Version}
				e.Key = tableKey(info.Name, info.ID)
				if err := Sign(s.opts.Identity, st.name, &gone); err != nil {
					return err
				}
				signed = append(signed, gone)
			}
			if Authorize(st.name, &e, s.self) != nil {
				left = append(left, string(r.Key))
				continue
			}
			if err := Sign(s.opts.Identity, st.name, &e); err != nil {
				return err
			}
			signed = append(signed, e)
		}
		if len(signed) > 0 {
			if _, err := st.t.Apply(ctx, signed); err != nil {
				return fmt.Errorf("re-signing %s: %w", st.name, err)
			}
		}
		if len(left) > 0 {
			s.log.Warn("system records written without a certificate that this node may not sign: they stay on this node only; make them again on an admin node",
				"table", st.name, "records", len(left), "first", left[0])
		}
	}
	return nil
}

// isLegacyTableKey reports whether key is an earlier version's catalog key
// (table/NAME).
func isLegacyTableKey(key string) bool {
	name, ok := strings.CutPrefix(key, "table/")
	return ok && name != "" && !strings.Contains(name, "/")
}
