// Command cortexd is the cortex daemon: it opens the node's data directory,
// serves the local API on a Unix socket, and (in mesh mode) replicates the
// tables its scope selects with the other nodes.
package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/cortex-mesh/cortex/api"
	"github.com/cortex-mesh/cortex/cmd/internal/cli"
	"github.com/cortex-mesh/cortex/health"
	"github.com/cortex-mesh/cortex/metrics"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

func main() {
	os.Exit(execute(os.Args[1:], os.Getenv, os.Stdout, os.Stderr, serve))
}

// serve runs the daemon on cfg until SIGTERM or SIGINT; SIGHUP reloads the
// certificates, never stops it (reload.go).
func serve(cfg Config, stderr io.Writer) error {
	hup := notifyReload()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return run(ctx, cfg, newLogger(cfg, stderr), hup)
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(strings.ToLower(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// run serves until ctx ends, then stops cleanly: stop accepting, finish the
// requests in flight, close the tables (checkpointing them), remove the socket.
// Each signal on hup reloads the node's certificate (reload.go).
func run(ctx context.Context, cfg Config, log *slog.Logger, hup <-chan os.Signal) error {
	started := time.Now()
	build := cli.Build("cortexd")
	var ident *pki.Identity
	var ca *x509.CertPool
	if cfg.Mesh() {
		// In mesh mode the node is who its certificate says it is. It is
		// loaded first, so that a refused key changes nothing on disk.
		var err error
		if ident, err = pki.LoadIdentity(cfg.MeshCert, cfg.MeshKey, pki.KindNode); err != nil {
			return err
		}
		if ca, err = pki.LoadCA(cfg.MeshCA); err != nil {
			return err
		}
		if cfg.NodeName != "" && cfg.NodeName != ident.Name {
			return fmt.Errorf("--node-name %q does not match the name %q in %s", cfg.NodeName, ident.Name, cfg.MeshCert)
		}
		cfg.NodeName = ident.Name
	}
	dir, err := lockDataDir(cfg.DataDir)
	if err != nil {
		return err
	}
	ready := false // until then, a return is a refused start
	defer func() {
		if ready {
			dir.unlock()
		} else if err := dir.release(); err != nil {
			log.Error("refused start", "err", err)
		}
	}()
	node, err := dir.nodeName(cfg.NodeName)
	if err != nil {
		return err
	}
	// Under the lock: no other cortexd can be restoring into this directory.
	// One that cannot be removed is only disk space: say so and go on.
	if _, err := api.RemoveRestoreSpools(cfg.DataDir, log); err != nil {
		log.Error("leftover restore spools", "err", err)
	}
	incarnation, err := dir.incarnation()
	if err != nil {
		return err
	}
	limits := tables.Limits{MaxKeySize: cfg.MaxKeySize, MaxValueSize: cfg.MaxValueSize}
	topts := tables.Options{NoSync: cfg.Fsync == "never", Limits: limits,
		Retention: uint64(cfg.WALRetention), CheckpointEvery: cfg.CheckpointEvery}
	var met *metrics.Metrics
	if cfg.MetricsListen != "" {
		met = metrics.New()
		topts.Observer = met
	}
	st, err := store.Open(store.Options{
		Dir: cfg.DataDir, Node: node, Logger: log, Identity: ident, CA: ca, Table: topts,
	})
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing tables", "err", err)
		}
	}()
	ln, err := api.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	defer os.Remove(cfg.Socket)
	handler := api.NewServer(st, limits, log)
	handler.SetVersion(build.Version)
	var cur *pki.Current // the certificate in use, replaced on SIGHUP
	var reloads *reloader
	var q repair.Querier // nil: standalone
	hcfg := health.Config{Store: st, Seeds: len(cfg.Peers) > 0, Started: started, Logger: log}
	src := metrics.Sources{Store: st, Health: nil, Repairs: func() (map[string]uint64, uint64) {
		r := handler.RepairStats()
		return r.Runs, r.Bytes
	}}
	if ident != nil {
		cur = pki.NewCurrent(ident)
		mesh, err := startMesh(ctx, cfg, cur, st, incarnation, log)
		if err != nil {
			return err
		}
		defer mesh.Close()
		handler.SetMesh(mesh.node, mesh.peers, mesh.repl)
		reloads = &reloader{certFile: cfg.MeshCert, keyFile: cfg.MeshKey, roots: ca, cur: cur, store: st,
			after: mesh.node.CheckCertificates, log: log, now: time.Now}
		q = mesh.peers
		hcfg.Peers = meshPeers{mesh.node, mesh.peers}
		src.Node, src.Repl, src.Cert = mesh.node, mesh.repl, ident.Leaf // the expiry gauge shows the certificate cortexd started with
		if src.CA, err = loadCACert(cfg.MeshCA); err != nil {
			return err
		}
	}
	{ // the purge horizon of the tables this node is the home of
		hctx, hcancel := context.WithCancel(ctx)
		hdone := make(chan struct{})
		go func() { defer close(hdone); repair.Horizons(hctx, q, st, time.Second, log) }()
		defer func() { hcancel(); <-hdone }()
	}
	defer startReloads(hup, reloads, log)()
	checker := health.NewChecker(hcfg)
	defer checker.Close()
	handler.SetHealth(checker)
	src.Health = checker
	if cfg.RPCListen != "" {
		rpc, err := listenRPC(cfg, cur, handler, log)
		if err != nil {
			return err
		}
		defer rpc.stop()
		src.RPCRefusals = rpc.Refusals
	}
	if met != nil {
		if err := met.Register(src); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		_, stopMetrics, err := metrics.Serve(cfg.MetricsListen, met.Handler(log), log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	srv.RegisterOnShutdown(handler.StopStreams) // Shutdown waits for requests; watch streams never end by themselves
	if cfg.Fsync == "never" {
		log.Warn("fsync=never: acknowledged writes are lost if the machine crashes; use it for benchmarks only")
	}
	ready = true
	log.Info("cortexd ready", "node", node, "incarnation", incarnation, "data_dir", cfg.DataDir, "socket", cfg.Socket, "version", build.Version, "commit", build.Commit)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", cfg.Socket, err)
	case <-ctx.Done():
	}
	log.Info("stopping: finishing requests in flight")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Error("stopping the API", "err", err)
	}
	return nil
}
