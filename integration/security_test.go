package integration

// Least privilege between nodes: one node's certificate gives that node's
// rights and nothing more. A member node using its stock socket, and a
// raw-protocol peer (a member's certificate in a program that sends what it
// likes), attack a table they are not in the scope of; the holders keep it
// to themselves, unchanged. The legitimate paths keep working.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// secMesh is boss (admin), home and office (members holding secret) and
// evil (a member outside secret's scope), all real cortexd processes.
type secMesh struct {
	certs                    string
	boss, home, office, evil *node
	secret, pub              scope.TableInfo
}

func newSecMesh(t *testing.T) *secMesh {
	t.Helper()
	m := &secMesh{certs: meshCerts(t, "boss+admin", "home", "office", "evil", "mallory")}
	m.boss = newMeshNode(t, m.certs, "boss")
	m.boss.start()
	m.home = newMeshNode(t, m.certs, "home", m.boss.meshAddr)
	m.home.args = append(m.home.args, "--max-value-size", "4096")
	m.office = newMeshNode(t, m.certs, "office", m.boss.meshAddr)
	m.evil = newMeshNode(t, m.certs, "evil", m.boss.meshAddr)
	for _, n := range []*node{m.home, m.office, m.evil} {
		n.start()
	}
	plWaitFullMesh(m.boss, m.home, m.office, m.evil)
	m.home.must("table", "create", "secret", "--scope", "home,office")
	m.home.must("put", "secret", "k", "v")
	m.home.must("table", "create", "pub", "--scope", "all")
	m.office.waitValue("secret", "k", "v")
	for _, n := range []*node{m.boss, m.office, m.evil} {
		n.waitTableHeld("pub", true)
	}
	tabs, err := m.home.plTables()
	if err != nil {
		t.Fatal(err)
	}
	m.secret = scope.TableInfo{Name: "secret", ID: tabs["secret"].ID, Home: "home"}
	m.pub = scope.TableInfo{Name: "pub", ID: tabs["pub"].ID, Home: "home"}
	return m
}

// checkSecretIntact: secret still has scope home,office and key k on both
// holders, and evil has no copy of it.
func (m *secMesh) checkSecretIntact(t *testing.T) {
	t.Helper()
	for _, n := range []*node{m.home, m.office, m.boss} {
		tabs, err := n.plTables()
		if err != nil {
			t.Fatal(err)
		}
		if ti := tabs["secret"]; ti.Scope.String() != "home,office" || ti.ID != m.secret.ID {
			t.Errorf("%s: secret is %+v", n.name, ti)
		}
	}
	for _, n := range []*node{m.home, m.office} {
		if got, err := n.plScan("secret"); err != nil || !maps0Equal(got, map[string]string{"k": "v"}) {
			t.Errorf("%s: secret holds %v (%v)", n.name, got, err)
		}
	}
	if dirs := m.evil.copyDirs("secret"); len(dirs) != 0 {
		t.Errorf("evil has a copy of secret: %v", dirs)
	}
}

func maps0Equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A member node's stock socket has that node's rights: it may not change
// the scope of, or drop, a table whose home is another node, nor add
// identities or grants, nor write the system tables, nor read another
// table's status; each refusal exits 4 (1 for the raw write) and says who
// may. An admin node may; a member re-scopes and drops its own table.
func TestMemberSocketHasItsNodesRights(t *testing.T) {
	m := newSecMesh(t)
	m.boss.must("identity", "add", "alice")
	plPoll(t, "evil knows alice", func() (bool, string) {
		out := m.evil.must("identity", "list")
		return strings.Contains(out, "alice"), out
	})
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"table", "scope", "secret", "home,office,evil"}, 4, "evil is a member node: changing or dropping table secret needs its home node (home) or an admin node"},
		{[]string{"table", "drop", "secret", "--yes"}, 4, "needs its home node (home) or an admin node"},
		{[]string{"identity", "add", "bob"}, 4, "evil is a member node: changing identities needs an admin node"},
		{[]string{"acl", "grant", "alice", "*", "admin"}, 4, "changing ACLs needs an admin node"},
		{[]string{"identity", "remove", "alice"}, 4, "needs an admin node"},
		{[]string{"node", "revoke", "home", "--yes"}, 4, "revoking a certificate needs an admin node"},
		{[]string{"put", "cortex_meta", "table/pwn", `{"name":"pwn","id":"/../../x","scope":"all","home":"evil"}`}, 1, "cortex_meta is a system table"},
		{[]string{"del", "cortex_meta", "node/home"}, 1, "cortex_meta is a system table"},
	} {
		r := m.evil.cli(c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("evil: cortex %s: exit %d, %q; want exit %d and %q", strings.Join(c.args, " "), r.code, r.stderr, c.code, c.want)
		}
	}
	// evil's sync status learns nothing of secret's copies.
	if st := m.evil.syncStatus("secret"); len(st.Tables) != 1 || len(st.Tables[0].Replicas) != 0 || st.Tables[0].State != repair.Unknown {
		t.Errorf("evil's sync status of secret: %+v", st)
	}
	m.checkSecretIntact(t)
	if ids := m.home.must("identity", "list"); strings.Contains(ids, "bob") {
		t.Errorf("home registered bob: %s", ids)
	}

	// The legitimate paths: home re-scopes and drops its own table; the
	// admin widens secret, and the change reaches every node.
	m.home.must("table", "create", "tmp", "--scope", "home")
	m.home.must("table", "scope", "tmp", "home,office")
	m.office.waitTableHeld("tmp", true)
	m.home.must("table", "drop", "tmp", "--yes")
	m.office.plWaitNoCopy("tmp")
	m.boss.must("table", "scope", "secret", "home,office,boss")
	m.boss.waitValue("secret", "k", "v")
	m.boss.must("acl", "grant", "alice", "pub", "read")
	plPoll(t, "home lists alice's grant", func() (bool, string) {
		out := m.home.must("acl", "list")
		return strings.Contains(out, "alice") && strings.Contains(out, "pub"), out
	})
}

