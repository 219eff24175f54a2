package api

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/health"
	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// Server answers API calls against a node's store.
type Server struct {
	store   *store.Store
	log     *slog.Logger
	started time.Time
	limits  tables.Limits
	mux     *http.ServeMux
	node    *mesh.Node       // nil when standalone
	peers   *repair.Peers    // nil when standalone
	repl    *repl.Replicator // nil when standalone
	watch   *watchState      // the watch streams (watch.go)
	health  *health.Checker  // nil: node status shows no readiness
	repairs repairCounts
	version string // node status's version: Version unless SetVersion
	copies  copyCache
}

// copyCache remembers the copies that table lookups found, for as long as
// the catalog (the meta table's view) stays the same and the copy is open:
// a lookup in the store scans the table's catalog records and decodes their
// JSON, which cost a quarter of a put's CPU.
type copyCache struct {
	mu   sync.RWMutex
	meta *tables.Table // the meta table and its Generation the copies were found at
	gen  uint64
	m    map[string]*tables.Table
}

// lookup is s.store.Table(name), through the cache.
func (s *Server) lookup(name string) (*tables.Table, error) {
	meta, err := s.store.Table(scope.MetaTable)
	if err != nil {
		return s.store.Table(name)
	}
	gen := meta.Generation() // before the lookup: a change meanwhile makes it stale
	c := &s.copies
	c.mu.RLock()
	t := c.m[name]
	hit := t != nil && c.meta == meta && c.gen == gen && !t.Closed()
	c.mu.RUnlock()
	if hit {
		return t, nil
	}
	if t, err = s.store.Table(name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	if c.meta != meta || c.gen != gen {
		c.meta, c.gen, c.m = meta, gen, map[string]*tables.Table{}
	}
	c.m[name] = t
	c.mu.Unlock()
	return t, nil
}

// SetHealth gives node status the node's health and readiness. Call it
// before serving.
func (s *Server) SetHealth(c *health.Checker) { s.health = c }

// SetVersion sets the version node status reports (cortexd's build
// version, the one cortexd --version prints). Call it before serving.
func (s *Server) SetVersion(v string) { s.version = v }

// repairCounts count the repairs this node ran (sync repair) since it
// started, by result, and the bytes they moved.
type repairCounts struct {
	inSync, notInSync, dryRun, failed, bytes atomic.Uint64
}

// RepairStats are the repairs this node ran since it started: by result
// (in_sync, not_in_sync, dry_run, failed) and the bytes that crossed the
// network for them (digests, hashes and records).
type RepairStats struct {
	Runs  map[string]uint64
	Bytes uint64
}

// RepairStats returns the counts of the repairs this node ran.
func (s *Server) RepairStats() RepairStats {
	r := &s.repairs
	return RepairStats{Runs: map[string]uint64{"in_sync": r.inSync.Load(), "not_in_sync": r.notInSync.Load(),
		"dry_run": r.dryRun.Load(), "failed": r.failed.Load()}, Bytes: r.bytes.Load()}
}

// count adds a repair's outcome.
func (r *repairCounts) count(rep repair.Report, err error) {
	for _, m := range rep.Moved {
		r.bytes.Add(uint64(max(m.Bytes, 0)))
	}
	switch {
	case err != nil:
		r.failed.Add(1)
	case rep.DryRun:
		r.dryRun.Add(1)
	case rep.InSync:
		r.inSync.Add(1)
	default:
		r.notInSync.Add(1)
	}
}

// SetMesh tells the server about the node's mesh (for mesh peers) and its
// status and repair peers.
// Call it before serving.
func (s *Server) SetMesh(m *mesh.Node, p *repair.Peers, r *repl.Replicator) {
	s.node, s.peers, s.repl = m, p, r
}

// NewServer returns the API handler for a store. limits are the store's key
// and value limits, used to bound request bodies.
func NewServer(st *store.Store, limits tables.Limits, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	if limits.MaxKeySize <= 0 {
		limits.MaxKeySize = tables.DefaultMaxKeySize
	}
	if limits.MaxValueSize <= 0 {
		limits.MaxValueSize = tables.DefaultMaxValueSize
	}
	s := &Server{store: st, log: log, started: time.Now(), limits: limits, mux: http.NewServeMux(), version: Version}
	route(s, "node/status", s.nodeStatus)
	route(s, "mesh/peers", s.meshPeers)
	route(s, "sync/status", s.syncStatus)
	route(s, "sync/repair", s.syncRepair)
	route(s, "table/create", s.createTable)
	route(s, "table/scope", s.setScope)
	route(s, "table/set", s.setTable)
	route(s, "table/drop", s.dropTable)
	route(s, "table/list", s.listTables)
	route(s, "put", s.put)
	route(s, "get", s.get)
	route(s, "del", s.del)
	route(s, "scan", s.scan)
	route(s, "identity/add", s.addIdentity)
	route(s, "identity/list", s.listIdentities)
	route(s, "identity/remove", s.removeIdentity)
	route(s, "acl/grant", s.grant)
	route(s, "acl/revoke", s.revoke)
	route(s, "acl/list", s.listACLs)
	route(s, "node/revoke", s.revokeNode)
	route(s, "node/revocations", s.listRevocations)
	route(s, "node/forget", s.forgetNode)
	route(s, "node/forgotten", s.listForgotten)
	s.watch = newWatchState()
	s.mux.HandleFunc("/v1/watch", s.serveWatch)   // a stream, not request/response: watch.go
	s.mux.HandleFunc("/v1/stream", s.serveStream) // puts, gets and deletes in frames: stream.go
	route(s, "restore/plan", s.restorePlan)       // backups and restores: backup.go
	s.mux.HandleFunc("/v1/backup", s.serveBackup)
	s.mux.HandleFunc("/v1/restore", s.serveRestore)
	return s
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Empty is the request of calls that take no arguments.
type Empty struct{}

// route registers POST /v1/<name>: decode Req strictly from a bounded body,
// call fn, encode its result or error.
func route[Req, Resp any](s *Server, name string, fn func(context.Context, caller, *Req) (Resp, error)) {
	s.mux.HandleFunc("/v1/"+name, func(w http.ResponseWriter, r *http.Request) {
		var req Req
		if !s.decodeRequest(w, r, name, &req) {
			return
		}
		resp, err := fn(r.Context(), callerOf(r), &req)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(resp)
	})
}

func writeError(w http.ResponseWriter, err error) {
	code, status := classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := ErrorBody{Error: err.Error(), Code: code}
	var ae *Error
	if errors.As(err, &ae) && ae.Limits != nil {
		body.MaxKeySize, body.MaxValueSize = ae.Limits.MaxKeySize, ae.Limits.MaxValueSize
	}
	json.NewEncoder(w).Encode(body)
}

// caller is who made a request: the local administrator (Unix socket) or
// the identity named by a verified client certificate (mTLS listener).
type caller struct {
	identity string // empty for the local administrator
}

func callerOf(r *http.Request) caller {
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return caller{identity: r.TLS.VerifiedChains[0][0].Subject.CommonName}
	}
	return caller{}
}

// check returns an error unless the caller may do what needs perm on table.
func (s *Server) check(c caller, table string, perm store.Perm) error {
	if c.identity == "" || s.store.Allowed(c.identity, table, perm) {
		return nil
	}
	return &Error{Status: http.StatusForbidden, Code: CodeDenied, Message: deniedMessage(c.identity, table, perm)}
}

// deniedMessage says that identity may not do what needs perm on table
// ("*": every table) and the grant that would allow it, with "*" quoted so
// that the suggestion can be pasted into a shell.
func deniedMessage(identity, table string, perm store.Perm) string {
	what, arg := "table "+table, table
	if table == "*" {
		what, arg = "every table ('*')", "'*'"
	}
	return fmt.Sprintf("%s may not %s %s (ask an admin: cortex acl grant %s %s %s)", identity, perm, what, identity, arg, perm)
}

func (s *Server) nodeStatus(_ context.Context, c caller, _ *Empty) (NodeStatus, error) {
	st := NodeStatus{Node: s.store.Node(), Version: s.version, UptimeS: int64(time.Since(s.started).Seconds()),
		Mesh: s.node != nil, Tables: s.store.Held()}
	if s.node != nil {
		st.MeshAddrs, st.Replication = s.node.ListenAddrs(), s.repl.Stats()
		st.Forgotten = s.node.Forgotten()
		self, ca := s.node.Certificates()
		st.Cert, st.CA = certStatus(self), certStatus(ca)
	}
	if s.health != nil {
		ready, healthy := s.health.Ready(), s.health.Health()
		st.Ready, st.Healthy = &ready, &healthy
	}
	return st, nil
}

func certStatus(c *x509.Certificate) *CertStatus {
	in := pki.Describe(c, time.Now())
	return &CertStatus{Name: in.Name, Mesh: in.Mesh, Serial: in.Serial, Fingerprint: in.Fingerprint, NotAfter: in.NotAfter, DaysLeft: in.DaysLeft}
}

// SyncStatusRequest names the table to report on (all when empty).
type SyncStatusRequest struct {
	Table string `json:"table,omitempty"`
}

// statusTimeout bounds how long sync status waits for any one node.
const statusTimeout = 3 * time.Second

func (s *Server) syncStatus(ctx context.Context, c caller, req *SyncStatusRequest) (repair.Status, error) {
	if err := s.check(c, scope.MetaTable, store.PermAdmin); err != nil {
		return repair.Status{}, err
	}
	var names []string
	if req.Table != "" {
		if _, err := s.store.Info(req.Table); err != nil {
			return repair.Status{}, err
		}
		names = []string{req.Table}
	}
	var q repair.Querier
	if s.peers != nil {
		q = s.peers
	}
	return repair.Gather(ctx, q, s.store, names, statusTimeout)
}

// SyncRepairRequest asks for a table's repair (or, dry run, its differences).
type SyncRepairRequest struct {
	Table  string `json:"table"`
	DryRun bool   `json:"dry_run,omitempty"`
}

func (s *Server) syncRepair(ctx context.Context, c caller, req *SyncRepairRequest) (repair.Report, error) {
	if err := s.check(c, req.Table, store.PermAdmin); err != nil {
		return repair.Report{}, err
	}
	var m repair.Mesh
	if s.peers != nil {
		m = s.peers
	}
	rep, err := repair.Run(ctx, m, s.store, req.Table, req.DryRun, func(msg string) { s.log.Info("repair: "+msg, "table", req.Table) })
	s.repairs.count(rep, err)
	if err != nil {
		return rep, err
	}
	s.log.Info("repair done", "table", req.Table, "dry_run", req.DryRun, "rounds", rep.Rounds, "in_sync", rep.InSync)
	return rep, nil
}

func (s *Server) meshPeers(_ context.Context, c caller, _ *Empty) ([]mesh.PeerStatus, error) {
	if err := s.check(c, scope.MetaTable, store.PermAdmin); err != nil {
		return nil, err
	}
	if s.node == nil {
		return []mesh.PeerStatus{}, nil
	}
	return s.node.Peers(), nil
}

func (s *Server) createTable(ctx context.Context, c caller, req *CreateTableRequest) (TableInfo, error) {
	if err := s.check(c, "*", store.PermAdmin); err != nil {
		return TableInfo{}, err
	}
	sc := scope.Scope{Local: true}
	if req.Scope != nil {
		sc = *req.Scope
	}
	if _, err := s.store.Info(req.Table); errors.Is(err, store.ErrNoTable) && tables.ValidateName(req.Table, false) == nil {
		// A new, well-named table: its scope is checked (the store says
		// what is wrong with the others).
		if err := s.guardPlacement(nil, scope.TableInfo{Name: req.Table, Home: s.store.Node(), Scope: sc}, req.Overrides); err != nil {
			return TableInfo{}, err
		}
	}
	if req.TombstoneGraceMS != 0 {
		if req.TombstoneGraceMS < scope.MinTombstoneGrace.Milliseconds() || req.TombstoneGraceMS > scope.MaxTombstoneGrace.Milliseconds() {
			return TableInfo{}, fmt.Errorf("%w: tombstone grace of %d ms: it must be between 1s and 87600h", tables.ErrInvalid, req.TombstoneGraceMS)
		}
	}
	info, err := s.store.CreateTableWithGrace(ctx, req.Table, sc, req.TombstoneGraceMS)
	if err != nil {
		return TableInfo{}, err
	}
	return s.describe(info), nil
}

// setTable changes a table's tombstone grace (admin on the table; the store
// asks for its home or an admin node).
func (s *Server) setTable(ctx context.Context, c caller, req *SetTableRequest) (TableInfo, error) {
	if err := s.check(c, req.Table, store.PermAdmin); err != nil {
		return TableInfo{}, err
	}
	if req.TombstoneGraceMS < scope.MinTombstoneGrace.Milliseconds() || req.TombstoneGraceMS > scope.MaxTombstoneGrace.Milliseconds() {
		return TableInfo{}, fmt.Errorf("%w: tombstone grace of %d ms: it must be between 1s and 87600h", tables.ErrInvalid, req.TombstoneGraceMS)
	}
	info, err := s.store.SetGrace(ctx, req.Table, req.TombstoneGraceMS)
	if err != nil {
		return TableInfo{}, err
	}
	return s.describe(info), nil
}

func (s *Server) setScope(ctx context.Context, c caller, req *SetScopeRequest) (TableInfo, error) {
	if err := s.check(c, req.Table, store.PermAdmin); err != nil {
		return TableInfo{}, err
	}
	if !scope.IsSystem(req.Table) { // the store refuses those, with its own words
		current, err := s.store.Info(req.Table)
		if err != nil {
			return TableInfo{}, err
		}
		next := current
		next.Scope = req.Scope
		if err := s.guardPlacement(&current, next, req.Overrides); err != nil {
			return TableInfo{}, err
		}
	}
	info, err := s.store.SetScope(ctx, req.Table, req.Scope)
	if err != nil {
		return TableInfo{}, err
	}
	return s.describe(info), nil
}

// guardPlacement refuses a new scope that names nodes that are not members
// (unless o.AllowUnknown), or that lowers the number of copies or leaves
// no reachable holder (unless o.Confirmed).
func (s *Server) guardPlacement(current *scope.TableInfo, next scope.TableInfo, o Overrides) error {
	reachable := []string{s.store.Node()}
	if s.node != nil {
		reachable = append(reachable, s.node.Ready()...)
	}
	members := s.store.Members()
	c := scope.PlanChange(current, next, members, reachable)
	if len(c.Unknown) > 0 && !o.AllowUnknown {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf(
			"scope %s names %s, not a member of the mesh (members: %s); for a node that has not joined yet, allow it (--allow-unknown)",
			next.Scope, strings.Join(c.Unknown, ", "), strings.Join(members, ", "))}
	}
	if risk := c.Risk(); risk != "" && !o.Confirmed {
		return &Error{Status: http.StatusPreconditionFailed, Code: CodeNeedsConfirm, Message: fmt.Sprintf("table %s: %s", next.Name, risk)}
	}
	return nil
}

