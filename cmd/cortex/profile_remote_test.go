package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
)

// copyFiles copies the named files of dir into a new directory (keys stay
// mode 0600) and returns it.
func copyFiles(t *testing.T, dir string, names ...string) string {
	t.Helper()
	to := t.TempDir()
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, n), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// writeConfig writes a client configuration file in dir.
func writeConfig(t *testing.T, dir, text string) string {
	t.Helper()
	path := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// --certs-dir finds ca.crt and the client's pair; --client picks one of
// several; what is missing is said.
func TestRemoteCertsDir(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := startRemote(t)
	n.store.CreateTable(ctx, "t", scope.Scope{Local: true})
	for _, who := range []string{"alice", "bob"} {
		n.store.AddIdentity(ctx, store.Identity{Name: who, Kind: "client"})
	}
	n.store.GrantPerm(ctx, "alice", "t", store.PermWrite)
	env := nowhere(t)
	run := func(args ...string) result {
		return runEnv(t, env, "", append([]string{"--addr", n.addr}, args...)...)
	}

	// Two clients in the directory: say which.
	fails(t, run("--certs-dir", n.dir, "put", "t", "k", "v"), 2,
		"--certs-dir "+n.dir+" has the certificates of 2 clients (alice, bob): say which with --client NAME")
	if r := run("--certs-dir", n.dir, "--client", "alice", "put", "t", "k", "v"); r.code != 0 {
		t.Fatalf("--certs-dir --client alice: %v", r)
	}
	fails(t, run("--certs-dir", n.dir, "--client", "bob", "get", "t", "k"), 4, "bob may not read table t")
	fails(t, run("--certs-dir", n.dir, "--client", "carol", "get", "t", "k"), 1, "no client-carol.crt in --certs-dir "+n.dir+"; it has the certificates of alice, bob")

	// One client: no --client needed; the environment works as the flags.
	one := copyFiles(t, n.dir, "ca.crt", "client-alice.crt", "client-alice.key")
	if r := run("--certs-dir", one, "get", "t", "k"); r.code != 0 || r.stdout != "v" {
		t.Errorf("--certs-dir with one client: %v", r)
	}
	if r := runEnv(t, map[string]string{"CORTEX_ADDR": n.addr, "CORTEX_CERTS_DIR": one}, "", "get", "t", "k"); r.code != 0 || r.stdout != "v" {
		t.Errorf("$CORTEX_CERTS_DIR: %v", r)
	}
	// --ca still names another CA file than the directory's.
	fails(t, run("--certs-dir", one, "--ca", filepath.Join(n.other, "ca.crt"), "get", "t", "k"), 5,
		"the node's certificate is not signed by the mesh CA in --ca "+filepath.Join(n.other, "ca.crt"))

	// What is missing.
	fails(t, run("--certs-dir", t.TempDir(), "get", "t", "k"), 1, "no ca.crt in --certs-dir")
	fails(t, run("--certs-dir", copyFiles(t, n.dir, "ca.crt"), "get", "t", "k"), 1, "no client certificate (client-NAME.crt) in --certs-dir")
	fails(t, run("--certs-dir", copyFiles(t, n.dir, "ca.crt", "client-alice.crt"), "get", "t", "k"), 1, "no client-alice.key in --certs-dir")
	fails(t, run("--certs-dir", filepath.Join(t.TempDir(), "none"), "get", "t", "k"), 1, "--certs-dir: open")
	fails(t, runEnv(t, env, "", "--certs-dir", one, "get", "t", "k"), 2, "--certs-dir: for a remote node: give its --addr HOST:PORT too")
}

// Profiles of a configuration file: the node and the certificate in one
// flag, with flags and the environment over them.
func TestRemoteProfiles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	n := startRemote(t)
	n.store.CreateTable(ctx, "t", scope.Scope{Local: true})
	for _, who := range []string{"alice", "bob"} {
		n.store.AddIdentity(ctx, store.Identity{Name: who, Kind: "client"})
	}
	n.store.GrantPerm(ctx, "alice", "t", store.PermWrite)
	if tb, err := n.store.Table("t"); err == nil {
		tb.Put(ctx, []byte("k"), []byte("v"))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()

	// The certificates next to the file, named relative to it.
	home := t.TempDir()
	if err := os.Rename(copyFiles(t, n.dir, "ca.crt", "client-alice.crt", "client-alice.key", "client-bob.crt", "client-bob.key"), filepath.Join(home, "certs")); err != nil {
		t.Fatal(err)
	}
	aliceCrt, aliceKey := pki.ClientCertFiles(n.dir, "alice")
	cfg := writeConfig(t, home, `
[profiles.office]
addr = "`+n.addr+`"
certs_dir = "certs"
client = "alice"

[profiles.files]
addr = "`+n.addr+`"
ca = "certs/ca.crt"
cert = "`+aliceCrt+`"
key = "`+aliceKey+`"

[profiles.down]
addr = "`+dead+`"
certs_dir = "certs"
client = "alice"

[profiles.local]
socket = "nowhere/cortex.sock"
`)
	env := map[string]string{"CORTEX_CONFIG": cfg}
	get := func(env map[string]string, args ...string) result {
		return runEnv(t, env, "", append(args, "get", "t", "k")...)
	}
	for _, args := range [][]string{{"--profile", "office"}, {"--profile", "files"}} {
		if r := get(nil, append([]string{"--config", cfg}, args...)...); r.code != 0 || r.stdout != "v" {
			t.Errorf("%q: %v", args, r)
		}
	}
	if r := get(map[string]string{"CORTEX_CONFIG": cfg, "CORTEX_PROFILE": "office"}); r.code != 0 || r.stdout != "v" {
		t.Errorf("$CORTEX_CONFIG and $CORTEX_PROFILE: %v", r)
	}
	// The default path, under $XDG_CONFIG_HOME or $HOME.
	xdg := t.TempDir()
	os.MkdirAll(filepath.Join(xdg, "cortex"), 0o700)
	data, _ := os.ReadFile(cfg)
	os.WriteFile(filepath.Join(xdg, "cortex", "config.toml"), append([]byte("default_profile = \"files\"\n"), data...), 0o600)
	os.Symlink(filepath.Join(home, "certs"), filepath.Join(xdg, "cortex", "certs"))
	if r := get(map[string]string{"XDG_CONFIG_HOME": xdg}); r.code != 0 || r.stdout != "v" {
		t.Errorf("$XDG_CONFIG_HOME/cortex/config.toml with default_profile: %v", r)
	}
	// A flag wins over the profile: --client bob is bob, who may not read.
	fails(t, get(env, "--profile", "office", "--client", "bob"), 4, "bob may not read table t")
	fails(t, get(map[string]string{"CORTEX_CONFIG": cfg, "CORTEX_CLIENT": "bob"}, "--profile", "office"), 4, "bob may not read table t")
	// ...and --addr over the profile's: the profile's certificates, another node.
	fails(t, get(env, "--profile", "office", "--addr", dead), 5, "cannot reach cortexd at "+dead+" (--addr)")
	// --socket over everything, but not with --profile.
	fails(t, get(env, "--socket", filepath.Join(t.TempDir(), "none.sock")), 5, "none.sock")
	fails(t, get(env, "--socket", "s.sock", "--profile", "office"), 2, "give --socket (a local node) or --profile, not both")
	// A profile's socket; its node not being there is told with its path.
	fails(t, get(env, "--profile", "local"), 5, filepath.Join(home, "nowhere", "cortex.sock"))
	// Messages name the profile.
	fails(t, get(env, "--profile", "down"), 5, "cannot reach cortexd at "+dead+" (addr of profile down)")

	// Unknown profile: exit 2 with the list; a missing or malformed file: exit 1.
	fails(t, get(env, "--profile", "ofice"), 2, `--profile "ofice": no such profile in `+cfg+" (profiles: down, files, local, office)")
	fails(t, get(map[string]string{"CORTEX_CONFIG": cfg, "CORTEX_PROFILE": "x"}), 2, `$CORTEX_PROFILE "x": no such profile`)
	fails(t, get(map[string]string{"HOME": t.TempDir()}, "--profile", "office"), 2, "no configuration file ")
	fails(t, get(nil, "--config", filepath.Join(home, "none.toml"), "--profile", "office"), 1, "config file: open "+filepath.Join(home, "none.toml"))
	bad := writeConfig(t, t.TempDir(), "[profiles.a]\naddr = \"h:1\"\ncerts_dir =\n")
	fails(t, get(nil, "--config", bad), 1, "config file "+bad+": toml: line 3")
	unknown := writeConfig(t, t.TempDir(), "[profiles.a]\nadr = \"h:1\"\n")
	fails(t, get(nil, "--config", unknown), 1, `unknown key "profiles.a.adr"`)
	// The cert commands call no node: a bad file does not stop them.
	if r := runEnv(t, map[string]string{"CORTEX_CONFIG": bad}, "", "cert", "list", "--dir", n.dir); r.code != 0 {
		t.Errorf("cert list with a malformed configuration file: %v", r)
	}
}
