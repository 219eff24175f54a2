package tables

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// ErrNoTable is wrapped by errors about a table the catalog does not have.
var ErrNoTable = errors.New("no such table")

// ErrExists is wrapped by errors about creating what already exists.
var ErrExists = errors.New("already exists")

// ErrNotHeld is wrapped when a table exists but this node holds no copy.
var ErrNotHeld = errors.New("table not held on this node")

// StoreOptions configure a node's store.
type StoreOptions struct {
	// Dir is the node's data directory; copies live in Dir/tables.
	Dir string
	// Node is this node's name.
	Node string
	// Table is the template for every copy (Name, Node, Clock are set per copy).
	Table Options
	// Logger receives the store's notices (default slog.Default()).
	Logger *slog.Logger
}

// Store is a node's set of table copies: the system tables and the copies
// the catalog says this node holds. It keeps the open copies matching the
// catalog (Reconcile), whoever changed the catalog. Safe for concurrent use.
type Store struct {
	opts  StoreOptions
	clock *Clock
	log   *slog.Logger

	meta, idents, acls *Table

	mu      sync.Mutex // guards copies and changed, and serialises Reconcile
	copies  map[string]held
	changed chan struct{} // closed and replaced after every Reconcile
}

type held struct {
	info  TableInfo
	table *Table
}

