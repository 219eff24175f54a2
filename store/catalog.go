package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// The catalog is the table/ records of cortex_meta: one per table, keyed by
// name and id (table/NAME/ID). A table made under a name that another node
// also used meanwhile (two nodes cut apart, or a node squatting the name)
// never replaces the other's record: both stay, the name is in conflict
// (reads and writes by that name are refused, both copies are kept and
// replicated) until one is dropped.

// ErrConflict is wrapped by errors about a table name with several records.
var ErrConflict = errors.New("table name in conflict")

// tableKey is the key of a table's catalog record.
func tableKey(name, id string) []byte { return []byte("table/" + name + "/" + id) }

// legacyKey is the key earlier versions kept a table's record under.
func legacyKey(name string) []byte { return []byte("table/" + name) }

// parseTableInfo decodes and validates a catalog record's value.
func parseTableInfo(b []byte) (scope.TableInfo, error) {
	var ti scope.TableInfo
	if err := json.Unmarshal(b, &ti); err != nil {
		return ti, fmt.Errorf("%w: catalog record: %v", tables.ErrInvalid, err)
	}
	return ti, ti.Validate()
}

// decodeTableInfo decodes a catalog record, which must be of the table its
// key names.
func decodeTableInfo(r tables.Record) (scope.TableInfo, error) {
	ti, err := parseTableInfo(r.Value)
	if err != nil {
		return ti, fmt.Errorf("catalog record %q: %w", r.Key, err)
	}
	if k := string(r.Key); k != string(tableKey(ti.Name, ti.ID)) && k != string(legacyKey(ti.Name)) {
		return ti, fmt.Errorf("%w: catalog record %q is of table %s id %s", tables.ErrInvalid, r.Key, ti.Name, ti.ID)
	}
	return ti, nil
}

// keyOf is the key a record is kept under (an earlier version's record
// under its old key).
func (s *Store) keyOf(info scope.TableInfo) []byte {
	if r, err := s.meta.Get(legacyKey(info.Name)); err == nil {
		if old, err := parseTableInfo(r.Value); err == nil && old.ID == info.ID {
			return legacyKey(info.Name)
		}
	}
	return tableKey(info.Name, info.ID)
}

// systemInfo is the fixed catalog record of a system table.
func systemInfo(name string) scope.TableInfo {
	return scope.TableInfo{Name: name, ID: "system", Scope: scope.Scope{All: true}}
}

// Catalog returns every table's record, system tables first, then by name
// (a name in conflict has several).
func (s *Store) Catalog() ([]scope.TableInfo, error) {
	out := make([]scope.TableInfo, 0, len(scope.SystemTables))
	for _, name := range scope.SystemTables {
		out = append(out, systemInfo(name))
	}
	recs, err := s.meta.Scan([]byte("table/"), nil, 0)
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		ti, err := decodeTableInfo(r)
		if err != nil {
			s.log.Error("skipping a malformed catalog record", "err", err)
			continue
		}
		out = append(out, ti)
	}
	return out, nil
}

// claims returns the catalog records of a table name.
func (s *Store) claims(name string) ([]scope.TableInfo, error) {
	recs, err := s.meta.Scan([]byte("table/"+name+"/"), nil, 0)
	if err != nil {
		return nil, err
	}
	if r, err := s.meta.Get(legacyKey(name)); err == nil {
		recs = append(recs, r)
	}
	var out []scope.TableInfo
	for _, r := range recs {
		if ti, err := decodeTableInfo(r); err == nil && ti.Name == name {
			out = append(out, ti)
		}
	}
	return out, nil
}

// Info returns the catalog record of a table. A name with several records
// is an ErrConflict error naming them.
func (s *Store) Info(name string) (scope.TableInfo, error) {
	if scope.IsSystem(name) {
		return systemInfo(name), nil
	}
	claims, err := s.claims(name)
	switch {
	case err != nil:
		return scope.TableInfo{}, err
	case len(claims) == 0:
		return scope.TableInfo{}, fmt.Errorf("%w: %s", ErrNoTable, name)
	case len(claims) > 1:
		return scope.TableInfo{}, conflictError(name, claims)
	}
	return claims[0], nil
}

// Lookup returns the catalog record of the table of a name and id (a name
// in conflict has several tables; an id names one).
func (s *Store) Lookup(name, id string) (scope.TableInfo, error) {
	if scope.IsSystem(name) {
		if info := systemInfo(name); info.ID == id {
			return info, nil
		}
		return scope.TableInfo{}, fmt.Errorf("%w: %s with id %s", ErrNoTable, name, id)
	}
	claims, err := s.claims(name)
	if err != nil {
		return scope.TableInfo{}, err
	}
	for _, c := range claims {
		if c.ID == id {
			return c, nil
		}
	}
	return scope.TableInfo{}, fmt.Errorf("%w: %s with id %s (dropped and re-created?)", ErrNoTable, name, id)
}

// CopyFor returns this node's copy of a table (by name and id) for a peer
// to be served from or to send into (replication, repair): only if this node
// holds a copy of that very table, held or being handed off, and the
// table's scope by this node's catalog selects the peer.
func (s *Store) CopyFor(peer, name, id string) (*tables.Table, error) {
	info, err := s.Lookup(name, id)
	if err != nil {
		return nil, err
	}
	if !scope.Holds(info, peer) {
		return nil, fmt.Errorf("%s is not in the scope of table %s (%s)", peer, name, info.Scope)
	}
	t, ok := s.Copy(info)
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrNotHeld, name)
	}
	return t, nil
}

