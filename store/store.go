// Package store owns a node's set of table copies: the system tables, the
// catalog (cortex_meta) and the copies it says this node holds, opened,
// handed off and deleted as the catalog changes, and the identities and ACLs
// that decide what an RPC client may do.
package store

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

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// ErrNoTable is wrapped by errors about a table the catalog does not have.
var ErrNoTable = errors.New("no such table")

// ErrExists is wrapped by errors about creating what already exists.
var ErrExists = errors.New("already exists")

// ErrNotHeld is wrapped when a table exists but this node holds no copy.
var ErrNotHeld = errors.New("table not held on this node")

// Options configure a node's store.
type Options struct {
	// Dir is the node's data directory; copies live in Dir/tables.
	Dir string
	// Node is this node's name.
	Node string
	// tables.Table is the template for every copy (Name, Node, tables.Clock are set per copy).
	Table tables.Options
	// Logger receives the store's notices (default slog.Default()).
	Logger *slog.Logger
	// CanDrop decides when a copy outside its table's scope has been handed
	// off and may be deleted (package scope provides it). Without it such
	// copies are kept.
	CanDrop func(t scope.TableInfo, self string, lastOffset uint64, acks map[string]uint64) (by string, ok bool)
}

// Store is a node's set of table copies: the system tables and the copies
// the catalog says this node holds. It keeps the open copies matching the
// catalog (Reconcile), whoever changed the catalog. Safe for concurrent use.
type Store struct {
	opts  Options
	clock *tables.Clock
	log   *slog.Logger

	meta, idents, acls *tables.Table

	mu       sync.Mutex // guards copies, draining and changed, and serialises Reconcile
	copies   map[string]held
	draining map[string]held // copies outside their scope, kept until handed off
	changed  chan struct{}   // closed and replaced after every Reconcile
}

type held struct {
	info  scope.TableInfo
	table *tables.Table
}

// Open opens the system tables (creating them on first start) and every
// copy the catalog says this node holds.
func Open(opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if err := scope.ValidateNodeName(opts.Node); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, clock: opts.Table.Clock, log: opts.Logger, copies: map[string]held{}, draining: map[string]held{}, changed: make(chan struct{})}
	if s.clock == nil {
		s.clock = tables.NewClock(nil)
	}
	for _, name := range scope.SystemTables {
		info := systemInfo(name)
		t, err := s.openCopy(info)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.copies[name] = held{info, t}
	}
	s.meta, s.idents, s.acls = s.copies[scope.MetaTable].table, s.copies[scope.IdentitiesTable].table, s.copies[scope.ACLsTable].table
	if err := s.Reconcile(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Node is this node's name.
func (s *Store) Node() string { return s.opts.Node }

// tables.Clock is the node's hybrid logical clock.
func (s *Store) Clock() *tables.Clock { return s.clock }

func (s *Store) openCopy(info scope.TableInfo) (*tables.Table, error) {
	o := s.opts.Table
	o.Name, o.Node, o.Clock, o.Logger = info.Name, s.opts.Node, s.clock, s.log
	return tables.Open(s.copyDir(info), o)
}

func (s *Store) copyDir(info scope.TableInfo) string {
	return filepath.Join(s.opts.Dir, "tables", info.Dir())
}

// Catalog returns every table's record, system tables first, then by name.
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

// Info returns the catalog record of a table.
func (s *Store) Info(name string) (scope.TableInfo, error) {
	if scope.IsSystem(name) {
		return systemInfo(name), nil
	}
	r, err := s.meta.Get(catalogKey(name))
	if errors.Is(err, tables.ErrNotFound) {
		return scope.TableInfo{}, fmt.Errorf("%w: %s", ErrNoTable, name)
	}
	if err != nil {
		return scope.TableInfo{}, err
	}
	return decodeTableInfo(r)
}

// tables.Table returns this node's copy of a table. A table that exists but is not
// held here is an ErrNotHeld error naming the nodes its scope selects.
func (s *Store) Table(name string) (*tables.Table, error) {
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
func (s *Store) CreateTable(ctx context.Context, name string, sc scope.Scope) (scope.TableInfo, error) {
	if err := tables.ValidateName(name, false); err != nil {
		return scope.TableInfo{}, err
	}
	if _, err := s.Info(name); err == nil {
		return scope.TableInfo{}, fmt.Errorf("%w: table %s", ErrExists, name)
	} else if !errors.Is(err, ErrNoTable) {
		return scope.TableInfo{}, err
	}
	var id [8]byte
	rand.Read(id[:])
	info := scope.TableInfo{Name: name, ID: hex.EncodeToString(id[:]), Scope: sc, Home: s.opts.Node,
		Created: time.Now().UTC().Truncate(time.Millisecond)}
	if err := s.putInfo(ctx, info); err != nil {
		return scope.TableInfo{}, err
	}
	return info, s.Reconcile()
}

// SetScope changes a table's scope.
func (s *Store) SetScope(ctx context.Context, name string, sc scope.Scope) (scope.TableInfo, error) {
	if scope.IsSystem(name) {
		return scope.TableInfo{}, fmt.Errorf("%w: the scope of system table %s cannot change", tables.ErrInvalid, name)
	}
	info, err := s.Info(name)
	if err != nil {
		return scope.TableInfo{}, err
	}
	info.Scope = sc
	if err := s.putInfo(ctx, info); err != nil {
		return scope.TableInfo{}, err
	}
	return info, s.Reconcile()
}

// DropTable removes a table from the catalog and this node's copy of it.
func (s *Store) DropTable(ctx context.Context, name string) error {
	if scope.IsSystem(name) {
		return fmt.Errorf("%w: system table %s cannot be dropped", tables.ErrInvalid, name)
	}
	if _, err := s.Info(name); err != nil {
		return err
	}
	if _, err := s.meta.Delete(ctx, catalogKey(name)); err != nil {
		return err
	}
	return s.Reconcile()
}

func (s *Store) putInfo(ctx context.Context, info scope.TableInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return err
	}
	_, err = s.meta.Put(ctx, catalogKey(info.Name), b)
	return err
}

// Reconcile makes the open copies match the catalog. It opens a copy of
// every table whose scope selects this node. A copy whose scope no longer
// selects this node is not deleted at once: it keeps serving its peers
// (Draining) until CanDrop says a node that keeps the table has every entry
// of it; then it is deleted. The copy of a dropped (or re-created) table is
// deleted at once.
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
	listed := map[string]scope.TableInfo{}
	for _, info := range catalog {
		listed[info.Name] = info
	}
	var errs []error
	for name, h := range s.copies {
		info, ok := listed[name]
		switch {
		case ok && info.ID == h.info.ID && scope.Holds(info, s.opts.Node):
			s.copies[name] = held{info, h.table}
		case ok && info.ID == h.info.ID:
			delete(s.copies, name)
			s.draining[name] = held{info, h.table}
			s.log.Info("table scope no longer selects this node: handing the copy off before deleting it", "table", name, "scope", info.Scope.String())
		default:
			delete(s.copies, name)
			errs = append(errs, s.remove(h, "dropped"))
		}
	}
	for name, h := range s.draining {
		info, ok := listed[name]
		switch {
		case !ok || info.ID != h.info.ID:
			delete(s.draining, name)
			errs = append(errs, s.remove(h, "dropped"))
		case scope.Holds(info, s.opts.Node):
			delete(s.draining, name)
			s.copies[name] = held{info, h.table}
		default:
			s.draining[name] = held{info, h.table}
			if s.opts.CanDrop != nil {
				errs = append(errs, s.handOff(held{info, h.table}))
			}
		}
	}
	for _, info := range catalog {
		if _, ok := s.copies[info.Name]; ok {
			continue
		}
		if _, ok := s.draining[info.Name]; ok {
			continue
		}
		holds := scope.Holds(info, s.opts.Node)
		if !holds {
			// A copy left on disk outside its scope (the node stopped while
			// handing it off) is opened to finish the hand-off.
			if _, err := os.Stat(s.copyDir(info)); err != nil {
				continue
			}
		}
		t, err := s.openCopy(info)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if holds {
			s.copies[info.Name] = held{info, t}
		} else {
			s.draining[info.Name] = held{info, t}
		}
	}
	return errors.Join(errs...)
}

