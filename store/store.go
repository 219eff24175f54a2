// Package store owns a node's set of table copies: the system tables, the
// catalog (cortex_meta) and the copies it says this node holds, opened,
// handed off and deleted as the catalog changes, and the identities and ACLs
// that decide what an RPC client may do.
package store

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
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
	// Table is the template for every copy (Name, Node, Clock, Admit and
	// Sign are set per copy).
	Table tables.Options
	// Logger receives the store's notices (default slog.Default()).
	Logger *slog.Logger
	// Identity and CA are this node's certificate and the mesh CA, in mesh
	// mode: the node signs its changes to the system tables and checks
	// everyone else's. Without them (a standalone node) the node is its own
	// admin and takes no system-table changes from peers.
	Identity *pki.Identity
	CA       *x509.CertPool
	// CanDrop decides when a copy outside its table's scope has been handed
	// off and may be deleted (default scope.CanDrop).
	CanDrop func(t scope.TableInfo, self string, lastOffset uint64, acks map[string]uint64) (by string, ok bool)
}

// Store is a node's set of table copies: the system tables and the copies
// the catalog says this node holds. It keeps the open copies matching the
// catalog (Reconcile), whoever changed the catalog. Safe for concurrent use.
type Store struct {
	opts     Options
	clock    *tables.Clock
	log      *slog.Logger
	self     pki.Signer    // this node as it signs its changes
	verifier *pki.Verifier // nil when standalone
	// ident is the certificate this node signs with now (nil when
	// standalone): opts.Identity, until SetIdentity renews it.
	ident atomic.Pointer[pki.Identity]

	meta, idents, acls *tables.Table

	reconcileMu sync.Mutex // one Reconcile at a time

	mu       sync.Mutex            // guards copies, draining, broken and changed
	copies   map[string]held       // by copy directory (scope.TableInfo.Dir)
	draining map[string]held       // copies outside their scope, kept until handed off
	broken   map[string]brokenCopy // copies that failed to open, by directory
	changed  chan struct{}         // closed and replaced after every Reconcile
}

// brokenCopy is a copy that failed to open: the rest of the node goes on,
// the table's calls get the error, and the open is retried now and then.
type brokenCopy struct {
	info scope.TableInfo
	err  error
	at   time.Time
}

// retryBroken is how often a copy that failed to open is tried again.
const retryBroken = 30 * time.Second

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
	if opts.CanDrop == nil {
		opts.CanDrop = scope.CanDrop
	}
	if err := scope.ValidateNodeName(opts.Node); err != nil {
		return nil, err
	}
	s := &Store{opts: opts, clock: opts.Table.Clock, log: opts.Logger, copies: map[string]held{}, draining: map[string]held{}, broken: map[string]brokenCopy{}, changed: make(chan struct{}),
		self: pki.Signer{Name: opts.Node, Role: pki.RoleAdmin}}
	if s.clock == nil {
		s.clock = tables.NewClock(nil)
	}
	if id := opts.Identity; id != nil {
		if id.Name != opts.Node || opts.CA == nil {
			return nil, fmt.Errorf("store: the identity of %q and the mesh CA are needed for node %q", id.Name, opts.Node)
		}
		s.self = pki.Signer{Name: id.Name, Role: id.Role, Fingerprint: pki.Fingerprint(id.Leaf)}
		s.verifier = pki.NewVerifier(opts.CA)
		s.ident.Store(id)
	}
	for _, name := range scope.SystemTables {
		info := systemInfo(name)
		t, err := s.openCopy(info)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.copies[info.Dir()] = held{info: info, table: t}
	}
	s.meta, s.idents, s.acls = s.systemTable(scope.MetaTable), s.systemTable(scope.IdentitiesTable), s.systemTable(scope.ACLsTable)
	if s.verifier != nil {
		if err := s.resign(context.Background()); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.Reconcile(); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) systemTable(name string) *tables.Table { return s.copies[systemInfo(name).Dir()].table }

// Node is this node's name.
func (s *Store) Node() string { return s.opts.Node }

// Dir is the node's data directory.
func (s *Store) Dir() string { return s.opts.Dir }

// Signer is this node as it signs its changes to the system tables; ok is
// false for a standalone node, which signs nothing.
func (s *Store) Signer() (signer pki.Signer, ok bool) {
	signer = s.self
	if id := s.ident.Load(); id != nil {
		signer.Fingerprint = pki.Fingerprint(id.Leaf)
	}
	return signer, s.verifier != nil
}

// Role is this node's role (admin when standalone).
func (s *Store) Role() pki.Role { return s.self.Role }

// Clock is the node's hybrid logical clock.
func (s *Store) Clock() *tables.Clock { return s.clock }

