package integration

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// A remote client of a real cortexd --rpc-listen without the four flags:
// --certs-dir DIR, a profile of a configuration file, and table names
// completed for the shell through the same settings.
func TestRPCProfileAndCertsDir(t *testing.T) {
	dir := rpcCerts(t, "home", "alice")
	addr := freeAddr(t)
	n := rpcNode(t, "home", dir, addr)
	n.start()
	n.waitLog(`msg="rpc listening" addr=` + regexp.QuoteMeta(addr))
	n.must("table", "create", "fruit")
	n.must("table", "create", "fries")
	n.must("table", "create", "veg")
	n.must("identity", "add", "alice")
	n.must("acl", "grant", "alice", "fruit", "write")
	n.must("acl", "grant", "alice", "fries", "read")
	// No configuration file of the machine's user gets in the way.
	clean := []string{"HOME=" + t.TempDir(), "XDG_CONFIG_HOME=", "CORTEX_CONFIG=", "CORTEX_PROFILE="}

	// --certs-dir: the directory holds one client certificate, alice's.
	if r := cortex(t, clean, "--addr", addr, "--certs-dir", dir, "put", "fruit", "apple", "green"); r.code != 0 {
		t.Fatalf("put over --certs-dir: %+v", r)
	}
	if got := n.must("get", "fruit", "apple"); got != "green" {
		t.Errorf("get over the socket after a put over --certs-dir: %q", got)
	}

	// A profile, with the certificates relative to the file.
	home := t.TempDir()
	if err := os.Symlink(dir, filepath.Join(home, "certs")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(home, "config.toml")
	if err := os.WriteFile(cfg, []byte("[profiles.office]\naddr = \""+addr+"\"\ncerts_dir = \"certs\"\nclient = \"alice\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	withCfg := append(slices.Clone(clean), "CORTEX_CONFIG="+cfg)
	if r := cortex(t, withCfg, "--profile", "office", "get", "fruit", "apple"); r.code != 0 || r.stdout != "green" {
		t.Errorf("get --profile office: %+v", r)
	}
	if r := cortex(t, append(slices.Clone(withCfg), "CORTEX_PROFILE=office"), "put", "fruit", "pear", "yellow"); r.code != 0 {
		t.Errorf("put with $CORTEX_PROFILE: %+v", r)
	}
	if got := n.must("get", "fruit", "pear"); got != "yellow" {
		t.Errorf("get over the socket after a put over the profile: %q", got)
	}
	// The default path: ~/.config/cortex/config.toml with a default profile.
	userHome := t.TempDir()
	os.MkdirAll(filepath.Join(userHome, ".config", "cortex"), 0o700)
	data, _ := os.ReadFile(cfg)
	data = append([]byte("default_profile = \"office\"\n"), []byte(strings.ReplaceAll(string(data), `"certs"`, `"`+dir+`"`))...)
	os.WriteFile(filepath.Join(userHome, ".config", "cortex", "config.toml"), data, 0o600)
	if r := cortex(t, append(slices.Clone(clean), "HOME="+userHome), "get", "fruit", "pear"); r.code != 0 || r.stdout != "yellow" {
		t.Errorf("get with the default profile of ~/.config/cortex/config.toml: %+v", r)
	}
	// Refusals still come through the profile: no grant on veg.
	expect(t, "put to veg", cortex(t, withCfg, "--profile", "office", "put", "veg", "k", "v"), 4, "alice may not write table veg")
	expect(t, "unknown profile", cortex(t, withCfg, "--profile", "home", "get", "fruit", "apple"), 2, `--profile "home": no such profile in `+cfg+" (profiles: office)")

	// Completion, as the shell asks for it: over the profile, the tables
	// alice may read; over the socket, every table.
	words := func(r result) []string {
		t.Helper()
		lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
		if r.code != 0 || lines[len(lines)-1] != ":4" {
			t.Fatalf("__complete: %+v", r)
		}
		return lines[:len(lines)-1]
	}
	if got := words(cortex(t, withCfg, "__complete", "--profile", "office", "get", "f")); !slices.Equal(got, []string{"fries", "fruit"}) {
		t.Errorf("completion over the profile: %q", got)
	}
	if got := words(cortex(t, clean, "__complete", "--addr", addr, "--certs-dir", dir, "scan", "")); !slices.Equal(got, []string{"fries", "fruit"}) {
		t.Errorf("completion over --certs-dir: %q", got)
	}
	if got := words(n.cli("__complete", "table", "drop", "v")); !slices.Equal(got, []string{"veg"}) {
		t.Errorf("completion over the socket: %q", got)
	}
	if err := n.stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if got := words(cortex(t, withCfg, "__complete", "--profile", "office", "get", "f")); len(got) != 0 {
		t.Errorf("completion with the node stopped: %q", got)
	}
}
