package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
)

// ErrNoIdentity is wrapped by errors about an identity that is not registered.
var ErrNoIdentity = errors.New("no such identity")

// Identity is a registered identity: a name (the CN of its certificate), its
// kind, and optionally the fingerprint of the one certificate it may use.
type Identity struct {
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`                  // "client" or "node"
	Fingerprint string    `json:"fingerprint,omitempty"` // "sha256:<hex>" of the certificate
	Added       time.Time `json:"added"`
}

// Perm is a permission on a table. Each level includes the ones below it.
type Perm int

// The permissions, weakest first.
const (
	PermNone Perm = iota
	PermRead
	PermWrite
	PermAdmin
)

// ParsePerm reads read, write or admin.
func ParsePerm(s string) (Perm, error) {
	switch s {
	case "read":
		return PermRead, nil
	case "write":
		return PermWrite, nil
	case "admin":
		return PermAdmin, nil
	}
	return PermNone, fmt.Errorf("%w: permission %q: use read, write or admin", tables.ErrInvalid, s)
}

func (p Perm) String() string {
	switch p {
	case PermRead:
		return "read"
	case PermWrite:
		return "write"
	case PermAdmin:
		return "admin"
	}
	return "none"
}

// Grant is one ACL record: an identity's permission on a table ("*" for
// every table).
type Grant struct {
	Identity string `json:"identity"`
	Table    string `json:"table"`
	Perm     string `json:"perm"`
}

// check validates an identity record.
func (id Identity) check() error {
	if err := scope.ValidateIdentityName(id.Name); err != nil {
		return err
	}
	if id.Kind != "client" && id.Kind != "node" {
		return fmt.Errorf("%w: identity kind %q: use client or node", tables.ErrInvalid, id.Kind)
	}
	if id.Fingerprint != "" && !fingerprintRE.MatchString(id.Fingerprint) {
		return fmt.Errorf("%w: identity %s: malformed fingerprint %q", tables.ErrInvalid, id.Name, id.Fingerprint)
	}
	return nil
}

// decodeIdentity parses and checks an identity record's value.
func decodeIdentity(b []byte) (Identity, error) {
	var id Identity
	if err := json.Unmarshal(b, &id); err != nil {
		return id, fmt.Errorf("%w: identity record: %v", tables.ErrInvalid, err)
	}
	return id, id.check()
}

// AddIdentity registers an identity (or replaces its record); an admin node
// only.
func (s *Store) AddIdentity(ctx context.Context, id Identity) error {
	if err := id.check(); err != nil {
		return err
	}
	if id.Added.IsZero() {
		id.Added = time.Now().UTC().Truncate(time.Millisecond)
	}
	b, _ := json.Marshal(id)
	return s.putSystem(ctx, s.idents, scope.IdentitiesTable, []byte(id.Name), b)
}

// Identity returns a registered identity.
func (s *Store) Identity(name string) (Identity, error) {
	var id Identity
	r, err := s.idents.Get([]byte(name))
	if errors.Is(err, tables.ErrNotFound) {
		return id, fmt.Errorf("%w: %s (register it with: cortex identity add %s)", ErrNoIdentity, name, name)
	}
	if err != nil {
		return id, err
	}
	err = json.Unmarshal(r.Value, &id)
	return id, err
}

// Identities lists the registered identities by name.
func (s *Store) Identities() ([]Identity, error) {
	return scanJSON[Identity](s, s.idents, "identity")
}

// RemoveIdentity removes an identity and every grant it holds, and returns
// how many grants went with it.
func (s *Store) RemoveIdentity(ctx context.Context, name string) (int, error) {
	if _, err := s.Identity(name); err != nil {
		return 0, err
	}
	if err := needAdmin(s.self, "changing identities"); err != nil {
		return 0, err
	}
	grants, err := s.acls.Scan([]byte(name+"/"), nil, 0)
	if err != nil {
		return 0, err
	}
	for _, g := range grants {
		if err := s.deleteSystem(ctx, s.acls, scope.ACLsTable, g.Key); err != nil {
			return 0, err
		}
	}
	return len(grants), s.deleteSystem(ctx, s.idents, scope.IdentitiesTable, []byte(name))
}

// GrantPerm gives a registered identity a permission on a table (or "*"),
// replacing the permission it had there.
func (s *Store) GrantPerm(ctx context.Context, identity, table string, perm Perm) error {
	if _, err := s.Identity(identity); err != nil {
		return err
	}
	if table != "*" {
		if _, err := s.Info(table); err != nil {
			return err
		}
	}
	if perm == PermNone {
		return fmt.Errorf("%w: no permission to grant", tables.ErrInvalid)
	}
	b, _ := json.Marshal(Grant{Identity: identity, Table: table, Perm: perm.String()})
	return s.putSystem(ctx, s.acls, scope.ACLsTable, aclKey(identity, table), b)
}

// RevokePerm removes an identity's permission on a table. If perm is given
// it must be the permission held. It reports whether a grant was removed.
func (s *Store) RevokePerm(ctx context.Context, identity, table string, perm Perm) (bool, error) {
	r, err := s.acls.Get(aclKey(identity, table))
	if errors.Is(err, tables.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var g Grant
	if err := json.Unmarshal(r.Value, &g); err != nil {
		return false, err
	}
	if perm != PermNone && g.Perm != perm.String() {
		return false, fmt.Errorf("%w: %s holds %s on %s, not %s", tables.ErrInvalid, identity, g.Perm, table, perm)
	}
	err = s.deleteSystem(ctx, s.acls, scope.ACLsTable, r.Key)
	return err == nil, err
}

// Grants lists every ACL record, by identity then table.
func (s *Store) Grants() ([]Grant, error) {
	return scanJSON[Grant](s, s.acls, "acl")
}

// scanJSON decodes every live record of a system table, skipping (and
// logging) any that does not decode.
func scanJSON[T any](s *Store, t *tables.Table, what string) ([]T, error) {
	recs, err := t.Scan(nil, nil, 0)
	if err != nil {
		return nil, err
	}
	out := make([]T, 0, len(recs))
	for _, r := range recs {
		var v T
		if err := json.Unmarshal(r.Value, &v); err != nil {
			s.log.Error("skipping a malformed "+what+" record", "key", string(r.Key), "err", err)
			continue
		}
		out = append(out, v)
	}
	return out, nil
}

// Allowed decides from the local ACL table whether an identity may do what
// needs perm on a table. System tables always need admin. Default deny.
func (s *Store) Allowed(identity, table string, need Perm) bool {
	if scope.IsSystem(table) || strings.HasPrefix(table, tables.SystemPrefix) {
		need = PermAdmin
	}
	return s.permOn(identity, table) >= need || s.permOn(identity, "*") >= need
}

func (s *Store) permOn(identity, table string) Perm {
	r, err := s.acls.Get(aclKey(identity, table))
	if err != nil {
		return PermNone
	}
	var g Grant
	if json.Unmarshal(r.Value, &g) != nil {
		return PermNone
	}
	p, _ := ParsePerm(g.Perm)
	return p
}

func aclKey(identity, table string) []byte { return []byte(identity + "/" + table) }