// A raw-protocol peer with a member's certificate (mallory) forges what a
// stock node never sends: changes signed in another's name or outside its
// rights, catalog records that would become paths, clocks at the end of
// time, a hand-off of a table it never held, membership records of other
// nodes and of ghosts, oversized values. Every one is refused by every
// node; the stream and the mesh go on.
func TestRawPeerForgeriesAreRefused(t *testing.T) {
	m := newSecMesh(t)
	mallory := newRawPeer(t, m.certs, "mallory")
	malloryAddr := mallory.host.Addrs()[0]
	ma := strings.Split(malloryAddr.String(), "/")
	own := store.Member{Node: "mallory", PeerID: mallory.host.ID().String(), Addrs: []string{"127.0.0.1:" + ma[len(ma)-1]},
		Draining: []string{m.secret.ID}} // "handing off" a table it never held
	members := []map[string]any{mallory.memberRecord(mallory.ident, own)}
	// home's membership record pointing at mallory, and 20 ghosts with 16
	// addresses each, all signed by mallory.
	members = append(members, mallory.memberRecord(mallory.ident, store.Member{Node: "home", Addrs: own.Addrs}))
	for i := range 20 {
		g := store.Member{Node: fmt.Sprintf("ghost%d", i)}
		for j := range 16 {
			g.Addrs = append(g.Addrs, fmt.Sprintf("127.0.0.1:%d", 20000+16*i+j))
		}
		members = append(members, mallory.memberRecord(mallory.ident, g))
	}
	// What it publishes if asked: into secret, a key; into pub, a value over
	// home's limit (4 KiB), one from an hour ahead, and a sentinel.
	now := tables.HLC(time.Now().UnixMilli(), 0)
	mallory.setPublished("secret", wal.Entry{Op: wal.OpPut, Key: []byte("pwned"), Value: []byte("x"), Version: wal.Version{HLC: now, Origin: "mallory"}})
	mallory.setPublished("pub",
		wal.Entry{Op: wal.OpPut, Key: []byte("big"), Value: bytes.Repeat([]byte("b"), 8192), Version: wal.Version{HLC: now, Origin: "mallory"}},
		wal.Entry{Op: wal.OpPut, Key: []byte("future"), Value: []byte("f"), Version: wal.Version{HLC: tables.HLC(time.Now().Add(time.Hour).UnixMilli(), 0), Origin: "mallory"}},
		wal.Entry{Op: wal.OpPut, Key: []byte("sentinel"), Value: []byte("s"), Version: wal.Version{HLC: now, Origin: "mallory"}})
	homeID := mallory.connect(m.home.meshAddr, members)

	// home adopts mallory's own record (signed by it) and follows it for
	// pub, where it is in the scope: the sentinel arrives, the oversized
	// and the future values do not.
	m.home.waitValue("pub", "sentinel", "s")
	for _, n := range []*node{m.home, m.office, m.boss} {
		plPoll(t, n.name+" has mallory's membership record", func() (bool, string) {
			out := n.must("scan", "cortex_meta", "--prefix", "node/")
			return strings.Contains(out, "node/mallory"), out
		})
	}
	for _, key := range []string{"big", "future"} {
		if r := m.home.cli("get", "pub", key); r.code != 3 {
			t.Errorf("home adopted mallory's %s: %+v", key, r)
		}
	}
	if mallory.askedFor("pub") == 0 {
		t.Fatal("home never followed mallory for pub")
	}
	if n := mallory.askedFor("secret"); n != 0 {
		t.Errorf("home asked mallory for secret %d times: a node that never held it was followed", n)
	}
	// No forged membership record was taken anywhere: home's own record
	// still has home's address, and no ghost exists.
	for _, n := range []*node{m.home, m.office, m.boss, m.evil} {
		out := n.must("scan", "cortex_meta", "--prefix", "node/", "--json")
		if strings.Contains(out, "ghost") {
			t.Errorf("%s took a ghost's record", n.name)
		}
		var recs []struct {
			Key   string `json:"key"`
			Value string `json:"value"`
		}
		json.Unmarshal([]byte(out), &recs)
		for _, r := range recs {
			if r.Key == "node/home" && strings.Contains(r.Value, own.Addrs[0]) {
				t.Errorf("%s took the forged record of home: %s", n.name, r.Value)
			}
		}
	}

	// Through the repair protocol: changes in home's name, at the end of
	// time, a catalog record that would be a path, one named after a
	// system table, a scope change of secret by mallory. All refused.
	secretKey := "table/secret/" + m.secret.ID
	widened := map[string]any{"name": "secret", "id": m.secret.ID, "scope": []string{"home", "mallory", "office"}, "home": "home"}
	val := func(v any) []byte { b, _ := json.Marshal(v); return b }
	forged := []wal.Entry{
		mallory.signed(scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte(secretKey), Value: val(widened), Version: wal.Version{Origin: "home", HLC: ^uint64(0)}}),
		mallory.signed(scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte(secretKey), Value: val(widened)}),
		mallory.signed(scope.MetaTable, wal.Entry{Op: wal.OpDelete, Key: []byte(secretKey)}),
		mallory.signed(scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte("table/pwn//../../x"), Value: val(map[string]any{"name": "pwn", "id": "/../../x", "scope": "all", "home": "mallory"})}),
		mallory.signed(scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte("table/cortex_acls/0123456789abcdef-mallory"), Value: val(map[string]any{"name": "cortex_acls", "id": "0123456789abcdef-mallory", "scope": "all", "home": "mallory"})}),
		mallory.signed(scope.MetaTable, wal.Entry{Op: wal.OpPut, Key: []byte("node/mallory"), Value: val(own), Version: wal.Version{HLC: ^uint64(0)}}),
		mallory.signed(scope.IdentitiesTable, wal.Entry{Op: wal.OpPut, Key: []byte("bob"), Value: val(store.Identity{Name: "bob", Kind: "client"})}),
	}
	for i, e := range forged {
		table := scope.MetaTable
		if i == len(forged)-1 {
			table = scope.IdentitiesTable
		}
		ans := mallory.repairApply(homeID, table, "system", []wal.Entry{e})
		adoptedNone := len(ans) == 2 && ans[0] == 'A' && ans[1] == 0
		refused := len(ans) > 0 && ans[0] == 'E' && bytes.Contains(ans, []byte("refused"))
		if !adoptedNone && !refused {
			t.Errorf("forgery %d: home answered %q, want nothing adopted", i, ans)
		}
	}
	// Data-table entries from a peer outside the table's scope: refused
	// before anything is read.
	if ans := mallory.repairApply(homeID, "secret", m.secret.ID, []wal.Entry{{Op: wal.OpPut, Key: []byte("pwned"), Value: []byte("x"), Version: wal.Version{HLC: now, Origin: "home"}}}); len(ans) == 0 || ans[0] != 'E' || !bytes.Contains(ans, []byte("not in the scope")) {
		t.Errorf("repair apply into secret: %q", ans)
	}
	m.checkSecretIntact(t)
	if r := m.home.cli("get", "secret", "pwned"); r.code != 3 {
		t.Errorf("home's secret has pwned: %+v", r)
	}
	// home's clock was not moved to the end of time: a new write gets a
	// timestamp of now.
	var w struct {
		HLC uint64 `json:"hlc,string"`
	}
	if err := json.Unmarshal([]byte(m.home.must("put", "pub", "after", "1", "--json")), &w); err != nil || w.HLC == 0 {
		t.Fatalf("put --json: %+v, %v", w, err)
	}
	if at, _ := tables.HLCTime(w.HLC); at.After(time.Now().Add(time.Minute)) {
		t.Errorf("home's next write is stamped %s", at)
	}
	if entries, _ := os.ReadDir(filepath.Join(filepath.Dir(m.home.dir), "x")); len(entries) != 0 {
		t.Error("a directory was made outside home's data directory")
	}

	// Status: only of the tables mallory holds (not secret).
	var names []string
	for _, c := range mallory.status(homeID) {
		names = append(names, c.Table)
	}
	if slices.Contains(names, "secret") || !slices.Contains(names, "pub") || !slices.Contains(names, scope.MetaTable) {
		t.Errorf("home's status to mallory: %v", names)
	}
	if got := mallory.status(homeID, "secret"); len(got) != 0 {
		t.Errorf("home's status of secret to mallory: %+v", got)
	}
	// Still connected and replicating: the refusals did not end the mesh.
	m.home.must("put", "pub", "last", "1")
	m.office.waitValue("pub", "last", "1")
}

