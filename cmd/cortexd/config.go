package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/spf13/pflag"
)

// Config is cortexd's configuration: defaults, then the environment, then
// the TOML file, then the flags (each wins over the ones before).
type Config struct {
	DataDir      string `toml:"data_dir"`
	NodeName     string `toml:"node_name"`
	Socket       string `toml:"socket"`
	Fsync        string `toml:"fsync"`
	LogLevel     string `toml:"log_level"`
	LogFormat    string `toml:"log_format"`
	MaxKeySize   int    `toml:"max_key_size"`
	MaxValueSize int    `toml:"max_value_size"`
	// WALRetention is how many log entries a table keeps behind its newest
	// checkpoint for peers catching up; CheckpointEvery how many applied
	// entries trigger a checkpoint.
	WALRetention    int `toml:"wal_retention"`
	CheckpointEvery int `toml:"checkpoint_every"`

	MeshListen   string        `toml:"mesh_listen"`
	MeshCA       string        `toml:"mesh_ca"`
	MeshCert     string        `toml:"mesh_cert"`
	MeshKey      string        `toml:"mesh_key"`
	Peers        []string      `toml:"peers"`
	RPCListen    string        `toml:"rpc_listen"`
	MaxClockSkew time.Duration `toml:"max_clock_skew"`

	// MetricsListen is the HOST:PORT of /metrics, /healthz and /readyz
	// (plain HTTP, off when empty).
	MetricsListen string `toml:"metrics_listen"`
}

// Mesh reports whether the configuration asks for mesh mode.
func (c Config) Mesh() bool { return c.MeshCA != "" || c.MeshCert != "" || c.MeshKey != "" }

func defaultConfig(getenv func(string) string) Config {
	c := Config{DataDir: "./cortex-data", Fsync: "batch", LogLevel: "info", LogFormat: "text",
		MaxKeySize: tables.DefaultMaxKeySize, MaxValueSize: tables.DefaultMaxValueSize,
		WALRetention: 100_000, CheckpointEvery: 100_000, MeshListen: "0.0.0.0:7946", MaxClockSkew: time.Second}
	if v := getenv("CORTEX_DATA_DIR"); v != "" {
		c.DataDir = v
	}
	c.Socket = getenv("CORTEX_SOCKET")
	return c
}

// flagSet declares cortexd's flags over cfg's fields.
func flagSet(cfg *Config, configFile *string) *pflag.FlagSet {
	fs := pflag.NewFlagSet("cortexd", pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {} // cortexd --help is the command's (command.go)
	fs.StringVar(configFile, "config", "", "TOML file with the same keys as the flags (data_dir, node_name, ...); flags win")
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "data directory (env CORTEX_DATA_DIR)")
	fs.StringVar(&cfg.NodeName, "node-name", cfg.NodeName, "this node's name (default: the name stored in the data directory, else the host name)")
	fs.StringVar(&cfg.Socket, "socket", cfg.Socket, "Unix socket of the local API (env CORTEX_SOCKET; default DATA_DIR/cortex.sock)")
	fs.StringVar(&cfg.Fsync, "fsync", cfg.Fsync, "batch: a write is acknowledged once on disk; never: no fsync (benchmarks only, loses writes on a crash)")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "text or json")
	fs.IntVar(&cfg.MaxKeySize, "max-key-size", cfg.MaxKeySize, "largest key accepted, in bytes")
	fs.IntVar(&cfg.MaxValueSize, "max-value-size", cfg.MaxValueSize, "largest value accepted, in bytes")
	fs.IntVar(&cfg.WALRetention, "wal-retention", cfg.WALRetention, "log entries each table keeps behind its newest checkpoint for peers catching up (up to 10x that for a peer that has not acknowledged them); a peer further behind gets a snapshot")
	fs.IntVar(&cfg.CheckpointEvery, "checkpoint-every", cfg.CheckpointEvery, "applied entries between two checkpoints of a table (start-up replays at most this many)")
	fs.StringVar(&cfg.MeshListen, "mesh-listen", cfg.MeshListen, "address the mesh (libp2p over TCP) listens on, in mesh mode")
	fs.StringVar(&cfg.MeshCA, "mesh-ca", cfg.MeshCA, "mesh CA certificate (mesh mode needs --mesh-ca, --mesh-cert and --mesh-key)")
	fs.StringVar(&cfg.MeshCert, "mesh-cert", cfg.MeshCert, "this node's certificate, signed by the mesh CA (cortex cert create-node)")
	fs.StringVar(&cfg.MeshKey, "mesh-key", cfg.MeshKey, "this node's private key")
	fs.StringSliceVar(&cfg.Peers, "peer", cfg.Peers, "HOST:PORT of a node to join through (repeatable); the others are found through it")
	fs.StringVar(&cfg.RPCListen, "rpc-listen", cfg.RPCListen, "HOST:PORT of the mTLS API for remote clients (cortex --addr): TLS 1.3, a client certificate of the mesh CA whose identity is registered here, ACL-checked; clients check this node's certificate names the HOST they dial (cortex cert create-node --host); off when empty")
	fs.DurationVar(&cfg.MaxClockSkew, "max-clock-skew", cfg.MaxClockSkew, "log a peer whose clock is further off than this (peers over 60s off are refused)")
	fs.StringVar(&cfg.MetricsListen, "metrics-listen", cfg.MetricsListen, "HOST:PORT to serve Prometheus metrics (/metrics), /healthz and /readyz on, plain HTTP without authentication: bind it to 127.0.0.1 or a private address; off when empty")
	return fs
}

