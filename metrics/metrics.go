// Package metrics owns cortexd's Prometheus metrics and its health
// endpoints: a registry of its own (no global default registry) with the
// Go and process collectors, a collector that reads the node's state at
// scrape time (tables, logs, replication, mesh, certificates), the fsync
// histograms fed by tables.Observer, and the HTTP handler that serves
// /metrics, /healthz and /readyz on --metrics-listen. It is the only
// package that imports client_golang: the others keep plain counters.
package metrics

import (
	"crypto/x509"
	"time"

	"github.com/cortex-mesh/cortex/health"
	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/store"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Metrics is the daemon's registry and the histograms counted at the event.
type Metrics struct {
	reg        *prometheus.Registry
	fsync      *prometheus.HistogramVec
	fsyncGroup *prometheus.HistogramVec
	checker    *health.Checker
}

// New makes the registry with the Go and process collectors and the fsync
// histograms. Pass it as tables.Options.Observer, then Register the node's
// state once the store is open.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.fsync = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cortex_wal_fsync_duration_seconds",
		Help:    "How long one fsync of a table's write-ahead log took (one fsync makes a group of writes durable).",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 15), // 100 µs to 1.6 s
	}, []string{"table"})
	m.fsyncGroup = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cortex_wal_fsync_group_entries",
		Help:    "Log entries made durable by one fsync (group commit).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 13), // 1 to 4096
	}, []string{"table"})
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), m.fsync, m.fsyncGroup)
	return m
}

// Synced observes one fsync (tables.Observer).
func (m *Metrics) Synced(table string, took time.Duration, entries int) {
	m.fsync.WithLabelValues(table).Observe(took.Seconds())
	m.fsyncGroup.WithLabelValues(table).Observe(float64(entries))
}

// Registry is the daemon's registry.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Sources are what the state collector reads at scrape time. Only Store is
// needed; the others are left out on a standalone node (or without an RPC
// listener).
type Sources struct {
	Store *store.Store
	Node  *mesh.Node
	Repl  *repl.Replicator
	// Repairs returns the repairs this node ran, by result, and the bytes
	// they moved (api.Server.RepairStats).
	Repairs func() (runs map[string]uint64, bytes uint64)
	// RPCRefusals returns the RPC listener's refusals by reason.
	RPCRefusals func() map[string]uint64
	// Health answers /healthz and /readyz and the cortex_healthy and
	// cortex_ready gauges.
	Health *health.Checker
	// Cert and CA are this node's certificate and the mesh CA's, in mesh
	// mode (their expiry is a gauge).
	Cert, CA *x509.Certificate
	// Now is the clock of lag in seconds (default time.Now).
	Now func() time.Time
}

// Register adds the collector of the node's state.
func (m *Metrics) Register(src Sources) error {
	if src.Now == nil {
		src.Now = time.Now
	}
	m.checker = src.Health
	return m.reg.Register(newCollector(src))
}
