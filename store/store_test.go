package store

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// testCA is a mesh CA with node certificates made on demand.
type testCA struct {
	t   *testing.T
	dir string
	ca  *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	dir := t.TempDir()
	if err := pki.CreateCA(dir, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{t, dir, ca}
}

func (c *testCA) identity(name string, role pki.Role) *pki.Identity {
	c.t.Helper()
	crt, key := pki.NodeCertFiles(c.dir, name)
	if _, err := os.Stat(crt); err != nil {
		if err := pki.CreateNodeCert(c.dir, name, role, nil, false, time.Now()); err != nil {
			c.t.Fatal(err)
		}
	}
	id, err := pki.LoadIdentity(crt, key, pki.KindNode)
	if err != nil {
		c.t.Fatal(err)
	}
	return id
}

// open opens the store of a node in mesh mode in a new directory.
func (c *testCA) open(name string, role pki.Role) *Store {
	c.t.Helper()
	return c.openIn(c.t.TempDir(), name, role)
}

func (c *testCA) openIn(dir, name string, role pki.Role) *Store {
	c.t.Helper()
	s, err := Open(Options{Dir: dir, Node: name, Table: tables.Options{NoSync: true}, Logger: slog.New(slog.DiscardHandler),
		Identity: c.identity(name, role), CA: c.ca})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { s.Close() })
	return s
}

