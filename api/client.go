package api

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// ErrUnreachable is wrapped when the daemon cannot be reached at all.
var ErrUnreachable = errors.New("cannot reach cortexd")

// Client calls a cortexd over its Unix socket or its mTLS listener. It keeps
// connections alive and is safe for concurrent use. Over the Unix socket,
// Put, Get and Delete share one stream (stream.go) when cortexd has them.
type Client struct {
	http  *http.Client
	base  string
	where string

	socket   string // Dial's socket: streams are tried there only
	smu      sync.Mutex
	stream   *clientStream // nil until the first call on it
	noStream bool          // the daemon has no streams: JSON calls only
}

// Dial returns a client for the daemon behind a Unix socket. Nothing is
// sent until the first call.
func Dial(socket string) *Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		MaxIdleConnsPerHost: 1024,
	}
	return &Client{http: &http.Client{Transport: tr}, base: "http://cortexd/v1/", where: socket, socket: socket}
}

// DialTLS returns a client for a daemon's mTLS listener at addr.
func DialTLS(addr string, cfg *tls.Config) *Client {
	tr := &http.Transport{TLSClientConfig: cfg, MaxIdleConnsPerHost: 1024, ForceAttemptHTTP2: false}
	return &Client{http: &http.Client{Transport: tr}, base: "https://" + addr + "/v1/", where: addr}
}

// Close closes the stream and drops the idle connections. Calls in flight on
// the stream fail; the client may be used again (it reconnects).
func (c *Client) Close() {
	c.closeStream()
	c.http.CloseIdleConnections()
}

func (c *Client) call(ctx context.Context, name string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+name, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.where, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(hresp.Body)
	if err != nil {
		return fmt.Errorf("%s: read response: %w", name, err)
	}
	if hresp.StatusCode != http.StatusOK {
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
			return &Error{Status: hresp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("%s: HTTP %d: %s", name, hresp.StatusCode, bytes.TrimSpace(data))}
		}
		e := &Error{Status: hresp.StatusCode, Code: eb.Code, Message: eb.Error}
		if eb.Code == CodeTooLarge && eb.MaxKeySize > 0 && eb.MaxValueSize > 0 {
			e.Limits = &tables.Limits{MaxKeySize: eb.MaxKeySize, MaxValueSize: eb.MaxValueSize}
		}
		return e
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%s: malformed response: %w", name, err)
	}
	return nil
}

// NodeStatus describes the node.
func (c *Client) NodeStatus(ctx context.Context) (NodeStatus, error) {
	var r NodeStatus
	return r, c.call(ctx, "node/status", Empty{}, &r)
}

// MeshPeers lists the peers the node has met.
func (c *Client) MeshPeers(ctx context.Context) ([]mesh.PeerStatus, error) {
	var r []mesh.PeerStatus
	return r, c.call(ctx, "mesh/peers", Empty{}, &r)
}

// SyncStatus reports the state of the copies of one table (or all).
func (c *Client) SyncStatus(ctx context.Context, table string) (repair.Status, error) {
	var r repair.Status
	return r, c.call(ctx, "sync/status", SyncStatusRequest{Table: table}, &r)
}

// SyncRepair repairs a table from the node (which must hold it).
func (c *Client) SyncRepair(ctx context.Context, table string, dryRun bool) (repair.Report, error) {
	var r repair.Report
	return r, c.call(ctx, "sync/repair", SyncRepairRequest{Table: table, DryRun: dryRun}, &r)
}

// CreateTable creates a table with this node as its home.
//
// A scope naming a node that is not a member is refused (CodeInvalid)
// unless o.AllowUnknown; a table no reachable node would hold needs
// o.Confirmed (else CodeNeedsConfirm, with the change in the message).
func (c *Client) CreateTable(ctx context.Context, name string, scope scope.Scope, o Overrides) (TableInfo, error) {
	var r TableInfo
	return r, c.call(ctx, "table/create", CreateTableRequest{Table: name, Scope: &scope, Overrides: o}, &r)
}

// CreateTableWith is CreateTable with every field of the request (the
// tombstone grace).
func (c *Client) CreateTableWith(ctx context.Context, req CreateTableRequest) (TableInfo, error) {
	var r TableInfo
	return r, c.call(ctx, "table/create", req, &r)
}

// SetTable changes a table's tombstone grace.
func (c *Client) SetTable(ctx context.Context, name string, grace time.Duration) (TableInfo, error) {
	var r TableInfo
	return r, c.call(ctx, "table/set", SetTableRequest{Table: name, TombstoneGraceMS: grace.Milliseconds()}, &r)
}

// SetScope changes a table's scope, guarded as CreateTable is; a change to
// fewer copies needs o.Confirmed too.
func (c *Client) SetScope(ctx context.Context, name string, scope scope.Scope, o Overrides) (TableInfo, error) {
	var r TableInfo
	return r, c.call(ctx, "table/scope", SetScopeRequest{Table: name, Scope: scope, Overrides: o}, &r)
}

// DropTable drops a table; id (may be empty) picks one of the tables of a
// name in conflict.
func (c *Client) DropTable(ctx context.Context, name, id string) error {
	return c.call(ctx, "table/drop", DropTableRequest{Table: name, ID: id}, nil)
}

// Tables lists the catalog with this node's copies.
func (c *Client) Tables(ctx context.Context) ([]TableInfo, error) {
	var r []TableInfo
	return r, c.call(ctx, "table/list", Empty{}, &r)
}