// A revoked node is disconnected everywhere within seconds and refused
// after; its certificate's later changes are not taken.
func TestRevokedNodeIsShutOut(t *testing.T) {
	m := newSecMesh(t)
	if r := m.boss.cli("node", "revoke", "evil"); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("revoke without --yes and without a terminal: %+v", r)
	}
	m.boss.must("node", "revoke", "evil", "--yes")
	for _, n := range []*node{m.home, m.office, m.boss} {
		plPoll(t, n.name+" is no longer connected to evil", func() (bool, string) {
			peers := n.connectedPeers()
			return !peers["evil"], fmt.Sprint(peers)
		})
	}
	// evil keeps redialing; the others refuse it for being revoked.
	m.home.waitLog(`refused an inbound connection.*evil.*is revoked|could not connect.*revoked`)
	var list []store.Revocation
	json.Unmarshal([]byte(m.office.must("node", "revocations", "--json")), &list)
	if len(list) != 1 || list[0].Target != "evil" || list[0].By != "boss" {
		t.Errorf("office's revocation list: %+v", list)
	}
	// A write on evil (it still holds pub, alone) never replaces home's.
	m.home.must("put", "pub", "k", "home")
	m.evil.must("put", "pub", "k", "evil") // newer
	m.home.must("put", "pub", "k2", "2")
	m.office.waitValue("pub", "k2", "2")
	if got, _ := m.office.plScan("pub"); got["k"] != "home" {
		t.Errorf("office has pub k = %q from the revoked node", got["k"])
	}
}

