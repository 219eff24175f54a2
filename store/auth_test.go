package store

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// TestAuthorize is the rule of who may change which system record, with
// the checks of every value, case by case.
func TestAuthorize(t *testing.T) {
	admin := pki.Signer{Name: "boss", Role: pki.RoleAdmin}
	home := pki.Signer{Name: "home", Role: pki.RoleMember}
	evil := pki.Signer{Name: "evil", Role: pki.RoleMember}
	all := scope.Scope{All: true}
	secretID := "0123456789abcdef-home"
	secret := scope.TableInfo{Name: "secret", ID: secretID, Scope: all, Home: "home"}
	widened := secret
	widened.Scope, _ = scope.ParseScope("home,office,evil")
	legacy := scope.TableInfo{Name: "old", ID: "0123456789abcdef", Scope: all, Home: "home"}
	put := func(key string, v any) wal.Entry {
		return wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: mustJSON(v)}
	}
	raw := func(key, v string) wal.Entry { return wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: []byte(v)} }
	del := func(key string) wal.Entry { return wal.Entry{Op: wal.OpDelete, Key: []byte(key)} }
	horizon := func(by string) scope.Horizon {
		return scope.Horizon{Table: secretID, HLC: 5, By: by, Copies: []scope.CountedCopy{
			{Node: "home", LogID: "l1", Bound: 9, Acks: map[string]uint64{"office": 3}},
			{Node: "office", LogID: "l2", Bound: 7, Acks: map[string]uint64{"home": 4}},
		}}
	}
	inc := strings.Repeat("0a", 16)
	forgot := func(node, inc, by string) Forgot {
		return Forgot{Node: node, Incarnation: inc, By: by, At: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	}
	member := func(node string) Member { return Member{Node: node, PeerID: "p", Addrs: []string{"127.0.0.1:7946"}} }
	for _, tc := range []struct {
		name   string
		table  string
		e      wal.Entry
		signer pki.Signer
		want   error // nil, ErrDenied or tables.ErrInvalid
	}{
		// Membership records: only the node itself; forgetting is an admin's.
		{"own membership record", scope.MetaTable, put("node/evil", member("evil")), evil, nil},
		{"another node's membership record", scope.MetaTable, put("node/home", member("home")), evil, ErrDenied},
		{"an admin writes another's membership record", scope.MetaTable, put("node/home", member("home")), admin, ErrDenied},
		{"membership record naming another node", scope.MetaTable, put("node/evil", member("home")), evil, tables.ErrInvalid},
		{"ghost with 17 addresses", scope.MetaTable, put("node/evil", Member{Node: "evil", Addrs: make([]string, 17)}), evil, tables.ErrInvalid},
		{"address that is not HOST:PORT", scope.MetaTable, put("node/evil", Member{Node: "evil", Addrs: []string{"x"}}), evil, tables.ErrInvalid},
		{"draining a malformed id", scope.MetaTable, put("node/evil", Member{Node: "evil", Draining: []string{"../x"}}), evil, tables.ErrInvalid},
		{"forget a node: member", scope.MetaTable, del("node/home"), evil, ErrDenied},
		{"forget a node: admin", scope.MetaTable, del("node/home"), admin, nil},
		{"malformed membership record", scope.MetaTable, raw("node/evil", "{"), evil, tables.ErrInvalid},
		{"membership record with an incarnation", scope.MetaTable, put("node/evil", Member{Node: "evil", Incarnation: strings.Repeat("0a", 16)}), evil, nil},
		{"membership record with a bad incarnation", scope.MetaTable, put("node/evil", Member{Node: "evil", Incarnation: "../x"}), evil, tables.ErrInvalid},

		// Forgot records: an admin, as itself.
		{"forgot: admin", scope.MetaTable, put("forgot/home/"+inc, forgot("home", inc, "boss")), admin, nil},
		{"forgot an unknown incarnation: admin", scope.MetaTable, put("forgot/home/unknown", forgot("home", "", "boss")), admin, nil},
		{"forgot: member", scope.MetaTable, put("forgot/home/"+inc, forgot("home", inc, "evil")), evil, ErrDenied},
		{"forgot in another's name", scope.MetaTable, put("forgot/home/"+inc, forgot("home", inc, "other")), admin, ErrDenied},
		{"forgot naming another node", scope.MetaTable, put("forgot/home/"+inc, forgot("office", inc, "boss")), admin, tables.ErrInvalid},
		{"forgot naming another incarnation", scope.MetaTable, put("forgot/home/"+inc, forgot("home", strings.Repeat("1b", 16), "boss")), admin, tables.ErrInvalid},
		{"forgot unknown naming an incarnation", scope.MetaTable, put("forgot/home/unknown", forgot("home", inc, "boss")), admin, tables.ErrInvalid},
		{"forgot without a time", scope.MetaTable, put("forgot/home/"+inc, Forgot{Node: "home", Incarnation: inc, By: "boss"}), admin, tables.ErrInvalid},
		{"forgot key without incarnation", scope.MetaTable, put("forgot/home", forgot("home", "", "boss")), admin, tables.ErrInvalid},
		{"forgot key with a path", scope.MetaTable, put("forgot/../x/"+inc, forgot("../x", inc, "boss")), admin, tables.ErrInvalid},
		{"remove a forgot record: admin", scope.MetaTable, del("forgot/home/" + inc), admin, nil},
		{"remove a forgot record: member", scope.MetaTable, del("forgot/home/" + inc), evil, ErrDenied},
		{"remove a malformed forgot key", scope.MetaTable, del("forgot/home/x"), admin, tables.ErrInvalid},
		{"malformed forgot record", scope.MetaTable, raw("forgot/home/"+inc, "{"), admin, tables.ErrInvalid},

		// Catalog records: the home named by the id, or an admin.
		{"home creates its table", scope.MetaTable, put("table/secret/"+secretID, secret), home, nil},
		{"home widens its table", scope.MetaTable, put("table/secret/"+secretID, widened), home, nil},
		{"another member widens it", scope.MetaTable, put("table/secret/"+secretID, widened), evil, ErrDenied},
		{"an admin widens it", scope.MetaTable, put("table/secret/"+secretID, widened), admin, nil},
		{"another member drops it", scope.MetaTable, del("table/secret/" + secretID), evil, ErrDenied},
		{"home drops it", scope.MetaTable, del("table/secret/" + secretID), home, nil},
		{"a member claims a home's id", scope.MetaTable, put("table/secret/0123456789abcdef-evil", scope.TableInfo{Name: "secret", ID: "0123456789abcdef-evil", Scope: all, Home: "home"}), evil, tables.ErrInvalid},
		{"a member makes its own table of the name", scope.MetaTable, put("table/secret/0123456789abcdef-evil", scope.TableInfo{Name: "secret", ID: "0123456789abcdef-evil", Scope: all, Home: "evil"}), evil, nil},
		{"record under another key", scope.MetaTable, put("table/other/"+secretID, secret), home, tables.ErrInvalid},
		{"path in the id", scope.MetaTable, put("table/pwn//../../x", scope.TableInfo{Name: "pwn", ID: "/../../x", Scope: all, Home: "evil"}), evil, tables.ErrInvalid},
		{"system table record", scope.MetaTable, put("table/cortex_acls/0123456789abcdef-evil", scope.TableInfo{Name: "cortex_acls", ID: "0123456789abcdef-evil", Scope: all, Home: "evil"}), evil, tables.ErrInvalid},
		{"record without a scope", scope.MetaTable, raw("table/t/0123456789abcdef-evil", `{"name":"t","id":"0123456789abcdef-evil","home":"evil"}`), evil, tables.ErrInvalid},
		{"an earlier version's id: member", scope.MetaTable, put("table/old/0123456789abcdef", legacy), home, ErrDenied},
		{"an earlier version's id: admin", scope.MetaTable, put("table/old/0123456789abcdef", legacy), admin, nil},
		{"an earlier version's key: put", scope.MetaTable, put("table/old", legacy), admin, tables.ErrInvalid},
		{"an earlier version's key: admin removes it", scope.MetaTable, del("table/old"), admin, nil},
		{"unknown meta key", scope.MetaTable, raw("other/x", "{}"), admin, tables.ErrInvalid},

		// Purge horizons: the home named by the id, or an admin, as itself.
		{"home writes its table's horizon", scope.MetaTable, put("horizon/"+secretID, horizon("home")), home, nil},
		{"an admin writes it", scope.MetaTable, put("horizon/"+secretID, horizon("boss")), admin, nil},
		{"another member writes it", scope.MetaTable, put("horizon/"+secretID, horizon("evil")), evil, ErrDenied},
		{"home writes it in another's name", scope.MetaTable, put("horizon/"+secretID, horizon("boss")), home, ErrDenied},
		{"another member removes it", scope.MetaTable, del("horizon/" + secretID), evil, ErrDenied},
		{"horizon of another table", scope.MetaTable, put("horizon/0123456789abcdef-evil", horizon("evil")), evil, tables.ErrInvalid},
		{"horizon with a malformed id", scope.MetaTable, put("horizon/../x", horizon("home")), home, tables.ErrInvalid},
		{"horizon at zero", scope.MetaTable, put("horizon/"+secretID, scope.Horizon{Table: secretID, By: "home", Copies: horizon("home").Copies}), home, tables.ErrInvalid},
		{"malformed horizon", scope.MetaTable, raw("horizon/"+secretID, "{"), home, tables.ErrInvalid},

		// Revocations, identities and ACLs: an admin.
		{"revoke: member", scope.MetaTable, put("revoked/home", Revocation{Target: "home"}), evil, ErrDenied},
		{"revoke: admin", scope.MetaTable, put("revoked/evil", Revocation{Target: "evil"}), admin, nil},
		{"revoke a fingerprint", scope.MetaTable, put("revoked/sha256:"+strings.Repeat("ab", 32), Revocation{Target: "sha256:" + strings.Repeat("ab", 32)}), admin, nil},
		{"revocation naming another", scope.MetaTable, put("revoked/evil", Revocation{Target: "home"}), admin, tables.ErrInvalid},
		{"identity: member", scope.IdentitiesTable, put("bob", Identity{Name: "bob", Kind: "client"}), evil, ErrDenied},
		{"identity: admin", scope.IdentitiesTable, put("bob", Identity{Name: "bob", Kind: "client"}), admin, nil},
		{"identity of another name", scope.IdentitiesTable, put("bob", Identity{Name: "alice", Kind: "client"}), admin, tables.ErrInvalid},
		{"identity of a bad kind", scope.IdentitiesTable, put("bob", Identity{Name: "bob", Kind: "root"}), admin, tables.ErrInvalid},
		{"remove identity: member", scope.IdentitiesTable, del("bob"), evil, ErrDenied},
		{"grant: member", scope.ACLsTable, put("bob/*", Grant{Identity: "bob", Table: "*", Perm: "admin"}), evil, ErrDenied},
		{"grant: admin", scope.ACLsTable, put("bob/*", Grant{Identity: "bob", Table: "*", Perm: "admin"}), admin, nil},
		{"grant not matching its key", scope.ACLsTable, put("bob/t", Grant{Identity: "bob", Table: "u", Perm: "read"}), admin, tables.ErrInvalid},
		{"grant of a bad permission", scope.ACLsTable, put("bob/t", Grant{Identity: "bob", Table: "t", Perm: "root"}), admin, tables.ErrInvalid},
		{"revoke a grant: member", scope.ACLsTable, del("bob/t"), evil, ErrDenied},
		{"not a system table", "notes", put("k", "v"), admin, tables.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			e.Version = wal.Version{HLC: 1, Origin: tc.signer.Name}
			err := Authorize(tc.table, &e, tc.signer)
			switch {
			case tc.want == nil && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("Authorize = %v, want %v", err, tc.want)
			}
		})
	}
	// The origin must be the signer: nobody writes in another's name.
	e := put("node/home", member("home"))
	e.Version = wal.Version{HLC: 1, Origin: "home"}
	if err := Authorize(scope.MetaTable, &e, evil); !errors.Is(err, ErrDenied) {
		t.Fatalf("evil signing home's record: %v", err)
	}
}

// The refusal says who may do it.
func TestAuthorizeSaysWhoMay(t *testing.T) {
	e := wal.Entry{Op: wal.OpDelete, Key: []byte("table/secret/0123456789abcdef-home"), Version: wal.Version{Origin: "evil"}}
	err := Authorize(scope.MetaTable, &e, pki.Signer{Name: "evil", Role: pki.RoleMember})
	if err == nil || !strings.Contains(err.Error(), "needs its home node (home) or an admin node") {
		t.Fatalf("%v", err)
	}
	e = wal.Entry{Op: wal.OpDelete, Key: []byte("bob"), Version: wal.Version{Origin: "evil"}}
	err = Authorize(scope.IdentitiesTable, &e, pki.Signer{Name: "evil", Role: pki.RoleMember})
	if err == nil || !strings.Contains(err.Error(), "needs an admin node") || !strings.Contains(err.Error(), "--role admin") {
		t.Fatalf("%v", err)
	}
}