func conflictError(name string, claims []scope.TableInfo) error {
	var ids []string
	for _, c := range claims {
		ids = append(ids, fmt.Sprintf("%s (home %s)", c.ID, c.Home))
	}
	return fmt.Errorf("%w: %d tables are named %s: %s; reads and writes by name are refused until one is dropped "+
		"(on its home or an admin node: cortex table drop %s --id ID)", ErrConflict, len(claims), name, strings.Join(ids, ", "), name)
}

// CreateTable adds a table to the catalog with this node as its home and
// opens this node's copy if the scope selects it.
func (s *Store) CreateTable(ctx context.Context, name string, sc scope.Scope) (scope.TableInfo, error) {
	return s.CreateTableWithGrace(ctx, name, sc, 0)
}

// SetGrace changes a table's tombstone grace, in ms (its home or an admin
// node only).
func (s *Store) SetGrace(ctx context.Context, name string, graceMS int64) (scope.TableInfo, error) {
	if scope.IsSystem(name) {
		return scope.TableInfo{}, fmt.Errorf("%w: system table %s keeps its tombstones", tables.ErrInvalid, name)
	}
	info, err := s.Info(name)
	if err != nil {
		return scope.TableInfo{}, err
	}
	info.TombstoneGraceMS = graceMS
	if err := info.Validate(); err != nil {
		return scope.TableInfo{}, err
	}
	if err := s.putInfo(ctx, info); err != nil {
		return scope.TableInfo{}, err
	}
	return info, s.Reconcile()
}

// CreateTableWithGrace is CreateTable with a tombstone grace in ms (0: the
// default).
func (s *Store) CreateTableWithGrace(ctx context.Context, name string, sc scope.Scope, graceMS int64) (scope.TableInfo, error) {
	if err := tables.ValidateName(name, false); err != nil {
		return scope.TableInfo{}, err
	}
	if _, err := s.Info(name); err == nil || errors.Is(err, ErrConflict) {
		return scope.TableInfo{}, fmt.Errorf("%w: table %s", ErrExists, name)
	} else if !errors.Is(err, ErrNoTable) {
		return scope.TableInfo{}, err
	}
	info := scope.TableInfo{Name: name, ID: scope.NewTableID(s.opts.Node), Scope: sc, Home: s.opts.Node,
		Created: time.Now().UTC().Truncate(time.Millisecond), TombstoneGraceMS: graceMS}
	if err := info.Validate(); err != nil {
		return scope.TableInfo{}, err
	}
	if err := s.putInfo(ctx, info); err != nil {
		return scope.TableInfo{}, err
	}
	return info, s.Reconcile()
}

// SetScope changes a table's scope (its home or an admin node only). The
// previous scope is kept in the record, so that the nodes it leaves out may
// hand their copies off.
func (s *Store) SetScope(ctx context.Context, name string, sc scope.Scope) (_ scope.TableInfo, err error) {
	if scope.IsSystem(name) {
		return scope.TableInfo{}, fmt.Errorf("%w: the scope of system table %s cannot change", tables.ErrInvalid, name)
	}
	info, err := s.Info(name)
	if err != nil {
		return scope.TableInfo{}, err
	}
	if !slices.Equal(info.Scope.Nodes, sc.Nodes) || info.Scope.All != sc.All || info.Scope.Local != sc.Local {
		// A copy here that the new scope leaves out stops taking local
		// writes first: every write it took is then before PrevUntil,
		// which its keepers take from it.
		s.mu.Lock()
		h, held := s.copies[info.Dir()]
		s.mu.Unlock()
		if held && !sc.Includes(s.opts.Node, info.Home) {
			if err := s.fence(h.table); err != nil {
				return scope.TableInfo{}, err
			}
			defer func() {
				if err != nil {
					h.table.Unfence()
				}
			}()
		}
		prev := info.Scope
		info.Prev, info.PrevUntil = &prev, s.clock.Now()
	}
	info.Scope = sc
	if err = s.putInfo(ctx, info); err != nil {
		return scope.TableInfo{}, err
	}
	return info, s.Reconcile()
}

// DropTable removes a table from the catalog (its home or an admin node
// only); every copy of it is deleted. id picks one of the tables of a name
// in conflict; empty, the name must have one.
func (s *Store) DropTable(ctx context.Context, name, id string) error {
	if scope.IsSystem(name) {
		return fmt.Errorf("%w: system table %s cannot be dropped", tables.ErrInvalid, name)
	}
	claims, err := s.claims(name)
	if err != nil {
		return err
	}
	if id != "" {
		claims = slices.DeleteFunc(claims, func(c scope.TableInfo) bool { return c.ID != id })
	}
	switch {
	case len(claims) == 0 && id != "":
		return fmt.Errorf("%w: %s with id %s", ErrNoTable, name, id)
	case len(claims) == 0:
		return fmt.Errorf("%w: %s", ErrNoTable, name)
	case len(claims) > 1:
		return conflictError(name, claims)
	}
	// A table of an earlier version's key is dropped under both keys, so
	// that a node that still has the old record and moves it to the new key
	// later (resign) does not bring the table back.
	keys := []string{string(s.keyOf(claims[0])), string(tableKey(name, claims[0].ID))}
	for _, key := range slices.Compact(keys) {
		if err := s.deleteSystem(ctx, s.meta, scope.MetaTable, []byte(key)); err != nil {
			return err
		}
	}
	return s.Reconcile()
}

// putInfo writes a table's record under table/NAME/ID (and removes an
// earlier version's record of the same table).
func (s *Store) putInfo(ctx context.Context, info scope.TableInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	old := s.keyOf(info)
	if err := s.putSystem(ctx, s.meta, scope.MetaTable, tableKey(info.Name, info.ID), b); err != nil {
		return err
	}
	if string(old) != string(tableKey(info.Name, info.ID)) {
		return s.deleteSystem(ctx, s.meta, scope.MetaTable, old)
	}
	return nil
}