// signed is a change to a system table as node id makes it.
func signed(t *testing.T, id *pki.Identity, table string, e wal.Entry) wal.Entry {
	t.Helper()
	if e.Version.Origin == "" {
		e.Version.Origin = id.Name
	}
	if e.Version.HLC == 0 {
		e.Version.HLC = tables.HLC(time.Now().UnixMilli(), 0)
	}
	if err := Sign(id, table, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// ship copies every record of a system table of one store into another's,
// as replication would (their proofs included).
func ship(t *testing.T, from, to *Store, table string) (adopted int, err error) {
	t.Helper()
	src, _ := from.Table(table)
	dst, _ := to.Table(table)
	recs, _, serr := src.Snapshot()
	if serr != nil {
		t.Fatal(serr)
	}
	entries := make([]wal.Entry, len(recs))
	for i, r := range recs {
		entries[i] = r.Entry()
	}
	n, err := dst.Apply(context.Background(), entries)
	if rerr := to.Reconcile(); rerr != nil {
		t.Fatal(rerr)
	}
	return n, err
}

func applyMeta(t *testing.T, s *Store, entries ...wal.Entry) error {
	t.Helper()
	_, err := s.meta.Apply(context.Background(), entries)
	if rerr := s.Reconcile(); rerr != nil {
		t.Fatal(rerr)
	}
	return err
}

// A member node's own store grants it a member's rights only: it creates
// tables and changes and drops its own; changing another's table,
// identities, ACLs and revocations needs an admin (ErrDenied, nothing
// written); an admin node may do all of it.
func TestLocalRightsFollowTheRole(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	home, evil, boss := ca.open("home", pki.RoleMember), ca.open("evil", pki.RoleMember), ca.open("boss", pki.RoleAdmin)
	all := scope.Scope{All: true}
	info, err := home.CreateTable(ctx, "secret", scope.Scope{Nodes: []string{"home", "office"}})
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := scope.HomeOf(info.ID); h != "home" {
		t.Fatalf("id %s does not name its home", info.ID)
	}
	for _, to := range []*Store{evil, boss} {
		if _, err := ship(t, home, to, scope.MetaTable); err != nil {
			t.Fatal(err)
		}
	}
	before, _, _ := evil.meta.Snapshot()
	denied := map[string]error{}
	_, denied["scope another's table"] = evil.SetScope(ctx, "secret", all)
	denied["drop another's table"] = evil.DropTable(ctx, "secret", "")
	denied["add an identity"] = evil.AddIdentity(ctx, Identity{Name: "bob", Kind: "client"})
	_, denied["revoke"] = evil.Revoke(ctx, "home")
	for what, err := range denied {
		if !errors.Is(err, ErrDenied) {
			t.Errorf("member evil: %s: %v, want ErrDenied", what, err)
		}
	}
	if after, _, _ := evil.meta.Snapshot(); len(after) != len(before) {
		t.Errorf("refused changes wrote to cortex_meta: %d records, were %d", len(after), len(before))
	}
	// A member owns what it makes.
	if _, err := evil.CreateTable(ctx, "mine", all); err != nil {
		t.Fatal(err)
	}
	if _, err := evil.SetScope(ctx, "mine", scope.Scope{Local: true}); err != nil {
		t.Fatal(err)
	}
	if err := evil.DropTable(ctx, "mine", ""); err != nil {
		t.Fatal(err)
	}
	// An admin may do everything.
	if _, err := boss.SetScope(ctx, "secret", all); err != nil {
		t.Fatal(err)
	}
	if err := boss.AddIdentity(ctx, Identity{Name: "bob", Kind: "client"}); err != nil {
		t.Fatal(err)
	}
	if err := boss.GrantPerm(ctx, "bob", "secret", PermRead); err != nil {
		t.Fatal(err)
	}
	if _, err := boss.Revoke(ctx, "evil"); err != nil {
		t.Fatal(err)
	}
	if _, err := boss.Revoke(ctx, "boss"); err == nil {
		t.Error("an admin revoked itself")
	}
	// Home takes the admin's changes (and the previous scope is kept).
	for _, table := range scope.SystemTables {
		if _, err := ship(t, boss, home, table); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
	}
	got, err := home.Info("secret")
	if err != nil || !got.Scope.All || got.Prev == nil || got.Prev.String() != "home,office" {
		t.Fatalf("home's record after the admin's change: %+v, %v", got, err)
	}
	if !home.Allowed("bob", "secret", PermRead) || !home.Revoked("evil", "") {
		t.Error("home did not take the admin's grant and revocation")
	}
}

// Changes from peers are applied only with a valid proof by a node the
// rule allows; the refused ones change nothing and the others go on.
func TestRemoteSystemChangesAreChecked(t *testing.T) {
	ca := newTestCA(t)
	home := ca.open("home", pki.RoleMember)
	homeID, evilID := ca.identity("home", pki.RoleMember), ca.identity("evil", pki.RoleMember)
	info, err := home.CreateTable(context.Background(), "secret", scope.Scope{Nodes: []string{"home", "office"}})
	if err != nil {
		t.Fatal(err)
	}
	key := string(tableKey(info.Name, info.ID))
	widened := info
	widened.Scope = scope.Scope{Nodes: []string{"evil", "home", "office"}}
	other := newTestCA(t)
	stranger := other.identity("home", pki.RoleAdmin)
	put := func(key string, v any) wal.Entry {
		return wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: mustJSON(v)}
	}
	future := tables.HLC(time.Now().Add(time.Hour).UnixMilli(), 0)
	for _, tc := range []struct {
		name string
		e    wal.Entry
	}{
		{"unsigned", wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: mustJSON(widened), Version: wal.Version{HLC: tables.HLC(time.Now().UnixMilli(), 0), Origin: "home"}}},
		{"evil widens home's table", signed(t, evilID, scope.MetaTable, put(key, widened))},
		{"evil drops it", signed(t, evilID, scope.MetaTable, wal.Entry{Op: wal.OpDelete, Key: []byte(key)})},
		{"evil writes in home's name", signed(t, evilID, scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: mustJSON(widened), Version: wal.Version{Origin: "home"}})},
		{"signed by another mesh's home", signed(t, stranger, scope.MetaTable, put(key, widened))},
		{"home's proof, another change", func() wal.Entry {
			e := signed(t, homeID, scope.MetaTable, put(key, info))
			e.Value = mustJSON(widened)
			return e
		}()},
		{"home's change, the end of time", signed(t, homeID, scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: mustJSON(widened), Version: wal.Version{HLC: ^uint64(0)}})},
		{"home's change, an hour ahead", signed(t, homeID, scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte(key), Value: mustJSON(widened), Version: wal.Version{HLC: future}})},
		{"a table in another directory", signed(t, evilID, scope.MetaTable, put("table/pwn//../../x", scope.TableInfo{Name: "pwn", ID: "/../../x", Scope: scope.Scope{All: true}, Home: "evil"}))},
		{"home's membership record by evil", signed(t, evilID, scope.MetaTable, put("node/home", Member{Node: "home", Addrs: []string{"10.9.9.9:1"}}))},
		{"an identity by a member", signed(t, evilID, scope.IdentitiesTable, put("bob", Identity{Name: "bob", Kind: "client"}))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			table := scope.MetaTable
			if strings.Contains(tc.name, "identity") {
				table = scope.IdentitiesTable
			}
			tb, _ := home.Table(table)
			before := tb.Stats()
			n, err := tb.Apply(context.Background(), []wal.Entry{tc.e})
			var re *tables.RefusedError
			if n != 0 || !errors.As(err, &re) {
				t.Fatalf("Apply = %d, %v; want it refused", n, err)
			}
			if after := tb.Stats(); after.Digest != before.Digest || after.Applied != before.Applied {
				t.Fatal("a refused change changed the table")
			}
		})
	}
	got, err := home.Info("secret")
	if err != nil || got.Scope.String() != "home,office" {
		t.Fatalf("secret after the refused changes: %+v, %v", got, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(filepath.Dir(home.opts.Dir), "x")); len(entries) > 0 {
		t.Fatal("a directory was made outside the data directory")
	}
	// The same change signed by home is taken.
	if err := applyMeta(t, home, signed(t, homeID, scope.MetaTable, put(key, widened))); err != nil {
		t.Fatal(err)
	}
	if got, _ := home.Info("secret"); got.Scope.String() != "evil,home,office" {
		t.Fatalf("home's own change was not applied: %+v", got)
	}
}