func (s *Store) openCopy(info scope.TableInfo) (*tables.Table, error) {
	o := s.opts.Table
	o.Name, o.Node, o.Clock, o.Logger = info.Name, s.opts.Node, s.clock, s.log
	if info.System() {
		o.Admit, o.Sign = s.admitter(info.Name), s.signer(info.Name)
		// Every node must take the same system changes, whatever its own
		// --max-key-size and --max-value-size: the log's limits apply.
		o.Limits = tables.Limits{MaxKeySize: wal.MaxKeySize, MaxValueSize: wal.MaxValueSize}
	}
	dir, err := s.copyDir(info)
	if err != nil {
		return nil, err
	}
	return tables.Open(dir, o)
}

// copyDir is the directory of a copy, always inside Dir/tables: its name is
// made of the table's name and id, which are checked (here too, not only
// when the record was admitted) before they become a path.
func (s *Store) copyDir(info scope.TableInfo) (string, error) {
	if !info.System() {
		if err := info.Validate(); err != nil {
			return "", err
		}
	}
	root := filepath.Join(s.opts.Dir, "tables")
	dir := filepath.Join(root, info.Dir())
	if filepath.Dir(dir) != root {
		return "", fmt.Errorf("%w: table %s: id %q does not make a directory name", tables.ErrInvalid, info.Name, info.ID)
	}
	return dir, nil
}

