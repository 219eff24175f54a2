package mesh

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mss "github.com/multiformats/go-multistream"
)

// logBuffer is a concurrency-safe log sink.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type testMesh struct {
	t   testing.TB
	dir string // certificates
}

func newTestMesh(t testing.TB) *testMesh {
	dir := t.TempDir()
	if err := pki.CreateCA(dir, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	return &testMesh{t: t, dir: dir}
}

func (m *testMesh) identity(name string) *pki.Identity {
	m.t.Helper()
	cert, key := pki.NodeCertFiles(m.dir, name)
	if _, err := os.Stat(cert); err != nil {
		if err := pki.CreateNodeCert(m.dir, name, pki.RoleMember, []string{"127.0.0.1"}, false, time.Now()); err != nil {
			m.t.Fatal(err)
		}
	}
	id, err := pki.LoadIdentity(cert, key, pki.KindNode)
	if err != nil {
		m.t.Fatal(err)
	}
	return id
}

type testNode struct {
	*Node
	logs *logBuffer
	st   *store.Store
}

// start runs a node with a real st on 127.0.0.1 and an ephemeral port.
func (m *testMesh) start(name string, now func() time.Time, peers ...string) testNode {
	m.t.Helper()
	return m.startWith(nodeOpts{name: name, now: now, peers: peers})
}

// nodeOpts are what startWith may vary.
type nodeOpts struct {
	name        string
	admin       bool
	dir         string // the store's directory (default: a new one)
	incarnation string
	now         func() time.Time
	peers       []string
	before      func(*store.Store) // called on the store before the mesh starts
}

// startWith runs a node as o says; stop closes it before the test ends.
func (m *testMesh) startWith(o nodeOpts) testNode {
	m.t.Helper()
	var id *pki.Identity
	if o.admin {
		id = m.adminIdentity(o.name)
	} else {
		id = m.identity(o.name)
	}
	ca, err := pki.LoadCA(filepath.Join(m.dir, "ca.crt"))
	if err != nil {
		m.t.Fatal(err)
	}
	if o.dir == "" {
		o.dir = m.t.TempDir()
	}
	st, err := store.Open(store.Options{Dir: o.dir, Node: o.name, Table: tables.Options{NoSync: true}, Identity: id, CA: ca})
	if err != nil {
		m.t.Fatal(err)
	}
	if o.before != nil {
		o.before(st)
	}
	logs := &logBuffer{}
	n, err := Start(context.Background(), Config{
		Identity: id, CAFile: filepath.Join(m.dir, "ca.crt"), Listen: "127.0.0.1:0",
		Peers: o.peers, Store: st, Now: o.now, Incarnation: o.incarnation,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		m.t.Fatal(err)
	}
	tn := testNode{n, logs, st}
	m.t.Cleanup(tn.stop)
	return tn
}

// adminIdentity is the identity of an admin node (made with its name).
func (m *testMesh) adminIdentity(name string) *pki.Identity {
	m.t.Helper()
	cert, key := pki.NodeCertFiles(m.dir, name)
	if _, err := os.Stat(cert); err != nil {
		if err := pki.CreateNodeCert(m.dir, name, pki.RoleAdmin, []string{"127.0.0.1"}, false, time.Now()); err != nil {
			m.t.Fatal(err)
		}
	}
	id, err := pki.LoadIdentity(cert, key, pki.KindNode)
	if err != nil {
		m.t.Fatal(err)
	}
	return id
}

// stop closes the node and its store (again: a no-op).
func (n testNode) stop() {
	n.Close()
	n.st.Close()
}

func (n testNode) addr() string { return n.ListenAddrs()[0] }

// helloDone reports whether the hello with peer id has completed.
func (n testNode) helloDone(id peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p, ok := n.peers[id]
	return ok && p.measured
}

// forget drops what n learned of peer id.
func (n testNode) forget(id peer.ID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.peers, id)
}

// connectedTo reports the names of the peers n is connected to with a
// measured clock.
func (n testNode) connectedTo() []string {
	var out []string
	for _, p := range n.Peers() {
		if p.Connected && p.Node != "" {
			out = append(out, p.Node)
		}
	}
	return out
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}

// Three nodes: b and c know only a; through membership everyone ends up
// connected to everyone.
func TestThreeNodesFindEachOther(t *testing.T) {
	m := newTestMesh(t)
	a := m.start("a", nil)
	b := m.start("b", nil, a.addr())
	c := m.start("c", nil, a.addr())
	for _, n := range []testNode{a, b, c} {
		waitFor(t, n.Name()+" connected to both others", func() bool { return len(n.connectedTo()) == 2 })
	}
	for _, p := range b.Peers() {
		if p.PeerID == "" || p.Addr == "" {
			t.Errorf("peer status incomplete: %+v", p)
		}
	}
	// Membership records of all three are in each cortex_meta.
	recs, err := c.meta.Scan(store.MemberKey(""), nil, 0)
	if err != nil || len(recs) != 3 {
		t.Fatalf("c holds %d membership records (%v), want 3", len(recs), err)
	}
}

func TestClockSkew(t *testing.T) {
	m := newTestMesh(t)
	a := m.start("a", nil)
	// 5 s ahead: connected, skew measured and logged.
	ahead := m.start("b", func() time.Time { return time.Now().Add(5 * time.Second) }, a.addr())
	waitFor(t, "b connected with its skew measured", func() bool {
		for _, p := range a.Peers() {
			if p.Node == "b" && p.Connected && p.ClockSkewMS > 4000 {
				return true
			}
		}
		return false
	})
	waitFor(t, "a warning about b's clock", func() bool { return strings.Contains(a.logs.String(), "above --max-clock-skew") })
	_ = ahead
	// 2 minutes behind: refused on both sides, with a clear message.
	late := m.start("c", func() time.Time { return time.Now().Add(-2 * time.Minute) }, a.addr())
	waitFor(t, "both sides to log the refusal", func() bool {
		return strings.Contains(a.logs.String(), "clock skew of") && strings.Contains(late.logs.String(), "clock skew of")
	})
	// Counted by reason: c's own measure, or a's refusal in its hello.
	if a.Refusals()["clock_skew"] == 0 || late.Refusals()["clock_skew"]+late.Refusals()["refused_by_peer"] == 0 {
		t.Fatalf("refusals counted: a %v, c %v; want clock_skew on a, clock_skew or refused_by_peer on c", a.Refusals(), late.Refusals())
	}
	for _, p := range a.Peers() {
		if p.Node == "c" && p.Connected {
			// A refused peer may redial, but is closed again at once.
			waitFor(t, "c disconnected", func() bool {
				for _, p := range a.Peers() {
					if p.Node == "c" && p.Connected {
						return false
					}
				}
				return true
			})
		}
	}
}

// rogue is a certificate a node of this mesh must not accept.
type rogue struct {
	name   string
	cert   tls.Certificate
	reason string // what the honest side's log says
	label  string // the refusal's RefusalReason
}

func rogues(t *testing.T, m *testMesh) []rogue {
	load := func(dir, cert, key string) tls.Certificate {
		c, err := tls.LoadX509KeyPair(filepath.Join(dir, cert), filepath.Join(dir, key))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	other := t.TempDir()
	pki.CreateCA(other, false, time.Now())
	pki.CreateNodeCert(other, "x", pki.RoleMember, nil, false, time.Now())
	pki.CreateClientCert(m.dir, "alice", false, time.Now())
	pki.CreateNodeCert(m.dir, "old", pki.RoleMember, nil, false, time.Now().Add(-6*365*24*time.Hour))
	pki.CreateNodeCert(m.dir, "y", pki.RoleMember, nil, false, time.Now())
	mismatched := load(m.dir, "node-y.crt", "node-y.key")
	mismatched.PrivateKey = load(m.dir, "node-old.crt", "node-old.key").PrivateKey
	return []rogue{
		{"another CA", load(other, "node-x.crt", "node-x.key"), "not signed by this mesh's CA", "foreign_ca"},
		{"client certificate", load(m.dir, "client-alice.crt", "client-alice.key"), "client certificate, not a node certificate", "wrong_kind"},
		{"expired", load(m.dir, "node-old.crt", "node-old.key"), "expired", "expired"},
		{"key does not match", mismatched, "invalid signature", "other"},
	}
}

// A node refuses every rogue certificate, as listener and as dialer, and
// the dialing side's connect itself fails.
func TestRefusedCertificates(t *testing.T) {
	m := newTestMesh(t)
	honest := m.start("a", nil)
	for _, r := range rogues(t, m) {
		t.Run(r.name+"/rogue dials", func(t *testing.T) {
			before, counted := len(honest.logs.String()), honest.Refusals()[r.label]
			conn, err := net.Dial("tcp", honest.addr())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if err := mss.SelectProtoOrFail(protocol.ID(SecurityID), conn); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := rogueOutbound(ctx, r.cert, conn); err == nil {
				t.Fatal("the rogue's connect succeeded")
			}
			waitFor(t, "the honest side to log why", func() bool {
				return strings.Contains(honest.logs.String()[before:], r.reason)
			})
			if len(honest.connectedTo()) != 0 {
				t.Fatalf("honest node connected to %v", honest.connectedTo())
			}
			if got := honest.Refusals()[r.label]; got != counted+1 {
				t.Fatalf("refusals for %s: %d, want %d", r.label, got, counted+1)
			}
		})
		t.Run(r.name+"/honest dials", func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				mux := mss.NewMultistreamMuxer[protocol.ID]()
				mux.AddHandler(SecurityID, nil)
				if _, _, err := mux.Negotiate(conn); err != nil {
					return
				}
				rogueInbound(r.cert, conn)
			}()
			before, counted := len(honest.logs.String()), honest.Refusals()[r.label]
			if _, err := honest.dial(context.Background(), ln.Addr().String()); err == nil {
				t.Fatal("the honest node connected to a rogue")
			}
			if got := honest.Refusals()[r.label]; got != counted+1 {
				t.Fatalf("refusals for %s: %d, want %d (all: %v)", r.label, got, counted+1, honest.Refusals())
			}
			if !strings.Contains(honest.logs.String()[before:], r.reason) {
				t.Fatalf("the honest side's log does not say %q:\n%s", r.reason, honest.logs.String()[before:])
			}
		})
	}
}