// settleConfig finishes a configuration whose flags fs has parsed over
// cfg: if they name a config file, it is read over the defaults and the
// environment and the flags given are set again over it, so that they win.
// Then the defaults that depend on others are filled in, and the whole is
// checked.
func settleConfig(cfg Config, file string, fs *pflag.FlagSet, getenv func(string) string) (Config, error) {
	if file != "" {
		data, err := os.ReadFile(file)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		cfg = defaultConfig(getenv)
		if err := decodeConfig(data, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", file, err)
		}
		again := flagSet(&cfg, &file)
		fs.Visit(func(f *pflag.Flag) {
			g := again.Lookup(f.Name) // nil for --help and --version
			if g == nil || err != nil {
				return
			}
			if s, ok := f.Value.(pflag.SliceValue); ok {
				err = g.Value.(pflag.SliceValue).Replace(s.GetSlice())
			} else {
				err = g.Value.Set(f.Value.String())
			}
		})
		if err != nil {
			return cfg, usageError{err}
		}
	}
	if cfg.Socket == "" {
		cfg.Socket = filepath.Join(cfg.DataDir, "cortex.sock")
	}
	return cfg, cfg.validate()
}

// decodeConfig reads TOML into cfg, refusing keys it does not know.
func decodeConfig(data []byte, cfg *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(cfg)
	if err != nil {
		return err
	}
	if extra := md.Undecoded(); len(extra) > 0 {
		return fmt.Errorf("unknown key %q", extra[0].String())
	}
	return nil
}

func (c Config) validate() error {
	switch {
	case c.DataDir == "":
		return fmt.Errorf("config: data_dir is empty")
	case !slices.Contains([]string{"batch", "never"}, c.Fsync):
		return fmt.Errorf("config: fsync %q: use batch or never", c.Fsync)
	case !slices.Contains([]string{"debug", "info", "warn", "error"}, strings.ToLower(c.LogLevel)):
		return fmt.Errorf("config: log level %q: use debug, info, warn or error", c.LogLevel)
	case c.LogFormat != "text" && c.LogFormat != "json":
		return fmt.Errorf("config: log format %q: use text or json", c.LogFormat)
	case c.MaxKeySize < 1 || c.MaxKeySize > tables.MaxKeyLimit:
		return fmt.Errorf("config: max key size %d: use 1 to %d bytes", c.MaxKeySize, tables.MaxKeyLimit)
	case c.MaxValueSize < 0 || c.MaxValueSize > tables.MaxValueLimit:
		return fmt.Errorf("config: max value size %d: use 0 to %d bytes", c.MaxValueSize, tables.MaxValueLimit)
	case c.WALRetention < 1 || c.CheckpointEvery < 1:
		return fmt.Errorf("config: wal retention and checkpoint interval must be at least 1")
	case c.Mesh() && (c.MeshCA == "" || c.MeshCert == "" || c.MeshKey == ""):
		return fmt.Errorf("config: mesh mode needs all three of --mesh-ca, --mesh-cert and --mesh-key")
	case !c.Mesh() && (len(c.Peers) > 0 || c.RPCListen != ""):
		return fmt.Errorf("config: --peer and --rpc-listen need mesh mode (--mesh-ca, --mesh-cert, --mesh-key)")
	case c.MaxClockSkew <= 0 || c.MaxClockSkew > time.Minute:
		return fmt.Errorf("config: max clock skew %s: use a duration above 0 and at most 60s", c.MaxClockSkew)
	}
	return nil
}

// usageError is bad command-line usage (exit code 2).
type usageError struct{ error }

func (u usageError) Unwrap() error { return u.error }