// Table returns this node's copy of a table. A table that exists but is not
// held here is an ErrNotHeld error naming the nodes its scope selects.
func (s *Store) Table(name string) (*tables.Table, error) {
	info, err := s.Info(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	h, ok := s.copies[info.Dir()]
	b, isBroken := s.broken[info.Dir()]
	s.mu.Unlock()
	if ok {
		return h.table, nil
	}
	if isBroken {
		return nil, fmt.Errorf("%w: table %s: this node's copy failed to open: %v", tables.ErrClosed, name, b.err)
	}
	where := info.Scope.String()
	if info.Scope.Local {
		where = info.Home
	}
	return nil, fmt.Errorf("%w: %s is held on %s (scope %s)", ErrNotHeld, name, where, info.Scope)
}

// Reconcile makes the open copies match the catalog: it asks Plan what to do
// and does it. Opening, closing and deleting copies happen outside the lock
// that guards the set of copies, so that reads and writes of other tables go
// on meanwhile; Reconciles run one at a time. A copy whose scope no longer
// selects this node keeps serving its peers (Draining) until CanDrop says a
// node that keeps the table has every entry of it; then it is deleted. The
// copy of a dropped (or re-created) table is deleted at once.
func (s *Store) Reconcile() error {
	s.reconcileMu.Lock()
	defer s.reconcileMu.Unlock()
	defer func() {
		s.mu.Lock()
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}()
	catalog, err := s.Catalog()
	if err != nil {
		return err
	}
	have := Copies{Held: map[string]scope.TableInfo{}, Draining: map[string]scope.TableInfo{}, OnDisk: map[string]bool{}}
	s.mu.Lock()
	for dir, h := range s.copies {
		have.Held[dir] = h.info
	}
	for dir, h := range s.draining {
		have.Draining[dir] = h.info
	}
	listed := map[string]bool{}
	for _, info := range catalog {
		listed[info.Dir()] = true
	}
	for dir := range s.broken {
		if !listed[dir] {
			delete(s.broken, dir)
		}
	}
	s.mu.Unlock()
	for _, info := range catalog {
		_, h := have.Held[info.Dir()]
		_, d := have.Draining[info.Dir()]
		if dir, err := s.copyDir(info); err == nil && !h && !d {
			_, serr := os.Stat(dir)
			have.OnDisk[info.Dir()] = serr == nil
		}
	}
	var errs []error
	for _, a := range Plan(s.opts.Node, catalog, have) {
		if err := s.do(a); err != nil {
			errs = append(errs, err)
		}
	}
	if err := s.applyHorizons(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// do carries out one step of a plan.
func (s *Store) do(a Action) error {
	dir := a.Info.Dir()
	s.mu.Lock()
	switch a.Step {
	case StepKeep:
		s.copies[dir] = held{info: a.Info, table: s.copies[dir].table}
	case StepDrain:
		t := s.copies[dir].table
		s.mu.Unlock()
		err := s.fence(t) // Table still gives the copy meanwhile: its writes fail
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			return err
		}
		s.draining[dir] = held{a.Info, t}
		delete(s.copies, dir)
		s.log.Info("table scope no longer selects this node: handing the copy off before deleting it", "table", a.Info.Name, "scope", a.Info.Scope.String())
		return nil
	case StepUndrain:
		t := s.draining[dir].table
		t.Unfence()
		s.copies[dir] = held{info: a.Info, table: t}
		delete(s.draining, dir)
	case StepHandOff:
		h := held{a.Info, s.draining[dir].table}
		s.draining[dir] = h
		s.mu.Unlock()
		return s.handOff(h)
	case StepRemove:
		h, ok := s.copies[dir]
		if !ok {
			h = s.draining[dir]
		}
		delete(s.copies, dir)
		delete(s.draining, dir)
		s.mu.Unlock()
		return s.remove(h, "dropped")
	case StepOpen:
		if b, ok := s.broken[dir]; ok && time.Since(b.at) < retryBroken {
			break
		}
		s.mu.Unlock()
		t, err := s.openCopy(a.Info)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			// One copy that does not open does not stop the node.
			s.log.Error("a table copy failed to open: the rest of the node goes on; retrying every 30 s", "table", a.Info.Name, "err", err)
			s.broken[dir] = brokenCopy{a.Info, err, time.Now()}
			return nil
		}
		delete(s.broken, dir)
		if scope.Holds(a.Info, s.opts.Node) {
			s.copies[dir] = held{info: a.Info, table: t}
			return nil
		}
		if err := s.fence(t); err != nil {
			t.Close()
			return err
		}
		s.draining[dir] = held{a.Info, t}
		return nil
	}
	s.mu.Unlock()
	return nil
}

// handOff deletes a draining copy once CanDrop says a node that keeps the
// table has acknowledged all of it. A request handler that took the copy
// from Table before it started draining may still be writing to it: the
// copy is closed first (no write is accepted after that, the queued ones
// are written), and if a write landed after the offset CanDrop was asked
// about, the copy is reopened and kept draining until that write too is
// acknowledged.
func (s *Store) handOff(h held) error {
	dir := h.info.Dir()
	_, last := h.table.Bounds()
	by, ok := s.opts.CanDrop(h.info, s.opts.Node, last, h.table.Acks())
	if !ok {
		return nil
	}
	err := h.table.Close()
	if _, after := h.table.Bounds(); after != last {
		if by, ok = s.opts.CanDrop(h.info, s.opts.Node, after, h.table.Acks()); !ok {
			s.log.Info("a write reached a copy being handed off: keeping it until a holder has that write too", "table", h.info.Name, "last", after)
			t, oerr := s.openCopy(h.info)
			if oerr == nil {
				if oerr = s.fence(t); oerr != nil {
					t.Close()
				}
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			if oerr != nil {
				delete(s.draining, dir)
				return errors.Join(err, oerr)
			}
			s.draining[dir] = held{h.info, t}
			return err
		}
	}
	s.mu.Lock()
	delete(s.draining, dir)
	s.mu.Unlock()
	if rerr := s.remove(h, "handed off to "+by); err == nil {
		err = rerr
	}
	return err
}

// fence stops a copy taking local writes (it is draining: its keepers take
// from it only what it wrote before the scope change), waiting at most 30 s
// for the writes in flight.
func (s *Store) fence(t *tables.Table) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := t.Fence(ctx); err != nil {
		return fmt.Errorf("table %s: stop local writes to hand the copy off: %w", t.Name(), err)
	}
	return nil
}

// remove closes a copy and deletes its directory.
func (s *Store) remove(h held, why string) error {
	err := h.table.Close()
	dir, derr := s.copyDir(h.info)
	if derr != nil || dir != h.table.Dir() { // never: the copy was opened there
		return errors.Join(err, derr, fmt.Errorf("table %s: not deleting %s", h.info.Name, h.table.Dir()))
	}
	if rerr := os.RemoveAll(dir); err == nil {
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

// Copy returns this node's copy of a table (by its catalog record), held
// or draining: what this node can serve to peers.
func (s *Store) Copy(info scope.TableInfo) (*tables.Table, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h, ok := s.copies[info.Dir()]; ok {
		return h.table, true
	}
	h, ok := s.draining[info.Dir()]
	return h.table, ok
}

// Holds reports whether this node holds a copy of the table (not draining).
func (s *Store) Holds(info scope.TableInfo) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.copies[info.Dir()]
	return ok
}

// Broken is a copy that failed to open, and why.
type Broken struct {
	Info scope.TableInfo
	Err  error
}

// Broken lists the copies that failed to open.
func (s *Store) Broken() []Broken {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Broken, 0, len(s.broken))
	for _, b := range s.broken {
		out = append(out, Broken{b.info, b.err})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Info.Name < out[j].Info.Name })
	return out
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

// Held counts the copies this node holds.
func (s *Store) Held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.copies)
}

// Close closes every copy, finishing the writes they accepted.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, m := range []map[string]held{s.copies, s.draining} {
		for dir, h := range m {
			if err := h.table.Close(); err != nil {
				errs = append(errs, err)
			}
			delete(m, dir)
		}
	}
	return errors.Join(errs...)
}