func (s *Server) dropTable(ctx context.Context, c caller, req *DropTableRequest) (Empty, error) {
	if err := s.check(c, req.Table, store.PermAdmin); err != nil {
		return Empty{}, err
	}
	return Empty{}, s.store.DropTable(ctx, req.Table, req.ID)
}

func (s *Server) listTables(_ context.Context, c caller, _ *Empty) ([]TableInfo, error) {
	catalog, err := s.store.Catalog()
	if err != nil {
		return nil, err
	}
	out := []TableInfo{}
	for _, info := range catalog {
		if s.check(c, info.Name, store.PermRead) == nil {
			out = append(out, s.describe(info))
		}
	}
	return out, nil
}

// describe adds this node's copy to a catalog record.
func (s *Server) describe(info scope.TableInfo) TableInfo {
	ti := TableInfo{Name: info.Name, ID: info.ID, Scope: info.Scope, Home: info.Home, Created: info.Created, System: info.System()}
	if t, ok := s.store.Copy(info); ok {
		ti.Held, ti.Draining, ti.Keys = s.store.Holds(info), !s.store.Holds(info), t.Stats().Keys
	}
	return ti
}

// table returns the local copy of a table the caller may use with perm.
// The system tables change only through their own calls (table, identity,
// acl, node), which check who may make the change and sign it.
func (s *Server) table(c caller, name string, perm store.Perm) (*tables.Table, error) {
	if err := s.check(c, name, perm); err != nil {
		return nil, err
	}
	if perm >= store.PermWrite && scope.IsSystem(name) {
		return nil, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf(
			"%s is a system table: it changes only through cortex table, identity, acl and node commands", name)}
	}
	return s.lookup(name)
}