// handOff deletes a draining copy once CanDrop says a node that keeps the
// table has acknowledged all of it. A request handler that took the copy
// from tables.Table before it started draining may still be writing to it: the
// copy is closed first (no write is accepted after that, the queued ones
// are written), and if a write landed after the offset CanDrop was asked
// about, the copy is reopened and kept draining until that write too is
// acknowledged. Called with s.mu held.
func (s *Store) handOff(h held) error {
	_, last := h.table.Log().Bounds()
	by, ok := s.opts.CanDrop(h.info, s.opts.Node, last, h.table.Acks())
	if !ok {
		return nil
	}
	err := h.table.Close()
	if _, after := h.table.Log().Bounds(); after != last {
		if by, ok = s.opts.CanDrop(h.info, s.opts.Node, after, h.table.Acks()); !ok {
			s.log.Info("a write reached a copy being handed off: keeping it until a holder has that write too", "table", h.info.Name, "last", after)
			t, oerr := s.openCopy(h.info)
			if oerr != nil {
				delete(s.draining, h.info.Name)
				return errors.Join(err, oerr)
			}
			s.draining[h.info.Name] = held{h.info, t}
			return err
		}
	}
	delete(s.draining, h.info.Name)
	if rerr := s.remove(h, "handed off to "+by); err == nil {
		err = rerr
	}
	return err
}

// remove closes a copy and deletes its directory.
func (s *Store) remove(h held, why string) error {
	err := h.table.Close()
	if rerr := os.RemoveAll(h.table.Dir()); err == nil {
		err = rerr
	}
	s.log.Info("deleted table copy", "table", h.info.Name, "id", h.info.ID, "why", why)
	return err
}

// Draining lists the copies this node keeps outside their scope until a
// node that holds the table has every entry of them.
func (s *Store) Draining() []scope.TableInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]scope.TableInfo, 0, len(s.draining))
	for _, h := range s.draining {
		out = append(out, h.info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Copy returns this node's copy of a table, held or draining: what this
// node can serve to peers.
func (s *Store) Copy(name string) (*tables.Table, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.copies[name]; ok {
		return h.table, true
	}
	h, ok := s.draining[name]
	return h.table, ok
}

// Changed returns a channel that is closed after the next Reconcile: the
// open copies or their catalog records may have changed.
func (s *Store) Changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// HeldInfo returns the catalog records of the tables this node holds.
func (s *Store) HeldInfo() []scope.TableInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]scope.TableInfo, 0, len(s.copies))
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
	for _, m := range []map[string]held{s.copies, s.draining} {
		for name, h := range m {
			if err := h.table.Close(); err != nil {
				errs = append(errs, err)
			}
			delete(m, name)
		}
	}
	return errors.Join(errs...)
}