// A revoked certificate's changes made at or after the revocation are
// refused; those made before stand (every node decides alike).
func TestRevokedSignerRefused(t *testing.T) {
	ca := newTestCA(t)
	boss, office := ca.open("boss", pki.RoleAdmin), ca.open("office", pki.RoleMember)
	lapID := ca.identity("laptop", pki.RoleMember)
	before := tables.HLC(time.Now().Add(-time.Minute).UnixMilli(), 0)
	rec := func(hlc uint64) wal.Entry {
		return signed(t, lapID, scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: MemberKey("laptop"),
			Value: mustJSON(Member{Node: "laptop", Addrs: []string{"127.0.0.1:9"}}), Version: wal.Version{HLC: hlc}})
	}
	if _, err := boss.Revoke(context.Background(), "laptop"); err != nil {
		t.Fatal(err)
	}
	if _, err := ship(t, boss, office, scope.MetaTable); err != nil {
		t.Fatal(err)
	}
	if err := applyMeta(t, office, rec(before)); err != nil {
		t.Fatalf("a change from before the revocation: %v", err)
	}
	var re *tables.RefusedError
	if err := applyMeta(t, office, rec(tables.HLC(time.Now().Add(time.Second).UnixMilli(), 0))); !errors.As(err, &re) {
		t.Fatalf("a change after the revocation: %v", err)
	}
	fp := pki.Fingerprint(lapID.Leaf)
	if !office.Revoked("laptop", fp) || office.Revoked("home", "sha256:"+strings.Repeat("0", 64)) {
		t.Error("Revoked does not follow the list")
	}
}

// Two tables made under one name on two nodes: both records stay (neither
// node's copy is deleted), the name is refused until one is dropped, and
// it does not matter in which order a node learns of them.
func TestTwoTablesOfOneName(t *testing.T) {
	ctx := context.Background()
	ca := newTestCA(t)
	a, b := ca.open("a", pki.RoleMember), ca.open("b", pki.RoleMember)
	ia, err := a.CreateTable(ctx, "t", scope.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	ib, err := b.CreateTable(ctx, "t", scope.Scope{All: true})
	if err != nil {
		t.Fatal(err)
	}
	ta, _ := a.Table("t")
	ta.Put(ctx, []byte("k"), []byte("from a"))
	for _, order := range [][2]*Store{{a, b}, {b, a}} {
		c := ca.open("c", pki.RoleMember)
		for _, from := range order {
			if _, err := ship(t, from, c, scope.MetaTable); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := c.Info("t"); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), ia.ID) || !strings.Contains(err.Error(), ib.ID) {
			t.Fatalf("Info: %v", err)
		}
		if _, err := c.Table("t"); !errors.Is(err, ErrConflict) {
			t.Fatalf("Table: %v", err)
		}
		if len(c.HeldInfo()) != len(scope.SystemTables)+2 {
			t.Fatalf("c holds %+v, want both tables", c.HeldInfo())
		}
	}
	// a learns of b's table: its own copy is kept.
	if _, err := ship(t, b, a, scope.MetaTable); err != nil {
		t.Fatal(err)
	}
	if tb, ok := a.Copy(ia); !ok {
		t.Fatal("a's copy went")
	} else if r, err := tb.Get([]byte("k")); err != nil || string(r.Value) != "from a" {
		t.Fatalf("a's copy: %v", err)
	}
	// b may not drop a's; it drops its own, by id.
	if _, err := ship(t, a, b, scope.MetaTable); err != nil {
		t.Fatal(err)
	}
	if err := b.DropTable(ctx, "t", ""); !errors.Is(err, ErrConflict) {
		t.Fatalf("drop by name in conflict: %v", err)
	}
	if err := b.DropTable(ctx, "t", ia.ID); !errors.Is(err, ErrDenied) {
		t.Fatalf("b drops a's table: %v", err)
	}
	if err := b.DropTable(ctx, "t", ib.ID); err != nil {
		t.Fatal(err)
	}
	if info, err := b.Info("t"); err != nil || info.ID != ia.ID {
		t.Fatalf("after the drop: %+v, %v", info, err)
	}
	if _, ok := b.Copy(ib); ok {
		t.Error("b kept the copy of the dropped table")
	}
}

