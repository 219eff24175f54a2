package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/mesh/memnet"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

type memNode struct {
	name  string
	store *store.Store
	peers *Peers
	repl  *repl.Replicator
}

// memCluster starts nodes over an in-memory mesh, with real stores in mesh
// mode, replicating.
func memCluster(t *testing.T, names ...string) (*memnet.Network, []*memNode) {
	t.Helper()
	certs := t.TempDir()
	if err := pki.CreateCA(certs, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	nw := memnet.New()
	t.Cleanup(nw.Close)
	quiet := slog.New(slog.DiscardHandler)
	var out []*memNode
	for _, name := range names {
		if err := pki.CreateNodeCert(certs, name, pki.RoleMember, nil, false, time.Now()); err != nil {
			t.Fatal(err)
		}
		crt, key := pki.NodeCertFiles(certs, name)
		id, err := pki.LoadIdentity(crt, key, pki.KindNode)
		if err != nil {
			t.Fatal(err)
		}
		st, err := store.Open(store.Options{Dir: t.TempDir(), Node: name, Table: tables.Options{NoSync: true}, Logger: quiet, Identity: id, CA: ca})
		if err != nil {
			t.Fatal(err)
		}
		tr := nw.Node(name)
		n := &memNode{name: name, store: st, peers: NewPeers(tr, st, quiet), repl: repl.Start(tr, st, quiet)}
		t.Cleanup(func() { n.repl.Close(); st.Close() })
		// Its membership record, as the mesh writes it: the others learn
		// of it through cortex_meta, and count it when it is cut off.
		meta, err := st.Table(scope.MetaTable)
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := json.Marshal(store.Member{Node: name})
		if _, err := meta.Put(context.Background(), store.MemberKey(name), rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range out {
		for !slices.Equal(n.store.Members(), slices.Sorted(slices.Values(names))) {
			if time.Now().After(deadline) {
				t.Fatalf("%s knows the members %v, want %v", n.name, n.store.Members(), names)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	}
	return nw, out
}

func (n *memNode) table(t *testing.T, name string) *tables.Table {
	t.Helper()
	tb, err := n.store.Table(name)
	if err != nil {
		t.Fatal(err)
	}
	return tb
}

// Repair against in-memory peers: three copies that replication no longer
// reconciles (it is stopped) hold different writes and a conflict; repair
// from one node makes every digest equal, keeps every write, and settles the
// conflict by last-write-wins; a dry run before it changes nothing.
func TestRepairOverAnInMemoryMesh(t *testing.T) {
	ctx := context.Background()
	_, nodes := memCluster(t, "a", "b", "c")
	a := nodes[0]
	if _, err := a.store.CreateTable(ctx, "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for _, n := range nodes {
		for _, err := n.store.Table("t"); err != nil; _, err = n.store.Table("t") {
			if time.Now().After(deadline) {
				t.Fatalf("%s does not hold t: %v", n.name, err)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
	}
	for _, n := range nodes {
		n.repl.Close() // from here on only repair moves data
	}
	for i, n := range nodes {
		tb := n.table(t, "t")
		for k := range 30 {
			tb.Put(ctx, []byte(fmt.Sprintf("%s-%02d", n.name, k)), []byte("v"))
		}
		tb.Put(ctx, []byte("conflict"), []byte(fmt.Sprintf("from %s", n.name)))
		if i == 0 {
			time.Sleep(2 * time.Millisecond) // a's write of conflict is the oldest: a later one must win
		}
	}
	last := nodes[2].table(t, "t")
	winner, _ := last.Get([]byte("conflict"))

	digests := func() (out []uint64) {
		for _, n := range nodes {
			out = append(out, n.table(t, "t").Stats().Digest)
		}
		return out
	}
	before := digests()
	dry, err := Run(ctx, a.peers, a.store, "t", true, nil)
	if err != nil || dry.InSync {
		t.Fatalf("dry run: %+v %v", dry, err)
	}
	if fmt.Sprint(digests()) != fmt.Sprint(before) {
		t.Fatal("the dry run changed a copy")
	}
	rep, err := Run(ctx, a.peers, a.store, "t", false, nil)
	if err != nil || !rep.InSync || len(rep.Holders) != 3 {
		t.Fatalf("repair: %+v %v", rep, err)
	}
	d := digests()
	if d[0] != d[1] || d[1] != d[2] {
		t.Fatalf("digests after the repair: %x", d)
	}
	for _, n := range nodes {
		tb := n.table(t, "t")
		if st := tb.Stats(); st.Keys != 91 {
			t.Errorf("%s holds %d keys, want 91", n.name, st.Keys)
		}
		if r, _ := tb.Get([]byte("conflict")); string(r.Value) != string(winner.Value) && r.Version.Compare(winner.Version) < 0 {
			t.Errorf("%s: conflict = %q, the greatest version was %q", n.name, r.Value, winner.Value)
		}
	}
}

// Status over an in-memory mesh: once replication caught up, every holder
// answers with an equal copy and no lag (in sync); a node cut off is shown
// unreachable.
func TestGatherOverAnInMemoryMesh(t *testing.T) {
	ctx := context.Background()
	nw, nodes := memCluster(t, "a", "b", "c")
	a := nodes[0]
	if _, err := a.store.CreateTable(ctx, "t", scope.Scope{All: true}); err != nil {
		t.Fatal(err)
	}
	tb, err := waitTable(t, a, "t")
	if err != nil {
		t.Fatal(err)
	}
	for k := range 20 {
		tb.Put(ctx, []byte(fmt.Sprintf("k%02d", k)), []byte("v"))
	}
	var st Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err = Gather(ctx, a.peers, a.store, []string{"t"}, time.Second)
		if err == nil && len(st.Tables) == 1 && st.Tables[0].State == InSync {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never in sync: %+v %v", st, err)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
	for _, r := range st.Tables[0].Replicas {
		if !r.HasCopy || r.Keys != 20 || r.Lag != 0 {
			t.Fatalf("replica %+v", r)
		}
	}
	cut := time.Now()
	nw.Isolate("c")
	st, err = Gather(ctx, a.peers, a.store, []string{"t"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st.Tables[0].State != Degraded {
		t.Fatalf("c cut off: %s, want degraded", st.Tables[0].State)
	}
	for _, r := range st.Tables[0].Replicas {
		if r.Node == "c" && (r.Reachable || r.HasCopy || r.LastContactMS < cut.UnixMilli() || r.LastContactMS > time.Now().UnixMilli()) {
			t.Fatalf("c after the isolation (last contact should be the cut, %d): %+v", cut.UnixMilli(), r)
		}
	}
}

func waitTable(t *testing.T, n *memNode, name string) (*tables.Table, error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		tb, err := n.store.Table(name)
		if err == nil || time.Now().After(deadline) {
			return tb, err
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}
