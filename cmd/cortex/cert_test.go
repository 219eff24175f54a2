package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// nowhere is an environment whose socket does not exist: the cert commands
// must not need a daemon.
func nowhere(t *testing.T) map[string]string {
	return map[string]string{"CORTEX_SOCKET": filepath.Join(t.TempDir(), "none.sock")}
}

func okEnv(t *testing.T, env map[string]string, args ...string) string {
	t.Helper()
	r := runEnv(t, env, "", args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("cortex %s: %v", strings.Join(args, " "), r)
	}
	return r.stdout
}

func fileMode(t *testing.T, path string) os.FileMode {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Mode().Perm()
}

func TestCertCommands(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	dir := filepath.Join(t.TempDir(), "certs")
	j := func(name string) string { return filepath.Join(dir, name) }

	if got := okEnv(t, env, "cert", "create-ca", "--dir", dir); got != "wrote "+j("ca.crt")+"\nwrote "+j("ca.key")+"\n" {
		t.Errorf("create-ca: %q", got)
	}
	if fileMode(t, j("ca.key")) != 0o600 || fileMode(t, dir) != 0o700 {
		t.Errorf("modes: ca.key %o, dir %o", fileMode(t, j("ca.key")), fileMode(t, dir))
	}
	if got := okEnv(t, env, "cert", "create-node", "home", "--dir", dir, "--host", "127.0.0.1", "--host", "home.example.com", "--host", "::1"); got != "wrote "+j("node-home.crt")+"\nwrote "+j("node-home.key")+"\n" {
		t.Errorf("create-node: %q", got)
	}
	if got := okEnv(t, env, "cert", "create-client", "alice", "--dir", dir); got != "wrote "+j("client-alice.crt")+"\nwrote "+j("client-alice.key")+"\n" {
		t.Errorf("create-client: %q", got)
	}
	for _, key := range []string{"node-home.key", "client-alice.key"} {
		if m := fileMode(t, j(key)); m != 0o600 {
			t.Errorf("%s: mode %o", key, m)
		}
	}
	home, err := pki.LoadIdentity(j("node-home.crt"), j("node-home.key"), pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	var ips []string
	for _, ip := range home.Leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	if home.Name != "home" || !slices.Equal(home.Leaf.DNSNames, []string{"home", "home.example.com"}) || !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("node certificate: %q %q %q", home.Name, home.Leaf.DNSNames, ips)
	}
	if id, err := pki.LoadIdentity(j("client-alice.crt"), j("client-alice.key"), pki.KindClient); err != nil || id.Name != "alice" {
		t.Errorf("client certificate: %v", err)
	}

	// --json prints one object with the files and the fingerprint.
	out := decode[map[string]any](t, okEnv(t, env, "cert", "create-client", "bob", "--dir", dir, "--json"))
	if out["kind"] != "client" || out["name"] != "bob" || out["cert"] != j("client-bob.crt") || out["key"] != j("client-bob.key") ||
		!strings.HasPrefix(out["fingerprint"].(string), "sha256:") || out["not_after"] == nil {
		t.Errorf("create-client --json: %v", out)
	}
	out = decode[map[string]any](t, okEnv(t, env, "--json", "cert", "create-node", "n2", "--dir", dir, "--host", "10.0.0.2"))
	if out["kind"] != "node" || out["name"] != "n2" || len(out["dns_names"].([]any)) != 1 || out["ip_addresses"].([]any)[0] != "10.0.0.2" {
		t.Errorf("create-node --json: %v", out)
	}
	if out["role"] != "member" {
		t.Errorf("create-node without --role: role %v, want member", out["role"])
	}
	out = decode[map[string]any](t, okEnv(t, env, "--json", "cert", "create-node", "boss", "--dir", dir, "--role", "admin"))
	if out["role"] != "admin" {
		t.Errorf("create-node --role admin --json: %v", out)
	}
	out = decode[map[string]any](t, okEnv(t, env, "cert", "create-ca", "--dir", t.TempDir(), "--json"))
	if out["kind"] != "ca" || !strings.HasSuffix(out["key"].(string), "ca.key") {
		t.Errorf("create-ca --json: %v", out)
	}

	// Existing files: exit 1, nothing changed; --overwrite replaces them.
	before, _ := os.ReadFile(j("ca.key"))
	for _, args := range [][]string{
		{"cert", "create-ca", "--dir", dir},
		{"cert", "create-node", "home", "--dir", dir},
		{"cert", "create-client", "alice", "--dir", dir},
	} {
		fails(t, runEnv(t, env, "", args...), 1, "(use --overwrite to replace it)")
	}
	if after, _ := os.ReadFile(j("ca.key")); string(after) != string(before) {
		t.Errorf("ca.key changed without --overwrite")
	}
	aliceBefore, _ := os.ReadFile(j("client-alice.crt"))
	okEnv(t, env, "cert", "create-client", "alice", "--dir", dir, "--overwrite")
	if after, _ := os.ReadFile(j("client-alice.crt")); string(after) == string(aliceBefore) {
		t.Errorf("--overwrite did not replace the client certificate")
	}

	// No CA in the directory.
	empty := t.TempDir()
	fails(t, runEnv(t, env, "", "cert", "create-node", "home", "--dir", empty), 1, "cortex cert create-ca --dir "+empty)
	fails(t, runEnv(t, env, "", "cert", "create-client", "alice", "--dir", empty), 1, "no such file")
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("files written without a CA: %v", entries)
	}
}

