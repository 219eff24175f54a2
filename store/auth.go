package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// ErrDenied is wrapped by errors about a change its maker may not make.
var ErrDenied = errors.New("not allowed")

// Who may change the system tables. Every change to a system table carries
// a proof (pki.Sign) by the node that made it, and every node checks it with
// Authorize before applying it, wherever it came from. Authorize depends only
// on the change and on the signer's certificate (its name and role), never on
// what a node already holds, so every node decides alike and the system
// tables converge:
//
//	cortex_meta  node/X          put: X only (its own membership record); delete: an admin (forget X)
//	             table/NAME/ID   put, delete: the home named by ID, or an admin
//	             table/NAME      (an earlier version's key) delete: an admin
//	             horizon/ID      put, delete: the home named by ID, or an admin (as the node the record names)
//	             revoked/X       put, delete: an admin
//	             forgot/X/INC    put, delete: an admin (as the node the record says forgot X)
//	cortex_identities, cortex_acls: an admin
//
// Every value is checked too, before any field of it is used.
func Authorize(table string, e *wal.Entry, s pki.Signer) error {
	if e.Version.Origin != s.Name {
		return fmt.Errorf("%w: a change written as by %q but signed by %q", ErrDenied, e.Version.Origin, s.Name)
	}
	key := string(e.Key)
	put := e.Op == wal.OpPut
	switch table {
	case scope.MetaTable:
		switch kind, rest, _ := strings.Cut(key, "/"); kind {
		case "node":
			return authorizeMember(rest, e, put, s)
		case "table":
			return authorizeTable(rest, e, put, s)
		case "horizon":
			return authorizeHorizon(rest, e, put, s)
		case "forgot":
			return authorizeForgot(rest, e, put, s)
		case "revoked":
			if err := checkRevocation(rest, e, put); err != nil {
				return err
			}
			return needAdmin(s, "revoking a certificate")
		}
		return fmt.Errorf("%w: %s: unknown key %q", tables.ErrInvalid, table, key)
	case scope.IdentitiesTable:
		if put {
			id, err := decodeIdentity(e.Value)
			if err != nil {
				return err
			}
			if id.Name != key {
				return fmt.Errorf("%w: identity record %q names %q", tables.ErrInvalid, key, id.Name)
			}
		} else if err := scope.ValidateIdentityName(key); err != nil {
			return err
		}
		return needAdmin(s, "changing identities")
	case scope.ACLsTable:
		if err := checkGrant(key, e, put); err != nil {
			return err
		}
		return needAdmin(s, "changing ACLs")
	}
	return fmt.Errorf("%w: %q is not a system table", tables.ErrInvalid, table)
}

func authorizeMember(node string, e *wal.Entry, put bool, s pki.Signer) error {
	if err := scope.ValidateNodeName(node); err != nil {
		return fmt.Errorf("membership record: %w", err)
	}
	if !put {
		return needAdmin(s, "forgetting node "+node)
	}
	m, err := DecodeMember(e.Value)
	if err != nil {
		return err
	}
	if m.Node != node {
		return fmt.Errorf("%w: membership record %q names %q", tables.ErrInvalid, node, m.Node)
	}
	if s.Name != node {
		return fmt.Errorf("%w: %s may not write the membership record of %s: a node writes only its own", ErrDenied, s.Name, node)
	}
	return nil
}

func authorizeTable(rest string, e *wal.Entry, put bool, s pki.Signer) error {
	name, id, _ := strings.Cut(rest, "/")
	if err := tables.ValidateName(name, false); err != nil {
		return err
	}
	if id == "" { // an earlier version's key: only ever cleaned up
		if put {
			return fmt.Errorf("%w: catalog key %q: records are kept under table/NAME/ID", tables.ErrInvalid, e.Key)
		}
		return needAdmin(s, "removing an earlier version's catalog record")
	}
	home, ok := scope.HomeOf(id)
	if !ok {
		return fmt.Errorf("%w: catalog key %q: malformed table id", tables.ErrInvalid, e.Key)
	}
	if put {
		info, err := parseTableInfo(e.Value)
		if err != nil {
			return err
		}
		if info.Name != name || info.ID != id {
			return fmt.Errorf("%w: catalog record %q is of table %s id %s", tables.ErrInvalid, e.Key, info.Name, info.ID)
		}
	}
	if s.Role == pki.RoleAdmin || home != "" && s.Name == home {
		return nil
	}
	if home == "" {
		return needAdmin(s, "changing table "+name+" (made by an earlier version)")
	}
	return fmt.Errorf("%w: %s is a member node: changing or dropping table %s needs its home node (%s) or an admin node",
		ErrDenied, s.Name, name, home)
}

func needAdmin(s pki.Signer, what string) error {
	if s.Role == pki.RoleAdmin {
		return nil
	}
	return fmt.Errorf("%w: %s is a member node: %s needs an admin node (a node certificate made with cortex cert create-node --role admin)",
		ErrDenied, s.Name, what)
}

func checkGrant(key string, e *wal.Entry, put bool) error {
	identity, table, ok := strings.Cut(key, "/")
	if !ok || scope.ValidateIdentityName(identity) != nil || table != "*" && tables.ValidateName(table, true) != nil {
		return fmt.Errorf("%w: malformed ACL key %q", tables.ErrInvalid, key)
	}
	if !put {
		return nil
	}
	var g Grant
	if err := json.Unmarshal(e.Value, &g); err != nil {
		return fmt.Errorf("%w: ACL record %q: %v", tables.ErrInvalid, key, err)
	}
	if _, err := ParsePerm(g.Perm); err != nil || g.Identity != identity || g.Table != table {
		return fmt.Errorf("%w: ACL record %q does not match its key or has a bad permission", tables.ErrInvalid, key)
	}
	return nil
}

// Sign gives a change to a system table the proof of node id: what a node
// does for its own changes (tools and tests that speak the protocol use it).
func Sign(id *pki.Identity, table string, e *wal.Entry) error {
	p, err := pki.Sign(id, changeMessage(table, e))
	e.Proof = p
	return err
}

// changeMessage is what a proof of a system-table change signs: the table,
// the operation, the key, the value and the version.
func changeMessage(table string, e *wal.Entry) []byte {
	b := make([]byte, 0, 64+len(table)+len(e.Key)+len(e.Value))
	b = append(b, "cortex/system-change/1\x00"...)
	for _, f := range [][]byte{[]byte(table), []byte(e.Version.Origin), e.Key, e.Value} {
		b = binary.AppendUvarint(b, uint64(len(f)))
		b = append(b, f...)
	}
	b = append(b, byte(e.Op))
	return binary.BigEndian.AppendUint64(b, e.Version.HLC)
}