// A record written without a proof (standalone, or by an earlier version)
// is signed at the first start in mesh mode when this node may make it, so
// that peers take it.
func TestResignAtMeshStart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := Open(Options{Dir: dir, Node: "boss", Table: tables.Options{NoSync: true}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateTable(ctx, "notes", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddIdentity(ctx, Identity{Name: "bob", Kind: "client"}); err != nil {
		t.Fatal(err)
	}
	// An earlier version's catalog record, under its old key.
	legacy := scope.TableInfo{Name: "old", ID: "0123456789abcdef", Scope: scope.Scope{Local: true}, Home: "boss"}
	st.meta.Put(ctx, legacyKey("old"), mustJSON(legacy))
	st.Close()

	ca := newTestCA(t)
	boss := ca.openIn(dir, "boss", pki.RoleAdmin)
	for _, table := range scope.SystemTables {
		tb, _ := boss.Table(table)
		recs, _, _ := tb.Snapshot()
		for _, r := range recs {
			if len(r.Proof) == 0 {
				t.Errorf("%s %s has no proof after the start in mesh mode", table, r.Key)
			}
		}
	}
	if info, err := boss.Info("old"); err != nil || info.ID != legacy.ID {
		t.Fatalf("the earlier version's table: %+v, %v", info, err)
	}
	if _, err := boss.meta.Get(legacyKey("old")); !errors.Is(err, tables.ErrNotFound) {
		t.Errorf("the old key is still there: %v", err)
	}
	// A peer takes all of it.
	peer := ca.open("peer", pki.RoleMember)
	for _, table := range scope.SystemTables {
		if _, err := ship(t, boss, peer, table); err != nil {
			t.Errorf("%s: %v", table, err)
		}
	}
	if _, err := peer.Info("notes"); err != nil {
		t.Fatal(err)
	}
	if _, err := peer.Identity("bob"); err != nil {
		t.Fatal(err)
	}
}

// A catalog record that got into cortex_meta unchecked (a file from an
// earlier version) never becomes a path outside the data directory.
func TestMalformedCatalogRecordNeverAPath(t *testing.T) {
	dir := t.TempDir()
	st, err := Open(Options{Dir: dir, Node: "a", Table: tables.Options{NoSync: true}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	victim := filepath.Join(t.TempDir(), "victim")
	os.MkdirAll(victim, 0o700)
	os.WriteFile(filepath.Join(victim, "keep"), []byte("x"), 0o600)
	bad := scope.TableInfo{Name: "pwn", ID: "/../../../../../../.." + victim, Scope: scope.Scope{All: true}, Home: "a"}
	st.meta.Put(context.Background(), []byte("table/pwn//../../x"), mustJSON(bad))
	if err := st.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Info("pwn"); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Info of the malformed record: %v", err)
	}
	st.meta.Delete(context.Background(), []byte("table/pwn//../../x"))
	if err := st.Reconcile(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(victim, "keep")); err != nil {
		t.Fatalf("the victim directory was touched: %v", err)
	}
}

// A record re-signed at the first start in mesh mode keeps its place in
// time: a delete the mesh made since still wins over it, wherever they meet.
func TestResignDoesNotResurrect(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	stale, err := Open(Options{Dir: dir, Node: "old", Table: tables.Options{NoSync: true}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := stale.AddIdentity(ctx, Identity{Name: "bob", Kind: "client"}); err != nil {
		t.Fatal(err)
	}
	stale.Close()
	ca := newTestCA(t)
	boss := ca.open("boss", pki.RoleAdmin)
	if err := boss.AddIdentity(ctx, Identity{Name: "bob", Kind: "client"}); err != nil {
		t.Fatal(err)
	}
	if _, err := boss.RemoveIdentity(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	old := ca.openIn(dir, "old", pki.RoleAdmin) // re-signs its bob
	if _, err := old.Identity("bob"); err != nil {
		t.Fatalf("before meeting the mesh: %v", err)
	}
	ship(t, old, boss, scope.IdentitiesTable)
	ship(t, boss, old, scope.IdentitiesTable)
	for _, s := range []*Store{boss, old} {
		if _, err := s.Identity("bob"); !errors.Is(err, ErrNoIdentity) {
			t.Errorf("%s: bob is back: %v", s.Node(), err)
		}
	}
}