// OpenStore opens the system tables (creating them on first start) and every
// copy the catalog says this node holds.
func OpenStore(opts StoreOptions) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := ValidateNodeName(opts.Node); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, clock: opts.Table.Clock, log: opts.Logger, copies: map[string]held{}, changed: make(chan struct{})}
	if s.clock == nil {
		s.clock = NewClock(nil)
	}
	for _, name := range SystemTables {
		info := systemInfo(name)
		t, err := s.openCopy(info)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.copies[name] = held{info, t}
	}
	s.meta, s.idents, s.acls = s.copies[MetaTable].table, s.copies[IdentitiesTable].table, s.copies[ACLsTable].table
	if err := s.Reconcile(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Node is this node's name.
func (s *Store) Node() string { return s.opts.Node }

// Clock is the node's hybrid logical clock.
func (s *Store) Clock() *Clock { return s.clock }

func (s *Store) openCopy(info TableInfo) (*Table, error) {
	o := s.opts.Table
	o.Name, o.Node, o.Clock, o.Logger = info.Name, s.opts.Node, s.clock, s.log
	return Open(filepath.Join(s.opts.Dir, "tables", info.Dir()), o)
}

// Catalog returns every table's record, system tables first, then by name.
func (s *Store) Catalog() ([]TableInfo, error) {
	out := make([]TableInfo, 0, len(SystemTables))
	for _, name := range SystemTables {
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

// Info returns the catalog record of a table.
func (s *Store) Info(name string) (TableInfo, error) {
	if IsSystem(name) {
		return systemInfo(name), nil
	}
	r, err := s.meta.Get(catalogKey(name))
	if errors.Is(err, ErrNotFound) {
		return TableInfo{}, fmt.Errorf("%w: %s", ErrNoTable, name)
	}
	if err != nil {
		return TableInfo{}, err
	}
	return decodeTableInfo(r)
}

// Table returns this node's copy of a table. A table that exists but is not
// held here is an ErrNotHeld error naming the nodes its scope selects.
func (s *Store) Table(name string) (*Table, error) {
	s.mu.Lock()
	h, ok := s.copies[name]
	s.mu.Unlock()
	if ok {
		return h.table, nil
	}
	info, err := s.Info(name)
	if err != nil {
		return nil, err
	}
	where := info.Scope.String()
	if info.Scope.Local {
		where = info.Home
	}
	return nil, fmt.Errorf("%w: %s is held on %s (scope %s)", ErrNotHeld, name, where, info.Scope)
}

// CreateTable adds a table to the catalog with this node as its home and
// opens this node's copy if the scope selects it.
func (s *Store) CreateTable(ctx context.Context, name string, scope Scope) (TableInfo, error) {
	if err := ValidateName(name, false); err != nil {
		return TableInfo{}, err
	}
	if _, err := s.Info(name); err == nil {
		return TableInfo{}, fmt.Errorf("%w: table %s", ErrExists, name)
	} else if !errors.Is(err, ErrNoTable) {
		return TableInfo{}, err
	}
	var id [8]byte
	rand.Read(id[:])
	info := TableInfo{Name: name, ID: hex.EncodeToString(id[:]), Scope: scope, Home: s.opts.Node,
		Created: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.putInfo(ctx, info); err != nil {
		return TableInfo{}, err
	}
	return info, s.Reconcile()
}

// SetScope changes a table's scope.
func (s *Store) SetScope(ctx context.Context, name string, scope Scope) (TableInfo, error) {
	if IsSystem(name) {
		return TableInfo{}, fmt.Errorf("%w: the scope of system table %s cannot change", ErrInvalid, name)
	}
	info, err := s.Info(name)
	if err != nil {
		return TableInfo{}, err
	}
	info.Scope = scope
	if err := s.putInfo(ctx, info); err != nil {
		return TableInfo{}, err
	}
	return info, s.Reconcile()
}

// DropTable removes a table from the catalog and this node's copy of it.
func (s *Store) DropTable(ctx context.Context, name string) error {
	if IsSystem(name) {
		return fmt.Errorf("%w: system table %s cannot be dropped", ErrInvalid, name)
	}
	if _, err := s.Info(name); err != nil {
		return err
	}
	if _, err := s.meta.Delete(ctx, catalogKey(name)); err != nil {
		return err
	}
	return s.Reconcile()
}

func (s *Store) putInfo(ctx context.Context, info TableInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = s.meta.Put(ctx, catalogKey(info.Name), b)
	return err
}

// Reconcile makes the open copies match the catalog: it opens a copy of
// every table whose scope selects this node and closes and removes copies of
// tables that were dropped. Copy directories of other tables are left alone.
func (s *Store) Reconcile() error {
	catalog, err := s.Catalog()
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		close(s.changed)
		s.changed = make(chan struct{})
	}()
	want, listed := map[string]TableInfo{}, map[string]TableInfo{}
	for _, info := range catalog {
		listed[info.Name] = info
		if info.System() || info.Scope.Includes(s.opts.Node, info.Home) {
			want[info.Name] = info
		}
	}
	var errs []error
	for name, h := range s.copies {
		if info, ok := want[name]; ok && info.ID == h.info.ID {
			s.copies[name] = held{info, h.table}
			continue
		}
		if err := h.table.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(s.copies, name)
		if cur, ok := listed[name]; ok && cur.ID == h.info.ID {
			// The scope no longer selects this node: the copy is closed but
			// its files stay until placement has handed its data off.
			s.log.Info("closed table copy outside its scope", "table", name, "scope", cur.Scope.String())
			continue
		}
		if err := os.RemoveAll(h.table.Dir()); err != nil {
			errs = append(errs, err)
		}
		s.log.Info("dropped table copy", "table", name, "id", h.info.ID)
	}
	for name, info := range want {
		if _, ok := s.copies[name]; ok {
			continue
		}
		t, err := s.openCopy(info)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.copies[name] = held{info, t}
	}
	return errors.Join(errs...)
}

// Changed returns a channel that is closed after the next Reconcile: the
// open copies or their catalog records may have changed.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// HeldInfo returns the catalog records of the tables this node holds.
func (s *Store) HeldInfo() []TableInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]TableInfo, 0, len(s.copies))
	for _, h := range s.copies {
		out = append(out, h.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Held lists the names of the tables this node holds a copy of, sorted.
func (s *Store) Held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.copies))
	for name := range s.copies {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// Close closes every copy, finishing the writes they accepted.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for name, h := range s.copies {
		if err := h.table.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(s.copies, name)
	}
	return errors.Join(errs...)
}
