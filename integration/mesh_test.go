package integration

import (
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/pki"
)

// meshCerts makes a mesh CA and node certificates in a temporary directory:
// member nodes, but a name written NAME+admin is an admin node NAME.
func meshCerts(t testing.TB, names ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := pki.CreateCA(dir, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		role := pki.RoleMember
		if name, ok := strings.CutSuffix(n, "+admin"); ok {
			n, role = name, pki.RoleAdmin
		}
		if err := pki.CreateNodeCert(dir, n, role, []string{"127.0.0.1"}, false, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// newMeshNode prepares a node in mesh mode listening on 127.0.0.1.
func newMeshNode(t testing.TB, certs, name string, peers ...string) *node {
	cert, key := pki.NodeCertFiles(certs, name)
	n := newNode(t, name, "--mesh-ca", filepath.Join(certs, "ca.crt"), "--mesh-cert", cert, "--mesh-key", key)
	n.meshAddr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	n.args = append(n.args, "--mesh-listen", n.meshAddr)
	for _, p := range peers {
		n.args = append(n.args, "--peer", p)
	}
	return n
}

// connectedPeers returns the names of the peers `cortex mesh peers` shows
// as connected.
func (n *node) connectedPeers() map[string]bool {
	n.t.Helper()
	var peers []mesh.PeerStatus
	if err := json.Unmarshal([]byte(n.must("mesh", "peers", "--json")), &peers); err != nil {
		n.t.Fatal(err)
	}
	out := map[string]bool{}
	for _, p := range peers {
		if p.Connected {
			out[p.Node] = true
		}
	}
	return out
}

func (n *node) waitPeers(want ...string) {
	n.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := n.connectedPeers()
		ok := len(got) == len(want)
		for _, w := range want {
			ok = ok && got[w]
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			n.t.Fatalf("%s: connected to %v, want %v\n%s", n.name, got, want, n.logs)
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// Three cortexd processes; b and c know only a, and find each other through
// the membership records a hands them.
func TestMeshThreeNodesConnectThroughMembership(t *testing.T) {
	certs := meshCerts(t, "a", "b", "c")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	c := newMeshNode(t, certs, "c", a.meshAddr)
	c.start()
	a.waitPeers("b", "c")
	b.waitPeers("a", "c")
	c.waitPeers("a", "b")
	var st map[string]any
	if err := json.Unmarshal([]byte(c.must("node", "status", "--json")), &st); err != nil || st["mesh"] != true {
		t.Fatalf("node status: %v %v", st, err)
	}
}

// A peer killed with SIGKILL is redialed when it comes back, and the
// restarted node redials the others from the membership records it kept.
func TestMeshRedialAfterKill9(t *testing.T) {
	certs := meshCerts(t, "a", "b")
	a := newMeshNode(t, certs, "a")
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	a.waitPeers("b")
	b.waitPeers("a")
	// b must have stored a's membership record before it dies: that record
	// is how it finds a again without --peer.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(b.must("scan", "cortex_meta", "--prefix", "node/a"), "node/a") {
		if time.Now().After(deadline) {
			t.Fatalf("b never recorded a's membership\n%s", b.logs)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}

	b.kill()
	a.waitPeers()
	// b comes back with no --peer: it knows a from its membership records.
	b.args = removePeers(b.args)
	b.start()
	a.waitPeers("b")
	b.waitPeers("a")

	a.kill()
	b.waitPeers()
	a.start()
	b.waitPeers("a") // b redials a with backoff
}

func removePeers(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		if args[i] == "--peer" {
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

// The node name comes from the certificate; a different --node-name is an error.
func TestMeshNodeNameMustMatchCertificate(t *testing.T) {
	certs := meshCerts(t, "a")
	n := newMeshNode(t, certs, "a")
	for i, arg := range n.args {
		if arg == "--node-name" {
			n.args[i+1] = "impostor"
		}
	}
	if err := n.startNoWait(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.exited:
		if err == nil {
			t.Fatal("cortexd accepted a --node-name that is not its certificate's")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("cortexd still running")
	}
}