// rogueOutbound and rogueInbound run a TLS handshake that verifies nothing,
// as a misconfigured or hostile node would.
func rogueOutbound(ctx context.Context, cert tls.Certificate, conn net.Conn) error {
	tc := tls.Client(conn, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true})
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		return err
	}
	if b[0] != confirmAccepted {
		return fmt.Errorf("got %#x", b[0])
	}
	return nil
}

func rogueInbound(cert tls.Certificate, conn net.Conn) {
	tc := tls.Server(conn, &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, ClientAuth: tls.RequireAnyClientCert})
	if tc.Handshake() != nil {
		return
	}
	tc.Write([]byte{confirmAccepted})
	tc.SetReadDeadline(time.Now().Add(5 * time.Second))
	io.Copy(io.Discard, tc)
}

// A member that rotates the addresses in its membership record costs the
// others at most the dial loops of its current record: the loops of
// addresses no record lists any more stop.
func TestDialLoopsFollowTheRecords(t *testing.T) {
	m := newTestMesh(t)
	a := m.start("a", nil)
	b := m.identity("b")
	loops := func() int {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.targets)
	}
	for round := range 5 {
		mem := store.Member{Node: "b", PeerID: "x"}
		for j := range 16 {
			mem.Addrs = append(mem.Addrs, fmt.Sprintf("127.0.0.1:%d", 30000+16*round+j))
		}
		value, _ := json.Marshal(mem)
		e := wal.Entry{Op: wal.OpPut, Key: store.MemberKey("b"), Value: value,
			Version: wal.Version{HLC: tables.HLC(time.Now().UnixMilli(), uint16(round)), Origin: "b"}}
		if err := store.Sign(b, scope.MetaTable, &e); err != nil {
			t.Fatal(err)
		}
		if _, err := a.meta.Apply(context.Background(), []wal.Entry{e}); err != nil {
			t.Fatal(err)
		}
		a.dialKnownMembers()
		if n := loops(); n != 16 {
			t.Fatalf("round %d: %d dial loops, want the 16 of b's current record", round, n)
		}
	}
}