// A node taken out of a table's scope may hand off what it had (holders
// follow it while it says it is draining) but not what it writes after: a
// write stamped before the scope change is adopted, one stamped after is
// not, even though it keeps announcing the hand-off.
func TestRemovedNodeHandsOffOnlyWhatItHad(t *testing.T) {
	m := newSecMesh(t)
	mallory := newRawPeer(t, m.certs, "mallory")
	mallory.freshLogs = true
	ma := strings.Split(mallory.host.Addrs()[0].String(), "/")
	own := store.Member{Node: "mallory", PeerID: mallory.host.ID().String(), Addrs: []string{"127.0.0.1:" + ma[len(ma)-1]}}
	m.home.must("table", "create", "shared", "--scope", "home,mallory,office", "--allow-unknown")
	m.home.must("put", "shared", "k", "v")
	m.office.waitValue("shared", "k", "v")
	tabs, err := m.home.plTables()
	if err != nil {
		t.Fatal(err)
	}
	id := tabs["shared"].ID
	mallory.connect(m.home.meshAddr, []map[string]any{mallory.memberRecord(mallory.ident, own)})
	plPoll(t, "home follows mallory for shared", func() (bool, string) { return mallory.askedFor("shared") > 0, "" })

	before := tables.HLC(time.Now().UnixMilli(), 0) // written while it was in the scope
	m.home.must("table", "scope", "shared", "home,office", "--yes")
	after := tables.HLC(time.Now().Add(time.Second).UnixMilli(), 0)
	mallory.setPublished("shared",
		wal.Entry{Op: wal.OpPut, Key: []byte("had"), Value: []byte("before"), Version: wal.Version{HLC: before, Origin: "mallory"}},
		wal.Entry{Op: wal.OpPut, Key: []byte("after-removal"), Value: []byte("mallory"), Version: wal.Version{HLC: after, Origin: "mallory"}})
	own.Draining = []string{id}
	mallory.connect(m.home.meshAddr, []map[string]any{mallory.memberRecord(mallory.ident, own)})
	m.home.waitValue("shared", "had", "before")
	m.office.waitValue("shared", "had", "before")
	for _, n := range []*node{m.home, m.office} {
		if r := n.cli("get", "shared", "after-removal"); r.code != 3 {
			t.Errorf("%s adopted a write mallory made after it was taken out: %+v", n.name, r)
		}
	}
}
