package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/spf13/pflag"
)

type outcome struct {
	code           int
	stdout, stderr string
	started        *Config // the configuration the daemon was started with, if it was
}

// cortexdCmd runs a cortexd command line in-process; a start is recorded,
// not served.
func cortexdCmd(env map[string]string, args ...string) outcome {
	var out, errb bytes.Buffer
	var o outcome
	o.code = execute(args, func(k string) string { return env[k] }, &out, &errb, func(cfg Config, _ io.Writer) error {
		o.started = &cfg
		return nil
	})
	o.stdout, o.stderr = out.String(), errb.String()
	return o
}

// --help and help print on stdout and exit 0: every flag, in groups, bool
// flags without a value; the subcommands are there.
func TestDaemonHelp(t *testing.T) {
	var all []string
	flagSet(&Config{}, new(string)).VisitAll(func(f *pflag.Flag) { all = append(all, f.Name) })
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		o := cortexdCmd(nil, args...)
		if o.code != 0 || o.stderr != "" || o.started != nil || !strings.HasPrefix(o.stdout, "cortexd is the cortex daemon") {
			t.Fatalf("cortexd %s: exit %d, stderr %q, started %v", args, o.code, o.stderr, o.started)
		}
		for _, want := range []string{"Usage:\n  cortexd [flags]\n  cortexd [command]\n", "Examples:\n  cortexd --data-dir",
			"\nCommands:\n  completion ", "\n  version ", "\nMesh flags:\n", "\nOther flags:\n  -h, --help ", "      --version   print the version"} {
			if !strings.Contains(o.stdout, want) {
				t.Errorf("cortexd %s does not say %q:\n%s", args, want, o.stdout)
			}
		}
		for _, name := range all {
			if strings.Count(o.stdout, "      --"+name+" ") != 1 {
				t.Errorf("cortexd %s lists --%s %d times", args, name, strings.Count(o.stdout, "      --"+name+" "))
			}
		}
		if strings.Contains(o.stdout, "true|false") {
			t.Errorf("cortexd %s shows a bool flag with a value", args)
		}
	}
	for _, sub := range []string{"version", "completion", "help"} {
		if o := cortexdCmd(nil, sub, "--help"); o.code != 0 || o.stderr != "" || !strings.Contains(o.stdout, "Usage:\n  cortexd "+sub) {
			t.Errorf("cortexd %s --help: %+v", sub, o)
		}
	}
}

// Every flag is in exactly one group of --help, and the groups name no
// flag cortexd does not have.
func TestFlagGroups(t *testing.T) {
	fs := flagSet(&Config{}, new(string))
	seen := map[string]int{}
	for _, g := range flagGroups() {
		for _, n := range g.names {
			seen[n]++
			if fs.Lookup(n) == nil {
				t.Errorf("group %q lists --%s, which cortexd does not have", g.title, n)
			}
		}
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if seen[f.Name] != 1 {
			t.Errorf("--%s is in %d groups, want 1", f.Name, seen[f.Name])
		}
	})
}

func TestDaemonVersion(t *testing.T) {
	want := cli.Version("cortexd") + "\n"
	for _, args := range [][]string{{"--version"}, {"version"}, {"--version", "--data-dir", "/nowhere"}} {
		if o := cortexdCmd(nil, args...); o.code != 0 || o.stdout != want || o.stderr != "" || o.started != nil {
			t.Errorf("cortexd %q: %+v, want %q", args, o, want)
		}
	}
	o := cortexdCmd(nil, "version", "--json")
	var info cli.BuildInfo
	if o.code != 0 || json.Unmarshal([]byte(o.stdout), &info) != nil || info != cli.Build("cortexd") {
		t.Errorf("version --json: %+v", o)
	}
}

func TestDaemonCompletion(t *testing.T) {
	o := cortexdCmd(nil, "completion", "bash")
	if o.code != 0 || !strings.Contains(o.stdout, "__start_cortexd") {
		t.Fatalf("completion bash: exit %d, stderr %q", o.code, o.stderr)
	}
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "--fsync", ""}, []string{"batch", "never"}},
		{[]string{"__complete", "--log-format", ""}, []string{"text", "json"}},
		{[]string{"__complete", "ver"}, []string{"version\tPrint the version, commit and Go release"}},
	} {
		o := cortexdCmd(nil, c.args...)
		lines := strings.Split(strings.TrimSpace(o.stdout), "\n")
		if o.code != 0 || len(lines) < 1 || !slices.Equal(lines[:len(lines)-1], c.want) {
			t.Errorf("cortexd %q: %q, want %q", c.args, o.stdout, c.want)
		}
	}
}