func (s *Server) put(ctx context.Context, c caller, req *PutRequest) (WriteResult, error) {
	t, err := s.table(c, req.Table, store.PermWrite)
	if err != nil {
		return WriteResult{}, err
	}
	v, err := t.Put(ctx, req.Key, req.Value)
	return writeResult(v), err
}

func (s *Server) del(ctx context.Context, c caller, req *KeyRequest) (WriteResult, error) {
	t, err := s.table(c, req.Table, store.PermWrite)
	if err != nil {
		return WriteResult{}, err
	}
	if _, err := t.Get(req.Key); err != nil {
		return WriteResult{}, fmt.Errorf("table %s: key %q: %w", req.Table, req.Key, err)
	}
	v, err := t.Delete(ctx, req.Key)
	return writeResult(v), err
}

func (s *Server) get(_ context.Context, c caller, req *KeyRequest) (Record, error) {
	t, err := s.table(c, req.Table, store.PermRead)
	if err != nil {
		return Record{}, err
	}
	r, err := t.Get(req.Key)
	if err != nil {
		return Record{}, fmt.Errorf("table %s: key %q: %w", req.Table, req.Key, err)
	}
	return record(r), nil
}

// A scan page stops at this many records or about this many bytes.
const (
	maxScanPage  = 10_000
	maxScanBytes = 4 << 20
)