// A CA key its group or others may read is refused when issuing: exit 1,
// the fix named, nothing written.
func TestCertRefusesOpenCAKey(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	dir := filepath.Join(t.TempDir(), "certs")
	okEnv(t, env, "cert", "create-ca", "--dir", dir)
	caKey := filepath.Join(dir, "ca.key")
	if err := os.Chmod(caKey, 0o640); err != nil {
		t.Fatal(err)
	}
	want := "permissions 0640 for " + caKey + " are too open: the private key must be readable by its owner only (chmod 600 " + caKey + ")"
	fails(t, runEnv(t, env, "", "cert", "create-node", "home", "--dir", dir), 1, want)
	fails(t, runEnv(t, env, "", "cert", "create-client", "alice", "--dir", dir), 1, want)
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("a refused issue wrote files: %v", entries)
	}
}

func TestCertUsageErrors(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	dir := t.TempDir()
	if err := pki.CreateCA(dir, false, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"cert", "create-ca"}, "missing --dir"},
		{[]string{"cert", "create-ca", "--dir", ""}, "missing --dir"},
		{[]string{"cert", "create-ca", "--dir", dir, "extra"}, `unexpected argument "extra"`},
		{[]string{"cert", "create-node", "home"}, "missing --dir"},
		{[]string{"cert", "create-node", "--dir", dir}, "missing NAME"},
		{[]string{"cert", "create-node", "Home", "--dir", dir}, `invalid: node name "Home" must match [a-z0-9][a-z0-9_-]{0,62}`},
		{[]string{"cert", "create-node", "-x", "--dir", dir}, "unknown shorthand flag"},
		{[]string{"cert", "create-node", "a/b", "--dir", dir}, `invalid: node name "a/b" must match`},
		{[]string{"cert", "create-node", strings.Repeat("a", 64), "--dir", dir}, "must be 1 to 63 characters"},
		{[]string{"cert", "create-node", "home", "--dir", dir, "--host", ""}, `bad --host ""`},
		{[]string{"cert", "create-node", "home", "--dir", dir, "--host", "10.0.0.1:7947"}, "without a port"},
		{[]string{"cert", "create-node", "home", "--dir", dir, "--host", "a b"}, `bad --host "a b"`},
		{[]string{"cert", "create-node", "home", "--dir", dir, "--host", "-bad.example.com"}, "not a DNS name"},
		{[]string{"cert", "create-node", "home", "--dir", dir, "--host", "a..b"}, "not a DNS name"},
		{[]string{"cert", "create-node", "home", "b", "--dir", dir}, `unexpected argument "b"`},
		{[]string{"cert", "create-node", "home", "--dir", dir, "--role", "root"}, `bad --role: role "root": use admin or member`},
		{[]string{"cert", "create-client", "--dir", dir}, "missing IDENTITY"},
		{[]string{"cert", "create-client", "Alice", "--dir", dir}, `invalid: identity name "Alice" must match [a-z0-9][a-z0-9_-]{0,62}`},
		{[]string{"cert", "create-client", "alice"}, "missing --dir"},
		{[]string{"cert", "create-client", "alice", "--dir", dir, "--host", "x"}, "unknown flag: --host"},
		{[]string{"cert"}, "missing command"},
		{[]string{"cert", "create-nod"}, `did you mean "create-node"`},
	} {
		fails(t, runEnv(t, env, "", c.args...), 2, c.want)
		if t.Failed() {
			t.Fatalf("cortex %q", c.args)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("rejected commands wrote files: %d entries", len(entries))
	}
	// Wildcards and IPv6 hosts are fine.
	okEnv(t, env, "cert", "create-node", "home", "--dir", dir, "--host", "*.example.com", "--host", "fe80::1", "--host", "under_score.lan")
}