// Bad usage exits 2 with one line saying what was wrong and pointing at
// --help; a bad value in a flag or the config file exits 1; nothing starts.
func TestDaemonUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("bogus = 1\n"), 0o600)
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--nope"}, 2, "error: unknown flag: --nope (see: cortexd --help)\n"},
		{[]string{"--data-dir"}, 2, "error: flag needs an argument: --data-dir (see: cortexd --help)\n"},
		{[]string{"--max-key-size", "big"}, 2, `error: invalid argument "big" for "--max-key-size" flag: must be an integer (see: cortexd --help)` + "\n"},
		{[]string{"serve"}, 2, `error: unexpected argument "serve": cortexd takes flags only (see: cortexd --help)` + "\n"},
		{[]string{"verison"}, 2, `error: unexpected argument "verison": cortexd takes flags only (did you mean the command "version"?) (see: cortexd --help)` + "\n"},
		{[]string{"version", "x"}, 2, `error: unexpected argument "x": usage: cortexd version (see: cortexd version --help)` + "\n"},
		{[]string{"help", "nope"}, 2, `error: no command "nope" to explain (see: cortexd --help)` + "\n"},
		{[]string{"--fsync", "sometimes"}, 1, `error: config: fsync "sometimes": use batch or never` + "\n"},
		{[]string{"--config", bad}, 1, "error: config " + bad + `: unknown key "bogus"` + "\n"},
		{[]string{"--peer", "a:1"}, 1, "error: config: --peer and --rpc-listen need mesh mode (--mesh-ca, --mesh-cert, --mesh-key)\n"},
	} {
		o := cortexdCmd(nil, c.args...)
		if o.code != c.code || o.stderr != c.want || o.stdout != "" || o.started != nil {
			t.Errorf("cortexd %q: exit %d, stderr %q, stdout %q, started %v; want exit %d, %q", c.args, o.code, o.stderr, o.stdout, o.started != nil, c.code, c.want)
		}
	}
}

// The daemon starts with the configuration loadConfig builds from the same
// arguments: the flags, the environment and the file, the flags winning.
func TestDaemonConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.toml")
	os.WriteFile(file, []byte(`data_dir = "/from/file"
node_name = "office"
peers = ["f1:1", "f2:2"]
max_clock_skew = "5s"
mesh_ca = "ca.crt"
mesh_cert = "n.crt"
mesh_key = "n.key"
`), 0o600)
	env := map[string]string{"CORTEX_DATA_DIR": "/e"}
	for _, args := range [][]string{
		nil,
		{"--data-dir", "/d", "--fsync", "never", "--log-format=json"},
		{"--config", file},
		{"--config", file, "--peer", "a:1", "--peer", "b:2", "--max-clock-skew", "2s", "--node-name", "home"},
		{"--peer", "a:1,b:2", "--config", file, "--data-dir", "/d"},
	} {
		want, err := loadConfig(args, func(k string) string { return env[k] })
		if err != nil {
			t.Fatal(err)
		}
		o := cortexdCmd(env, args...)
		if o.code != 0 || o.started == nil {
			t.Fatalf("cortexd %q: %+v", args, o)
		}
		got := *o.started
		if !slices.Equal(got.Peers, want.Peers) || got.Socket != want.Socket {
			t.Errorf("cortexd %q: started with %+v, want %+v", args, got, want)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("cortexd %q: started with %+v, want %+v", args, got, want)
		}
	}
	// Flags win over the file, slices and durations included.
	o := cortexdCmd(env, "--config", file, "--peer", "a:1", "--peer", "b:2", "--max-clock-skew", "2s")
	if got := o.started; got == nil || !slices.Equal(got.Peers, []string{"a:1", "b:2"}) || got.MaxClockSkew != 2*time.Second || got.DataDir != "/from/file" {
		t.Errorf("flags over the file: %+v", got)
	}
}