func (s *Server) scan(_ context.Context, c caller, req *ScanRequest) (ScanResult, error) {
	t, err := s.table(c, req.Table, store.PermRead)
	if err != nil {
		return ScanResult{}, err
	}
	if req.Limit < 0 {
		return ScanResult{}, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "limit must not be negative"}
	}
	limit := maxScanPage
	if req.Limit > 0 && req.Limit < limit {
		limit = req.Limit
	}
	recs, err := t.Scan(req.Prefix, req.After, limit+1)
	if err != nil {
		return ScanResult{}, err
	}
	res := ScanResult{Records: []Record{}}
	size := 0
	for i, r := range recs {
		if i == limit || size > maxScanBytes {
			res.More = req.Limit == 0 || len(res.Records) < req.Limit
			break
		}
		size += len(r.Key) + len(r.Value)
		res.Records = append(res.Records, record(r))
	}
	return res, nil
}

func (s *Server) addIdentity(ctx context.Context, c caller, req *AddIdentityRequest) (store.Identity, error) {
	if err := s.check(c, scope.IdentitiesTable, store.PermAdmin); err != nil {
		return store.Identity{}, err
	}
	id := store.Identity{Name: req.Name, Kind: req.Kind}
	if id.Kind == "" {
		id.Kind = "client"
	}
	if req.CertPEM != "" {
		block, _ := pem.Decode([]byte(req.CertPEM))
		if block == nil || block.Type != "CERTIFICATE" {
			return id, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "cert_pem holds no PEM certificate"}
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return id, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "certificate: " + err.Error()}
		}
		if cert.Subject.CommonName != req.Name {
			return id, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("the certificate is for %q, not %q", cert.Subject.CommonName, req.Name)}
		}
		id.Fingerprint = pki.Fingerprint(cert)
	}
	if err := s.store.AddIdentity(ctx, id); err != nil {
		return id, err
	}
	return s.store.Identity(id.Name)
}

