package integration

import (
	"crypto/tls"
	"encoding/json"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/pki"
)

// nodeStatus is `cortex node status --json`.
func (n *node) nodeStatus() api.NodeStatus {
	n.t.Helper()
	var st api.NodeStatus
	if err := json.Unmarshal([]byte(n.must("node", "status", "--json")), &st); err != nil {
		n.t.Fatal(err)
	}
	return st
}

// peerSince is when n's connection to peer began (since_ms), failing the
// test if it is not connected.
func (n *node) peerSince(peer string) int64 {
	n.t.Helper()
	for _, p := range n.meshPeers() {
		if p.Node == peer && p.Connected {
			return p.SinceMS
		}
	}
	n.t.Fatalf("%s is not connected to %s: %v", n.name, peer, n.meshPeers())
	return 0
}

// rpcServerSerial dials a node's mTLS listener as client id of certs and
// returns the serial of the certificate the node presents.
func rpcServerSerial(t *testing.T, certs, addr, id string) string {
	t.Helper()
	pool, err := pki.LoadCA(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	crt, key := pki.ClientCertFiles(certs, id)
	pair, err := tls.LoadX509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return pki.Serial(c.ConnectionState().PeerCertificates[0])
}

// A node's certificate made with --lifetime 10m: it warns at start, its
// peer warns on connect. Renewed in place and reloaded with SIGHUP: the
// peer's connection stays up (same connection, still replicating), a new
// mesh connection and a new RPC connection present the renewed
// certificate, node status shows it. A bad reload (a new key) keeps it.
func TestCertReloadOnSIGHUP(t *testing.T) {
	certs := filepath.Join(t.TempDir(), "certs")
	mustCortex(t, "cert", "create-ca", "--dir", certs, "--mesh", "lab")
	mustCortex(t, "cert", "create-node", "a", "--dir", certs, "--host", "127.0.0.1", "--role", "admin", "--lifetime", "10m")
	mustCortex(t, "cert", "create-node", "b", "--dir", certs, "--host", "127.0.0.1")
	mustCortex(t, "cert", "create-node", "probe", "--dir", certs)
	mustCortex(t, "cert", "create-client", "alice", "--dir", certs)
	rpcAddr := freeAddr(t)
	a := newMeshNode(t, certs, "a")
	a.args = append(a.args, "--rpc-listen", rpcAddr)
	a.start()
	b := newMeshNode(t, certs, "b", a.meshAddr)
	b.start()
	a.waitPeers("b")
	b.waitPeers("a")

	// Expiry: a about itself at start, b about its peer a on connect.
	a.waitLog(`level=WARN msg="mesh: a certificate expires soon" whose="this node" name=a not_after=\S+ days_left=0`)
	b.waitLog(`level=WARN msg="mesh: a certificate expires soon" whose=peer name=a not_after=\S+ days_left=0`)
	before := a.nodeStatus()
	if before.Cert == nil || before.CA == nil || before.Cert.Name != "a" || before.Cert.DaysLeft != 0 || before.CA.Mesh != "lab" || before.CA.DaysLeft < 3649 {
		t.Fatalf("node status before: cert %+v, ca %+v", before.Cert, before.CA)
	}
	text := a.must("node", "status")
	for _, want := range []string{`(?m)^MESH NAME +lab$`, `(?m)^CERT +0 days left \(until \S+, serial ` + before.Cert.Serial + `\): expires soon, renew it$`, `(?m)^CA +36\d\d days left`} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("node status: no %s in\n%s", want, text)
		}
	}
	since := b.peerSince("a")
	if got := rpcServerSerial(t, certs, rpcAddr, "alice"); got != before.Cert.Serial {
		t.Errorf("RPC presents serial %s before the reload, want %s", got, before.Cert.Serial)
	}

	// Renew in place (same key) and reload.
	crt, _ := pki.NodeCertFiles(certs, "a")
	mustCortex(t, "cert", "renew", crt, "--dir", certs, "--lifetime", "90d")
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.waitLog(`msg="certificate reloaded: new connections present it, connections up keep theirs".* previous_serial=` + before.Cert.Serial)
	after := a.nodeStatus()
	if after.Cert.Serial == before.Cert.Serial || after.Cert.DaysLeft < 89 || !after.Cert.NotAfter.After(before.Cert.NotAfter) {
		t.Fatalf("node status after: cert %+v (before %+v)", after.Cert, before.Cert)
	}
	// The connection b had is the one it has, and it still replicates.
	a.must("table", "create", "fruit", "--scope", "all")
	a.must("put", "fruit", "apple", "red")
	b.waitValue("fruit", "apple", "red")
	if got := b.peerSince("a"); got != since {
		t.Errorf("b's connection to a changed at the reload: since %d, was %d\n%s", got, since, b.logs)
	}
	// New connections present the renewed certificate: mesh and RPC.
	p := newRawPeer(t, certs, "probe")
	id := p.connect(a.meshAddr, nil)
	if c, ok := p.sec.PeerCert(id); !ok || pki.Serial(c) != after.Cert.Serial {
		t.Errorf("a new mesh connection: serial %v, want %s", c, after.Cert.Serial)
	}
	if got := rpcServerSerial(t, certs, rpcAddr, "alice"); got != after.Cert.Serial {
		t.Errorf("RPC presents serial %s after the reload, want %s", got, after.Cert.Serial)
	}

	// A bad reload: a new key in the files. The renewed certificate stays.
	mustCortex(t, "cert", "create-node", "a", "--dir", certs, "--host", "127.0.0.1", "--role", "admin", "--overwrite")
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	a.waitLog(`level=ERROR msg="certificate reload failed: keeping the certificate in use" reason=".*another key than the running certificate.*" serial=` + after.Cert.Serial)
	if st := a.nodeStatus(); st.Cert.Serial != after.Cert.Serial {
		t.Errorf("after a bad reload the node shows serial %s, want %s", st.Cert.Serial, after.Cert.Serial)
	}
	if got := rpcServerSerial(t, certs, rpcAddr, "alice"); got != after.Cert.Serial {
		t.Errorf("RPC presents serial %s after a bad reload, want %s", got, after.Cert.Serial)
	}
	a.must("put", "fruit", "pear", "green")
	b.waitValue("fruit", "pear", "green")
	if got := b.peerSince("a"); got != since {
		t.Errorf("b's connection to a changed: since %d, was %d", got, since)
	}
	if strings.Contains(b.logs.String(), `msg="mesh: peer disconnected" peer=a`) {
		t.Errorf("b logged a disconnect from a:\n%s", b.logs)
	}
}

// SIGHUP never stops cortexd: a standalone node says there is nothing to
// reload and goes on serving; SIGTERM still stops it cleanly (exit 0).
func TestSIGHUPDoesNotStopStandalone(t *testing.T) {
	n := newNode(t, "solo")
	n.start()
	n.must("table", "create", "t")
	if err := n.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	n.waitLog(`msg="SIGHUP: nothing to reload: this node runs without certificates \(standalone\); SIGTERM stops it"`)
	n.must("put", "t", "k", "v")
	if got := n.must("get", "t", "k"); got != "v" {
		t.Errorf("get after SIGHUP: %q", got)
	}
	if err := n.stop(); err != nil {
		t.Errorf("SIGTERM after SIGHUP: %v\n%s", err, n.logs)
	}
}