// remoteNode is an API served on an mTLS listener like cortexd's, with the
// mesh CA in dir.
type remoteNode struct {
	store *store.Store
	addr  string // 127.0.0.1:PORT
	dir   string // the mesh's certificates
	other string // another CA's
}

func startRemote(t *testing.T) *remoteNode {
	t.Helper()
	now := time.Now()
	n := &remoteNode{dir: t.TempDir(), other: t.TempDir()}
	for _, err := range []error{
		pki.CreateCA(n.dir, false, now),
		pki.CreateNodeCert(n.dir, "home", pki.RoleMember, []string{"127.0.0.1"}, false, now),
		pki.CreateClientCert(n.dir, "alice", false, now),
		pki.CreateClientCert(n.dir, "bob", false, now),
		pki.CreateCA(n.other, false, now),
		pki.CreateClientCert(n.other, "alice", false, now),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	crt, key := pki.NodeCertFiles(n.dir, "home")
	ident, err := pki.LoadIdentity(crt, key, pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pki.LoadCA(filepath.Join(n.dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	n.store, err = store.Open(store.Options{Dir: t.TempDir(), Node: "home", Logger: quiet, Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(api.NewServer(n.store, tables.Limits{}, quiet).Remote())
	srv.TLS = &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{ident.TLS},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool,
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := [][]byte{}
			for _, c := range cs.PeerCertificates {
				raw = append(raw, c.Raw)
			}
			_, err := pki.Verify(raw, pool, pki.KindClient, time.Now())
			return err
		},
	}
	srv.Config.ErrorLog = slog.NewLogLogger(quiet.Handler(), slog.LevelDebug)
	srv.StartTLS()
	t.Cleanup(func() { srv.Close(); n.store.Close() })
	n.addr = srv.Listener.Addr().String()
	return n
}

// as runs cortex against the node over mTLS with the client pair of name
// in dir (a node's if kind is "node").
func (n *remoteNode) as(t *testing.T, dir, kind, name string, args ...string) result {
	t.Helper()
	crt, key := pki.ClientCertFiles(dir, name)
	if kind == "node" {
		crt, key = pki.NodeCertFiles(dir, name)
	}
	flags := []string{"--addr", n.addr, "--ca", filepath.Join(n.dir, "ca.crt"), "--cert", crt, "--key", key}
	return runEnv(t, nowhere(t), "", append(flags, args...)...)
}

func TestRemoteMode(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := startRemote(t)
	n.store.CreateTable(ctx, "t", scope.Scope{Local: true})
	n.store.CreateTable(ctx, "other", scope.Scope{Local: true})
	alice := func(args ...string) result { return n.as(t, n.dir, "client", "alice", args...) }

	// Not registered: denied, whatever the call.
	fails(t, alice("node", "status"), 4, "alice is not a registered identity (an admin registers it with: cortex identity add alice)")
	fails(t, alice("get", "t", "k"), 4, "not a registered identity")

	// Registered without grants: no table, no system table.
	n.store.AddIdentity(ctx, store.Identity{Name: "alice", Kind: "client"})
	if r := alice("node", "status", "--json"); r.code != 0 || decode[map[string]any](t, r.stdout)["node"] != "home" {
		t.Errorf("node status: %v", r)
	}
	fails(t, alice("get", "t", "k"), 4, "alice may not read table t")
	fails(t, alice("acl", "list"), 4, "alice may not admin table cortex_acls")
	if got := alice("table", "list", "--json"); got.code != 0 || got.stdout != "[]\n" {
		t.Errorf("table list without grants: %v", got)
	}

	// Read on t: get works, put is denied, only t is listed.
	n.store.GrantPerm(ctx, "alice", "t", store.PermRead)
	if tb, err := n.store.Table("t"); err == nil {
		tb.Put(ctx, []byte("k"), []byte("v"))
	}
	if r := alice("get", "t", "k"); r.code != 0 || r.stdout != "v" {
		t.Errorf("get with read: %v", r)
	}
	fails(t, alice("put", "t", "k", "w"), 4, "alice may not write table t (ask an admin: cortex acl grant alice t write)")
	list := decode[[]map[string]any](t, alice("table", "list", "--json").stdout)
	if len(list) != 1 || list[0]["name"] != "t" {
		t.Errorf("table list with read on t: %v", list)
	}
	// Write: put works.
	n.store.GrantPerm(ctx, "alice", "t", store.PermWrite)
	if r := alice("put", "t", "k", "w"); r.code != 0 {
		t.Errorf("put with write: %v", r)
	}
	if r := alice("get", "t", "k"); r.stdout != "w" {
		t.Errorf("get after put: %v", r)
	}
	// Revoked: denied on the next call.
	n.store.RevokePerm(ctx, "alice", "t", store.PermNone)
	fails(t, alice("get", "t", "k"), 4, "may not read")

	// The environment sets the four flags: then identity add's own --cert
	// names the certificate to pin. --socket wins over the environment.
	n.store.GrantPerm(ctx, "alice", "*", store.PermAdmin)
	aliceCrt, aliceKey := pki.ClientCertFiles(n.dir, "alice")
	bobCrt, _ := pki.ClientCertFiles(n.dir, "bob")
	env := map[string]string{"CORTEX_ADDR": n.addr, "CORTEX_CA": filepath.Join(n.dir, "ca.crt"), "CORTEX_CERT": aliceCrt, "CORTEX_KEY": aliceKey}
	if r := runEnv(t, env, "", "identity", "add", "bob", "--cert", bobCrt); r.code != 0 || !strings.Contains(r.stdout, "added identity bob (client), pinned to certificate sha256:") {
		t.Errorf("identity add --cert over the environment's remote: %v", r)
	}
	if r := runEnv(t, env, "", "acl", "list", "--json"); r.code != 0 || !strings.Contains(r.stdout, `"identity":"alice","table":"*","perm":"admin"`) {
		t.Errorf("acl list as an admin: %v", r)
	}
	fails(t, runEnv(t, env, "", "--socket", filepath.Join(t.TempDir(), "none.sock"), "node", "status"), 5, "none.sock: connect: no such file or directory; is cortexd running?")
	env["CORTEX_CERT"] = ""
	fails(t, runEnv(t, env, "", "node", "status"), 2, "$CORTEX_ADDR needs --certs-dir DIR, or --ca, --cert and --key (missing: $CORTEX_CERT)")
	// Environment certificates without an address are ignored.
	delete(env, "CORTEX_ADDR")
	env["CORTEX_SOCKET"] = filepath.Join(t.TempDir(), "none.sock")
	fails(t, runEnv(t, env, "", "node", "status"), 5, "none.sock")
}

func TestRemoteUsageErrors(t *testing.T) {
	t.Parallel()
	env := nowhere(t)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--addr", "127.0.0.1:7947", "node", "status"}, "--addr needs --certs-dir DIR, or --ca, --cert and --key (missing: --ca, --cert, --key)"},
		{[]string{"--addr", "127.0.0.1:7947", "--ca", "ca.crt", "node", "status"}, "(missing: --cert, --key)"},
		{[]string{"--addr", "127.0.0.1:7947", "--ca", "c", "--cert", "c", "node", "status"}, "(missing: --key)"},
		{[]string{"--ca", "ca.crt", "node", "status"}, "give its --addr HOST:PORT too"},
		{[]string{"--cert", "a.crt", "--key", "a.key", "get", "t", "k"}, "give its --addr"},
		{[]string{"--socket", "s.sock", "--addr", "h:1", "--ca", "c", "--cert", "c", "--key", "k", "node", "status"}, "not both"},
		{[]string{"--addr", "nohost", "--ca", "c", "--cert", "c", "--key", "k", "node", "status"}, `bad --addr "nohost": give HOST:PORT`},
		{[]string{"--addr", ":7947", "--ca", "c", "--cert", "c", "--key", "k", "node", "status"}, `bad --addr ":7947"`},
		{[]string{"--addr", "h:0", "--ca", "c", "--cert", "c", "--key", "k", "node", "status"}, "the port must be a number"},
		{[]string{"--addr", "h:http", "--ca", "c", "--cert", "c", "--key", "k", "node", "status"}, "the port must be a number"},
		{[]string{"--addr"}, "flag needs an argument"},
	} {
		fails(t, runEnv(t, env, "", c.args...), 2, c.want)
		if t.Failed() {
			t.Fatalf("cortex %q", c.args)
		}
	}
}

func TestRemoteConnectionErrors(t *testing.T) {
	t.Parallel()
	n := startRemote(t)
	n.store.AddIdentity(context.Background(), store.Identity{Name: "alice", Kind: "client"})
	ca := filepath.Join(n.dir, "ca.crt")
	aliceCrt, aliceKey := pki.ClientCertFiles(n.dir, "alice")
	_, bobKey := pki.ClientCertFiles(n.dir, "bob")
	_, port, _ := net.SplitHostPort(n.addr)
	run := func(addr, ca, crt, key string) result {
		return runEnv(t, nowhere(t), "", "--addr", addr, "--ca", ca, "--cert", crt, "--key", key, "node", "status")
	}
	if r := run(n.addr, ca, aliceCrt, aliceKey); r.code != 0 {
		t.Fatalf("the good case fails: %v", r)
	}

	// Our own files: exit 1 before anything is sent.
	fails(t, run(n.addr, filepath.Join(n.dir, "none.crt"), aliceCrt, aliceKey), 1, "--ca: load mesh CA")
	fails(t, run(n.addr, ca, filepath.Join(n.dir, "none.crt"), aliceKey), 1, "--cert and --key")
	fails(t, run(n.addr, ca, aliceCrt, bobKey), 1, "private key does not match")
	// A key its group or others may read is refused, a client's as well as
	// any other key shown as one (no fallback to loading it anyway).
	nodeCrt, nodeKey := pki.NodeCertFiles(n.dir, "home")
	for _, c := range [][2]string{{aliceCrt, aliceKey}, {nodeCrt, nodeKey}} {
		open := filepath.Join(t.TempDir(), filepath.Base(c[1]))
		if b, err := os.ReadFile(c[1]); err != nil || os.WriteFile(open, b, 0o600) != nil || os.Chmod(open, 0o644) != nil {
			t.Fatal(err)
		}
		fails(t, run(n.addr, ca, c[0], open), 1, "--key: permissions 0644 for "+open+" are too open: the private key must be readable by its owner only (chmod 600 "+open+")")
	}

	// The node's certificate is not the one expected.
	r := run("localhost:"+port, ca, aliceCrt, aliceKey)
	fails(t, r, 5, `the node's certificate is not valid for "localhost", only for home, 127.0.0.1`)
	if !strings.Contains(r.stderr, "cortex cert create-node home --host localhost") {
		t.Errorf("no advice: %s", r.stderr)
	}
	fails(t, run(n.addr, filepath.Join(n.other, "ca.crt"), aliceCrt, aliceKey), 5, "the node's certificate is not signed by the mesh CA in --ca "+filepath.Join(n.other, "ca.crt"))

	// The node refuses our certificate.
	r = run(n.addr, ca, nodeCrt, nodeKey)
	fails(t, r, 5, "the node refused our certificate (--cert "+nodeCrt+")")
	if !strings.Contains(r.stderr, "is a node certificate, not a client certificate") {
		t.Errorf("no reason given: %s", r.stderr)
	}
	otherCrt, otherKey := pki.ClientCertFiles(n.other, "alice")
	fails(t, run(n.addr, ca, otherCrt, otherKey), 5, "the node refused our certificate")

	// Nothing listening.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	fails(t, run(dead, ca, aliceCrt, aliceKey), 5, "cannot reach cortexd at "+dead+" (--addr): connect: connection refused; is cortexd running there with --rpc-listen")
}