func (s *Server) listIdentities(_ context.Context, c caller, _ *Empty) ([]store.Identity, error) {
	if err := s.check(c, scope.IdentitiesTable, store.PermAdmin); err != nil {
		return nil, err
	}
	return s.store.Identities()
}

func (s *Server) removeIdentity(ctx context.Context, c caller, req *NameRequest) (RemoveIdentityResult, error) {
	if err := s.check(c, scope.IdentitiesTable, store.PermAdmin); err != nil {
		return RemoveIdentityResult{}, err
	}
	n, err := s.store.RemoveIdentity(ctx, req.Name)
	return RemoveIdentityResult{GrantsRemoved: n}, err
}

func (s *Server) grant(ctx context.Context, c caller, req *GrantRequest) (store.Grant, error) {
	if err := s.check(c, scope.ACLsTable, store.PermAdmin); err != nil {
		return store.Grant{}, err
	}
	perm, err := store.ParsePerm(req.Perm)
	if err != nil {
		return store.Grant{}, err
	}
	if err := s.store.GrantPerm(ctx, req.Identity, req.Table, perm); err != nil {
		return store.Grant{}, err
	}
	return store.Grant{Identity: req.Identity, Table: req.Table, Perm: perm.String()}, nil
}

func (s *Server) revoke(ctx context.Context, c caller, req *GrantRequest) (RevokeResult, error) {
	if err := s.check(c, scope.ACLsTable, store.PermAdmin); err != nil {
		return RevokeResult{}, err
	}
	perm := store.PermNone
	if req.Perm != "" {
		var err error
		if perm, err = store.ParsePerm(req.Perm); err != nil {
			return RevokeResult{}, err
		}
	}
	removed, err := s.store.RevokePerm(ctx, req.Identity, req.Table, perm)
	return RevokeResult{Removed: removed}, err
}

