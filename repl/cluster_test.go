package repl

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/mesh/memnet"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// A test cluster: nodes with real stores (in mesh mode, so that system
// tables are signed and checked) over either transport: memnet (in memory,
// links a test cuts and heals) or libp2p on 127.0.0.1.

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

type tnode struct {
	name  string
	mesh  mesh.Transport
	store *store.Store
	repl  *Replicator // nil for a node the test speaks for itself
	logs  *logBuffer
	addr  string // libp2p only: its listen address
	dir   string // its data directory
}

type cluster struct {
	t     *testing.T
	certs string
	ca    *x509.CertPool
	mem   *memnet.Network // nil: libp2p
	nodes map[string]*tnode
}

var transports = []string{"memnet", "libp2p"}

func newCluster(t *testing.T, transport string) *cluster {
	t.Helper()
	certs := t.TempDir()
	if err := pki.CreateCA(certs, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadCA(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	c := &cluster{t: t, certs: certs, ca: ca, nodes: map[string]*tnode{}}
	if transport == "memnet" {
		c.mem = memnet.New()
		t.Cleanup(c.mem.Close)
	}
	return c
}

// add starts a node; with replicate false it gets no Replicator (the test
// speaks the protocol for it). A libp2p node joins through the nodes added
// before it.
func (c *cluster) add(name string, replicate bool) *tnode {
	c.t.Helper()
	return c.addDir(name, replicate, c.t.TempDir())
}

// addDir is add with the node's data directory (a node restarted on it).
func (c *cluster) addDir(name string, replicate bool, dir string) *tnode {
	c.t.Helper()
	crt, key := pki.NodeCertFiles(c.certs, name)
	if _, err := os.Stat(crt); err != nil {
		if err := pki.CreateNodeCert(c.certs, name, pki.RoleMember, []string{"127.0.0.1"}, false, time.Now()); err != nil {
			c.t.Fatal(err)
		}
	}
	id, err := pki.LoadIdentity(crt, key, pki.KindNode)
	if err != nil {
		c.t.Fatal(err)
	}
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(store.Options{Dir: dir, Node: name, Table: tables.Options{NoSync: true}, Logger: log, Identity: id, CA: c.ca})
	if err != nil {
		c.t.Fatal(err)
	}
	n := &tnode{name: name, store: st, logs: logs, dir: dir}
	if c.mem != nil {
		n.mesh = c.mem.Node(name)
	} else {
		var seeds []string
		for _, o := range c.nodes {
			seeds = append(seeds, o.addr)
		}
		m, err := mesh.Start(context.Background(), mesh.Config{Identity: id, CAFile: filepath.Join(c.certs, "ca.crt"),
			Listen: "127.0.0.1:0", Peers: seeds, Store: st, Logger: log})
		if err != nil {
			c.t.Fatal(err)
		}
		n.mesh, n.addr = m, m.ListenAddrs()[0]
		c.t.Cleanup(func() { m.Close() })
	}
	if replicate {
		n.repl = Start(n.mesh, st, log)
	}
	c.t.Cleanup(func() {
		if n.repl != nil {
			n.repl.Close()
		}
		st.Close()
	})
	c.nodes[name] = n
	return n
}

// waitReady waits until every node has every other as a ready peer.
func (c *cluster) waitReady() {
	c.t.Helper()
	for _, n := range c.nodes {
		waitFor(c.t, n.name+" ready with the others", func() bool { return len(n.mesh.Ready()) == len(c.nodes)-1 })
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
}

// contents reads every live record of a table on n ("" if n has no copy).
func (n *tnode) contents(table string) string {
	tb, err := n.store.Table(table)
	if err != nil {
		return ""
	}
	recs, err := tb.Scan(nil, nil, 0)
	if err != nil {
		return ""
	}
	var b bytes.Buffer
	for _, r := range recs {
		fmt.Fprintf(&b, "%s=%s@%d/%s ", r.Key, r.Value, r.Version.HLC, r.Version.Origin)
	}
	return b.String()
}
