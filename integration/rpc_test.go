package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// cortex runs the cortex binary with no node behind it (the cert commands).
func cortex(t *testing.T, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "cortex"), args...)
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run cortex %v: %v", args, err)
	}
	return result{out.String(), errb.String(), code}
}

func mustCortex(t *testing.T, args ...string) string {
	t.Helper()
	r := cortex(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("cortex %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// freeAddr returns a 127.0.0.1 address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// rpcCerts makes, with the real cortex cert commands, a CA in a new
// directory, the certificate of admin node name (valid for 127.0.0.1) and
// one per client.
func rpcCerts(t *testing.T, node string, clients ...string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "certs")
	mustCortex(t, "cert", "create-ca", "--dir", dir)
	mustCortex(t, "cert", "create-node", node, "--dir", dir, "--host", "127.0.0.1", "--role", "admin")
	for _, c := range clients {
		mustCortex(t, "cert", "create-client", c, "--dir", dir)
	}
	return dir
}

// rpcNode prepares a node in mesh mode with its certificate in dir and an
// mTLS listener on rpcAddr.
func rpcNode(t *testing.T, name, dir, rpcAddr string) *node {
	t.Helper()
	return newNode(t, name,
		"--mesh-ca", filepath.Join(dir, "ca.crt"),
		"--mesh-cert", filepath.Join(dir, "node-"+name+".crt"),
		"--mesh-key", filepath.Join(dir, "node-"+name+".key"),
		"--mesh-listen", "127.0.0.1:0",
		"--rpc-listen", rpcAddr)
}

// remote runs cortex over mTLS against addr with the CA in caDir and the
// pair crt, key (paths relative to certDir).
func remote(t *testing.T, addr, caDir, certDir, crt, key string, args ...string) result {
	t.Helper()
	flags := []string{"--addr", addr, "--ca", filepath.Join(caDir, "ca.crt"),
		"--cert", filepath.Join(certDir, crt), "--key", filepath.Join(certDir, key)}
	return cortex(t, nil, append(flags, args...)...)
}

// expect checks a CLI result's exit code and that stderr says want.
func expect(t *testing.T, what string, r result, code int, want string) {
	t.Helper()
	if r.code != code || !strings.Contains(r.stderr, want) {
		t.Errorf("%s: exit %d, want %d saying %q\nstdout: %s\nstderr: %s", what, r.code, code, want, r.stdout, r.stderr)
	}
}

// waitLog waits until the node's log matches re.
func (n *node) waitLog(re string) {
	n.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(10 * time.Second)
	for !rx.MatchString(n.logs.String()) {
		if time.Now().After(deadline) {
			n.t.Fatalf("cortexd %s's log does not say %q:\n%s", n.name, re, n.logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Remote clients over the mTLS listener: certificates made with the real
// cortex cert commands, identities and grants made over the Unix socket,
// calls over --addr, and every refusal with its exit code.
func TestRPCAccess(t *testing.T) {
	dir := rpcCerts(t, "home", "alice", "bob", "carol")
	addr := freeAddr(t)
	n := rpcNode(t, "home", dir, addr)
	n.start()
	n.waitLog(`msg="rpc listening" addr=` + regexp.QuoteMeta(addr))
	as := func(who string, args ...string) result {
		return remote(t, addr, dir, dir, "client-"+who+".crt", "client-"+who+".key", args...)
	}
	n.must("table", "create", "t")
	n.must("table", "create", "u")
	n.must("put", "t", "k", "v1")

	// Not registered (a valid client certificate of the mesh): default deny.
	expect(t, "unregistered node status", as("bob", "node", "status"), 4, "bob is not a registered identity")
	expect(t, "unregistered get", as("bob", "get", "t", "k"), 4, "cortex identity add bob")

	// Registered, no grant: exit 4 on the table and on system tables.
	n.must("identity", "add", "alice")
	expect(t, "no grant get", as("alice", "get", "t", "k"), 4, "alice may not read table t")
	expect(t, "no grant acl list", as("alice", "acl", "list"), 4, "alice may not admin table cortex_acls")
	if r := as("alice", "node", "status", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"node":"home"`) {
		t.Errorf("node status over RPC: %+v", r)
	}

	// read: get works, put is denied.
	n.must("acl", "grant", "alice", "t", "read")
	if r := as("alice", "get", "t", "k"); r.code != 0 || r.stdout != "v1" {
		t.Errorf("get with read: %+v", r)
	}
	expect(t, "put with read", as("alice", "put", "t", "k", "v2"), 4, "alice may not write table t (ask an admin: cortex acl grant alice t write)")
	expect(t, "get of another table", as("alice", "get", "u", "k"), 4, "alice may not read table u")

	// write: put works, and the value is there over the socket too.
	n.must("acl", "grant", "alice", "t", "write")
	if r := as("alice", "put", "t", "k", "v2"); r.code != 0 {
		t.Errorf("put with write: %+v", r)
	}
	if got := n.must("get", "t", "k"); got != "v2" {
		t.Errorf("get over the socket after a remote put: %q", got)
	}
	if r := as("alice", "get", "t", "k", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"origin":"home"`) {
		t.Errorf("get --json over RPC: %+v", r)
	}

	// Revoked: the next request is denied.
	n.must("acl", "revoke", "alice", "t")
	expect(t, "get after revoke", as("alice", "get", "t", "k"), 4, "alice may not read table t")

	// System tables need admin: with read on every table, table list shows
	// the user tables only and acl list is denied; admin on cortex_acls
	// opens acl list.
	n.must("acl", "grant", "alice", "*", "read")
	r := as("alice", "table", "list", "--json")
	var list []struct{ Name string }
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &list) != nil {
		t.Fatalf("table list over RPC: %+v", r)
	}
	var names []string
	for _, tb := range list {
		names = append(names, tb.Name)
	}
	if !slices.Equal(names, []string{"t", "u"}) {
		t.Errorf("table list with read on *: %q, want t and u only", names)
	}
	expect(t, "acl list with read on *", as("alice", "acl", "list"), 4, "alice may not admin table cortex_acls")
	expect(t, "identity list with read on *", as("alice", "identity", "list"), 4, "cortex_identities")
	expect(t, "table create with read on *", as("alice", "table", "create", "v"), 4, "alice may not admin every table ('*') (ask an admin: cortex acl grant alice '*' admin)")
	n.must("acl", "grant", "alice", "cortex_acls", "admin")
	if r := as("alice", "acl", "list", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"table":"cortex_acls","perm":"admin"`) {
		t.Errorf("acl list with admin on cortex_acls: %+v", r)
	}
	// The socket lists everything, as the local administrator.
	if got := n.must("table", "list"); !strings.Contains(got, "cortex_acls") {
		t.Errorf("table list over the socket:\n%s", got)
	}

	// A pinned identity: only the pinned certificate is accepted.
	n.must("identity", "add", "carol", "--cert", filepath.Join(dir, "client-carol.crt"))
	n.must("acl", "grant", "carol", "t", "read")
	if r := as("carol", "get", "t", "k"); r.code != 0 {
		t.Errorf("pinned carol with her certificate: %+v", r)
	}
	second := filepath.Join(t.TempDir(), "second")
	os.MkdirAll(second, 0o700)
	for _, f := range []string{"ca.crt", "ca.key"} {
		data, _ := os.ReadFile(filepath.Join(dir, f))
		os.WriteFile(filepath.Join(second, f), data, 0o600)
	}
	mustCortex(t, "cert", "create-client", "carol", "--dir", second)
	expect(t, "pinned carol with another certificate",
		remote(t, addr, dir, second, "client-carol.crt", "client-carol.key", "get", "t", "k"), 4, "carol is pinned to certificate sha256:")

	// Removing an identity takes effect on its next request.
	n.must("identity", "remove", "alice")
	expect(t, "removed identity", as("alice", "node", "status"), 4, "alice is not a registered identity")
}

// Certificates the listener refuses in the TLS handshake: exit 5, a reason
// on the client's side and in cortexd's log.
func TestRPCRefusedCertificates(t *testing.T) {
	dir := rpcCerts(t, "home", "alice")
	mustCortex(t, "cert", "create-node", "other", "--dir", dir)
	foreign := filepath.Join(t.TempDir(), "foreign")
	mustCortex(t, "cert", "create-ca", "--dir", foreign)
	mustCortex(t, "cert", "create-client", "alice", "--dir", foreign)
	addr := freeAddr(t)
	n := rpcNode(t, "home", dir, addr)
	n.start()
	n.waitLog(`msg="rpc listening"`)
	n.must("identity", "add", "alice")
	n.must("identity", "add", "other")
	n.must("acl", "grant", "alice", "*", "admin")
	n.must("acl", "grant", "other", "*", "admin")
	if r := remote(t, addr, dir, dir, "client-alice.crt", "client-alice.key", "acl", "list"); r.code != 0 {
		t.Fatalf("the good certificate is refused: %+v", r)
	}

	// A node certificate used as a client, even one with grants.
	r := remote(t, addr, dir, dir, "node-other.crt", "node-other.key", "table", "list")
	expect(t, "node certificate", r, 5, "the node refused our certificate")
	expect(t, "node certificate hint", r, 5, "is a node certificate, not a client certificate")
	n.waitLog(`level=WARN msg="rpc: refused a client" remote=127\.0\.0\.1 reason="certificate of \\"other\\" is a node certificate, not a client certificate"`)
	// The node's own certificate, too.
	expect(t, "the node's own certificate", remote(t, addr, dir, dir, "node-home.crt", "node-home.key", "node", "status"), 5, "refused our certificate")
	n.waitLog(`reason="certificate of \\"home\\" is a node certificate`)

	// A client certificate of another CA, with the name of a registered
	// identity.
	expect(t, "another CA's client", remote(t, addr, dir, foreign, "client-alice.crt", "client-alice.key", "get", "t", "k"), 5, "the node refused our certificate")
	n.waitLog(`level=WARN msg="rpc: refused a client" remote=127\.0\.0\.1 reason="certificate of \\"alice\\" is not signed by this mesh's CA"`)

	// The client does not trust a node whose certificate is of another CA,
	// or does not name the host it dials.
	expect(t, "another CA in --ca", remote(t, addr, foreign, dir, "client-alice.crt", "client-alice.key", "node", "status"), 5, "not signed by the mesh CA in --ca")
	_, port, _ := net.SplitHostPort(addr)
	expect(t, "a host the certificate does not name", remote(t, "localhost:"+port, dir, dir, "client-alice.crt", "client-alice.key", "node", "status"), 5, `not valid for "localhost"`)

	// Nothing there.
	expect(t, "no listener", remote(t, freeAddr(t), dir, dir, "client-alice.crt", "client-alice.key", "node", "status"), 5, "connection refused")

	// Usage: --addr without the certificate flags.
	expect(t, "missing flags", cortex(t, nil, "--addr", addr, "node", "status"), 2, "--addr needs --certs-dir DIR, or --ca, --cert and --key")

	// The node keeps serving, and stops cleanly.
	if r := remote(t, addr, dir, dir, "client-alice.crt", "client-alice.key", "node", "status"); r.code != 0 {
		t.Errorf("after the refusals: %+v", r)
	}
	if err := n.stop(); err != nil {
		t.Errorf("SIGTERM: %v\n%s", err, n.logs)
	}
	expect(t, "after stop", remote(t, addr, dir, dir, "client-alice.crt", "client-alice.key", "node", "status"), 5, "connection refused")
}

// A listener address in use stops cortexd at start with a clear error.
func TestRPCListenInUse(t *testing.T) {
	dir := rpcCerts(t, "home")
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	n := rpcNode(t, "home", dir, busy.Addr().String())
	if err := n.startNoWait(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-n.exited:
		if err == nil || !strings.Contains(n.logs.String(), "--rpc-listen") || !strings.Contains(n.logs.String(), "address already in use") {
			t.Errorf("exit %v, log:\n%s", err, n.logs)
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("cortexd did not exit with its --rpc-listen address in use:\n%s", n.logs)
	}
}
