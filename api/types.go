// Package api owns cortexd's request/response protocol: HTTP/1.1 with JSON
// bodies (POST /v1/<call>), the handler that serves it over the Unix socket
// (the local administrator) and the mTLS listener (ACL-checked clients), and
// the Go client that the CLI and benchmarks use.
package api

import (
	"time"

	"github.com/cortex-mesh/cortex/health"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Version is the version cortexd reports.
const Version = "0.1.0-dev"

// TableRequest names a table.
type TableRequest struct {
	Table string `json:"table"`
}

// DropTableRequest drops a table; ID picks one of the tables of a name in
// conflict.
type DropTableRequest struct {
	Table string `json:"table"`
	ID    string `json:"id,omitempty"`
}

// CreateTableRequest creates a table; Scope defaults to local.
type CreateTableRequest struct {
	Table string       `json:"table"`
	Scope *scope.Scope `json:"scope,omitempty"`
	// TombstoneGraceMS is how long tombstones are kept at least, in ms (0:
	// 24 h).
	TombstoneGraceMS int64 `json:"tombstone_grace_ms,omitempty"`
	Overrides
}

// SetTableRequest changes a table's settings: its tombstone grace.
type SetTableRequest struct {
	Table            string `json:"table"`
	TombstoneGraceMS int64  `json:"tombstone_grace_ms"`
}

// SetScopeRequest changes a table's scope.
type SetScopeRequest struct {
	Table string      `json:"table"`
	Scope scope.Scope `json:"scope"`
	Overrides
}

// Overrides lift the checks that guard placement (scope.PlanChange):
// AllowUnknown lets a scope name nodes that are not members of the mesh
// (yet); Confirmed accepts a change that lowers the number of copies or
// leaves no holder reachable.
type Overrides struct {
	AllowUnknown bool `json:"allow_unknown,omitempty"`
	Confirmed    bool `json:"confirmed,omitempty"`
}

// TableInfo is one table as listed: its catalog record and this node's copy.
type TableInfo struct {
	Name    string      `json:"name"`
	ID      string      `json:"id"`
	Scope   scope.Scope `json:"scope"`
	Home    string      `json:"home,omitempty"`
	Created time.Time   `json:"created,omitzero"`
	System  bool        `json:"system"`
	Held    bool        `json:"held"`
	// Draining: this node keeps a copy outside the table's scope until a
	// node that holds the table has every entry of it.
	Draining bool  `json:"draining,omitempty"`
	Keys     int64 `json:"keys"`
}

// KeyRequest addresses one key. Keys and values are bytes (base64 in JSON).
type KeyRequest struct {
	Table string `json:"table"`
	Key   []byte `json:"key"`
}

// PutRequest sets a key.
type PutRequest struct {
	Table string `json:"table"`
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

// Record is a key's current value and version: its hybrid logical clock
// timestamp (a decimal string in JSON), the wall time it encodes and the
// node that made the write.
type Record struct {
	Key     []byte           `json:"key"`
	Value   []byte           `json:"value"`
	HLC     tables.Timestamp `json:"hlc"`
	HLCTime string           `json:"hlc_time"`
	Origin  string           `json:"origin"`
}

// WriteResult is the version a write was given.
type WriteResult struct {
	HLC     tables.Timestamp `json:"hlc"`
	HLCTime string           `json:"hlc_time"`
	Origin  string           `json:"origin"`
}

// writeResult is the version v as a WriteResult.
func writeResult(v wal.Version) WriteResult {
	return WriteResult{HLC: tables.Timestamp(v.HLC), HLCTime: tables.Timestamp(v.HLC).Time(), Origin: v.Origin}
}

// record is a key's record as a Record.
func record(r tables.Record) Record {
	h := tables.Timestamp(r.Version.HLC)
	return Record{Key: r.Key, Value: r.Value, HLC: h, HLCTime: h.Time(), Origin: r.Version.Origin}
}

// ScanRequest asks for live records by key order: those starting with
// Prefix, after the key After, at most Limit (0: as many as fit a page).
type ScanRequest struct {
	Table  string `json:"table"`
	Prefix []byte `json:"prefix,omitempty"`
	After  []byte `json:"after,omitempty"`
	Limit  int    `json:"limit,omitempty"`
}

// ScanResult is one page of a scan; More says a further page may exist
// (continue with After set to the last key).
type ScanResult struct {
	Records []Record `json:"records"`
	More    bool     `json:"more"`
}

// NodeStatus describes the node.
type NodeStatus struct {
	Node    string `json:"node"`
	Version string `json:"version"`
	UptimeS int64  `json:"uptime_s"`
	Mesh    bool   `json:"mesh"`
	Tables  int    `json:"tables"`
	// MeshAddrs are the HOST:PORT addresses the mesh listens on.
	MeshAddrs []string `json:"mesh_addrs,omitempty"`
	// Replication counts per table since the start: subscriptions this node
	// opened, subscribers it refused.
	Replication map[string]repl.Stats `json:"replication,omitempty"`
	// Ready is the node's readiness and Healthy its health, as /readyz and
	// /healthz answer them (absent when cortexd runs no checker).
	Ready   *health.Status `json:"ready,omitempty"`
	Healthy *health.Status `json:"healthy,omitempty"`
	// Cert and CA are, in mesh mode, the node's certificate in use (the
	// one a SIGHUP reload put in place) and the mesh CA's.
	Cert *CertStatus `json:"cert,omitempty"`
	CA   *CertStatus `json:"ca,omitempty"`
	// Forgotten is set when a peer refused this node because the mesh
	// forgot it (cortex node forget): the peer's message, which says what
	// to do.
	Forgotten string `json:"forgotten,omitempty"`
}

// CertStatus is a certificate as node status shows it.
type CertStatus struct {
	Name        string    `json:"name"`
	Mesh        string    `json:"mesh,omitempty"` // the mesh's name, if the CA has one
	Serial      string    `json:"serial"`
	Fingerprint string    `json:"fingerprint"`
	NotAfter    time.Time `json:"not_after"`
	DaysLeft    int       `json:"days_left"` // negative once expired
}

// AddIdentityRequest registers an identity. CertPEM, if set, pins the
// identity to that certificate (its name must match the CN).
type AddIdentityRequest struct {
	Name    string `json:"name"`
	Kind    string `json:"kind,omitempty"` // client (default) or node
	CertPEM string `json:"cert_pem,omitempty"`
}

// NameRequest names an identity.
type NameRequest struct {
	Name string `json:"name"`
}

// RemoveIdentityResult says how many grants went with the identity.
type RemoveIdentityResult struct {
	GrantsRemoved int `json:"grants_removed"`
}

// GrantRequest grants or revokes a permission; Table may be "*".
type GrantRequest struct {
	Identity string `json:"identity"`
	Table    string `json:"table"`
	Perm     string `json:"perm,omitempty"`
}

// RevokeResult says whether a grant was removed.
type RevokeResult struct {
	Removed bool `json:"removed"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
	// MaxKeySize and MaxValueSize are, with code too_large, the node's
	// limits on keys and values, in bytes.
	MaxKeySize   int `json:"max_key_size,omitempty"`
	MaxValueSize int `json:"max_value_size,omitempty"`
}