// Put sets a key and returns the version it was given once it is durable.
func (c *Client) Put(ctx context.Context, table string, key, value []byte) (WriteResult, error) {
	// A frame over the stream's limit is refused without the node's limits:
	// the JSON call's refusal carries them, to say the size as sent.
	if sr := c.streamDo(ctx, &streamRequest{Op: opPut, Table: table, Key: key, Value: value}); sr.handled && !tooLarge(sr.err) {
		return WriteResult{HLC: tables.Timestamp(sr.resp.HLC), Origin: sr.resp.Origin}, sr.err
	}
	var r WriteResult
	return r, sizesAsSent(c.call(ctx, "put", PutRequest{Table: table, Key: key, Value: value}, &r), key, value)
}

// sizesAsSent turns a refusal of a request body over the node's limit
// (its size in base64 JSON) into one that gives the size of the key or
// value as the caller sent it, as the node says it of one within the body
// limit, with the same code: "invalid: value is 2,097,152 bytes, over the
// limit of 1,048,576".
func sizesAsSent(err error, key, value []byte) error {
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != CodeTooLarge || ae.Limits == nil {
		return err
	}
	if cerr := ae.Limits.Check(key, value); cerr != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: cerr.Error()}
	}
	return err
}

// tooLarge reports whether err is the node's refusal of a request over its
// size limit.
func tooLarge(err error) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Code == CodeTooLarge
}

// Get returns a key's record.
func (c *Client) Get(ctx context.Context, table string, key []byte) (Record, error) {
	if sr := c.streamDo(ctx, &streamRequest{Op: opGet, Table: table, Key: key}); sr.handled {
		if sr.err != nil {
			return Record{}, sr.err
		}
		return Record{Key: sr.resp.Key, Value: sr.resp.Value, HLC: tables.Timestamp(sr.resp.HLC), Origin: sr.resp.Origin}, nil
	}
	var r Record
	return r, c.call(ctx, "get", KeyRequest{Table: table, Key: key}, &r)
}

// Delete deletes a key.
func (c *Client) Delete(ctx context.Context, table string, key []byte) (WriteResult, error) {
	if sr := c.streamDo(ctx, &streamRequest{Op: opDel, Table: table, Key: key}); sr.handled && !tooLarge(sr.err) {
		return WriteResult{HLC: tables.Timestamp(sr.resp.HLC), Origin: sr.resp.Origin}, sr.err
	}
	var r WriteResult
	return r, sizesAsSent(c.call(ctx, "del", KeyRequest{Table: table, Key: key}, &r), key, nil)
}

// Scan returns one page of live records.
func (c *Client) Scan(ctx context.Context, req ScanRequest) (ScanResult, error) {
	var r ScanResult
	return r, c.call(ctx, "scan", req, &r)
}

// AddIdentity registers an identity.
func (c *Client) AddIdentity(ctx context.Context, req AddIdentityRequest) (store.Identity, error) {
	var r store.Identity
	return r, c.call(ctx, "identity/add", req, &r)
}

// Identities lists the registered identities.
func (c *Client) Identities(ctx context.Context) ([]store.Identity, error) {
	var r []store.Identity
	return r, c.call(ctx, "identity/list", Empty{}, &r)
}

// RemoveIdentity removes an identity and its grants.
func (c *Client) RemoveIdentity(ctx context.Context, name string) (RemoveIdentityResult, error) {
	var r RemoveIdentityResult
	return r, c.call(ctx, "identity/remove", NameRequest{Name: name}, &r)
}

// Grant gives an identity a permission on a table ("*" for all).
func (c *Client) Grant(ctx context.Context, identity, table, perm string) (store.Grant, error) {
	var r store.Grant
	return r, c.call(ctx, "acl/grant", GrantRequest{Identity: identity, Table: table, Perm: perm}, &r)
}

// Revoke removes an identity's permission on a table.
func (c *Client) Revoke(ctx context.Context, identity, table, perm string) (RevokeResult, error) {
	var r RevokeResult
	return r, c.call(ctx, "acl/revoke", GrantRequest{Identity: identity, Table: table, Perm: perm}, &r)
}

// Grants lists every ACL record.
func (c *Client) Grants(ctx context.Context) ([]store.Grant, error) {
	var r []store.Grant
	return r, c.call(ctx, "acl/list", Empty{}, &r)
}

// RevokeCert adds a node name or a certificate fingerprint to the mesh's
// revocation list.
func (c *Client) RevokeCert(ctx context.Context, target string) (store.Revocation, error) {
	var r store.Revocation
	return r, c.call(ctx, "node/revoke", RevokeRequest{Target: target}, &r)
}

// Revocations lists the revocation list.
func (c *Client) Revocations(ctx context.Context) ([]store.Revocation, error) {
	var r []store.Revocation
	return r, c.call(ctx, "node/revocations", Empty{}, &r)
}

// ForgetNode forgets a node that is gone for good (an admin node only), or,
// with dryRun, says what forgetting it would do.
func (c *Client) ForgetNode(ctx context.Context, node string, dryRun bool) (store.ForgetPlan, error) {
	var r store.ForgetPlan
	return r, c.call(ctx, "node/forget", ForgetRequest{Node: node, DryRun: dryRun}, &r)
}

// Forgotten lists the nodes the mesh forgot (their forgot records).
func (c *Client) Forgotten(ctx context.Context) ([]store.Forgot, error) {
	var r []store.Forgot
	return r, c.call(ctx, "node/forgotten", Empty{}, &r)
}