func (s *Server) listACLs(_ context.Context, c caller, _ *Empty) ([]store.Grant, error) {
	if err := s.check(c, scope.ACLsTable, store.PermAdmin); err != nil {
		return nil, err
	}
	return s.store.Grants()
}

// RevokeRequest names a node or a certificate fingerprint to revoke.
type RevokeRequest struct {
	Target string `json:"target"`
}

func (s *Server) revokeNode(ctx context.Context, c caller, req *RevokeRequest) (store.Revocation, error) {
	if err := s.check(c, scope.MetaTable, store.PermAdmin); err != nil {
		return store.Revocation{}, err
	}
	return s.store.Revoke(ctx, req.Target)
}

func (s *Server) listRevocations(_ context.Context, c caller, _ *Empty) ([]store.Revocation, error) {
	if err := s.check(c, scope.MetaTable, store.PermAdmin); err != nil {
		return nil, err
	}
	return s.store.Revocations()
}

// ForgetRequest names a node to forget; DryRun only says what it would do.
type ForgetRequest struct {
	Node   string `json:"node"`
	DryRun bool   `json:"dry_run,omitempty"`
}

func (s *Server) forgetNode(ctx context.Context, c caller, req *ForgetRequest) (store.ForgetPlan, error) {
	if err := s.check(c, scope.MetaTable, store.PermAdmin); err != nil {
		return store.ForgetPlan{}, err
	}
	var connected []string
	if s.node != nil {
		connected = s.node.Ready()
	}
	return s.store.Forget(ctx, req.Node, connected, req.DryRun)
}

func (s *Server) listForgotten(_ context.Context, c caller, _ *Empty) ([]store.Forgot, error) {
	if err := s.check(c, scope.MetaTable, store.PermAdmin); err != nil {
		return nil, err
	}
	list, err := s.store.Forgotten()
	if list == nil {
		list = []store.Forgot{}
	}
	return list, err
}
