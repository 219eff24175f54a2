package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "c.toml")
	os.WriteFile(file, []byte("data_dir = \"/from/file\"\nnode_name = \"office\"\nfsync = \"never\"\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want Config
	}{
		{"defaults", nil, nil, Config{DataDir: "./cortex-data", Socket: "cortex-data/cortex.sock", Fsync: "batch"}},
		{"env", nil, map[string]string{"CORTEX_DATA_DIR": "/e", "CORTEX_SOCKET": "/e.sock"}, Config{DataDir: "/e", Socket: "/e.sock", Fsync: "batch"}},
		{"file over env", []string{"--config", file}, map[string]string{"CORTEX_DATA_DIR": "/e"}, Config{DataDir: "/from/file", NodeName: "office", Socket: "/from/file/cortex.sock", Fsync: "never"}},
		{"flags over file", []string{"--config", file, "--fsync", "batch", "--data-dir", "/f"}, nil, Config{DataDir: "/f", NodeName: "office", Socket: "/f/cortex.sock", Fsync: "batch"}},
		{"flag before config", []string{"--node-name", "home", "--config", file}, nil, Config{DataDir: "/from/file", NodeName: "home", Socket: "/from/file/cortex.sock", Fsync: "never"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := loadConfig(tc.args, env(tc.env))
			if err != nil {
				t.Fatal(err)
			}
			if got.DataDir != tc.want.DataDir || got.NodeName != tc.want.NodeName || got.Socket != tc.want.Socket || got.Fsync != tc.want.Fsync {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o600)
		return p
	}
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"unknown flag", []string{"--nope"}, true, "unknown flag"},
		{"extra argument", []string{"x"}, true, "unexpected argument"},
		{"bad fsync", []string{"--fsync", "sometimes"}, false, "fsync"},
		{"bad log level", []string{"--log-level", "loud"}, false, "log level"},
		{"huge key limit", []string{"--max-key-size", "1000000"}, false, "max key size"},
		{"missing file", []string{"--config", filepath.Join(dir, "none.toml")}, false, "no such file"},
		{"unknown key", []string{"--config", write("u.toml", "data_dir = \"x\"\nbogus = 1\n")}, false, "unknown key \"bogus\""},
		{"bad toml", []string{"--config", write("b.toml", "data_dir = \n")}, false, "b.toml"},
		{"wrong type", []string{"--config", write("w.toml", "max_key_size = \"big\"\n")}, false, "w.toml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadConfig(tc.args, env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			var ue usageError
			if errors.As(err, &ue) != tc.usage {
				t.Fatalf("usage error = %v, want %v", !tc.usage, tc.usage)
			}
		})
	}
	if _, err := loadConfig([]string{"--help"}, env(nil)); !errors.Is(err, pflag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
}

func TestHostNodeName(t *testing.T) {
	for in, want := range map[string]string{
		"Office.example.com":    "office",
		"my_Box-2":              "my_box-2",
		"--weird host!":         "weird-host-",
		"":                      "node",
		strings.Repeat("a", 80): strings.Repeat("a", 63),
	} {
		if got := hostNodeName(in); got != want {
			t.Errorf("hostNodeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzDecodeConfig: any file either decodes or is refused with an error;
// it never panics.
func FuzzDecodeConfig(f *testing.F) {
	f.Add([]byte("data_dir = \"/d\"\nnode_name = \"home\"\n"))
	f.Add([]byte("max_value_size = 1048576\nfsync = \"never\"\n"))
	f.Add([]byte("[table]\nx = 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg := defaultConfig(env(nil))
		if err := decodeConfig(data, &cfg); err == nil {
			cfg.validate()
		}
	})
}

// --metrics-listen and the TOML key metrics_listen: off by default, the
// flag wins over the file.
func TestConfigMetricsListen(t *testing.T) {
	env := func(string) string { return "" }
	cfg, err := loadConfig(nil, env)
	if err != nil || cfg.MetricsListen != "" {
		t.Fatalf("default: %q, %v; want off", cfg.MetricsListen, err)
	}
	file := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(file, []byte("metrics_listen = \"127.0.0.1:9100\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if cfg, err = loadConfig([]string{"--config", file}, env); err != nil || cfg.MetricsListen != "127.0.0.1:9100" {
		t.Fatalf("from the file: %q, %v", cfg.MetricsListen, err)
	}
	if cfg, err = loadConfig([]string{"--config", file, "--metrics-listen", "127.0.0.1:9200"}, env); err != nil || cfg.MetricsListen != "127.0.0.1:9200" {
		t.Fatalf("flag over file: %q, %v", cfg.MetricsListen, err)
	}
}

// loadConfig builds the configuration from args (for the tests), the environment and the
// config file the args name (the flags win over the file), as cortexd does
// for its command line (command.go), without the commands.
func loadConfig(args []string, getenv func(string) string) (Config, error) {
	cfg := defaultConfig(getenv)
	var file string
	fs := flagSet(&cfg, &file)
	if err := fs.Parse(args); err != nil {
		return cfg, usageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, usageError{fmt.Errorf("unexpected argument %q", fs.Arg(0))}
	}
	return settleConfig(cfg, file, fs, getenv)
}
