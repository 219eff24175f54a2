package metrics

import (
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/prometheus/client_golang/prometheus"
)

// collector reads the node's state when scraped: no counter of its own.
type collector struct {
	src Sources
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

// The metrics the collector reports. Labels take only bounded values:
// table names (the catalog's), peer names (the mesh's members), and fixed
// sets of reasons and results.
var (
	descWrites   = desc("cortex_table_writes_total", "Local writes acknowledged (durable and visible), since the copy was opened.", "table", "op")
	descRemote   = desc("cortex_table_remote_entries_total", "Entries from peers, since the copy was opened, by result: adopted (newer, applied), rejected (lost last-write-wins: the copy held a newer version), refused (not admitted: malformed, over the limits, from the future, unauthorized).", "table", "result")
	descKeys     = desc("cortex_table_keys", "Live keys in the copy.", "table")
	descTombs    = desc("cortex_table_tombstones", "Deleted keys the copy keeps as tombstones.", "table")
	descOpen     = desc("cortex_table_open", "1 for a copy this node holds that is open, 0 for one that failed to open.", "table")
	descWALBytes = desc("cortex_wal_bytes", "Bytes of the copy's write-ahead log segment files on disk.", "table")
	descWALSegs  = desc("cortex_wal_segments", "Segment files of the copy's write-ahead log.", "table")
	descLag      = desc("cortex_replication_lag_entries", "Entries of this node's copy a peer that holds the table has not acknowledged.", "table", "peer")
	descLagS     = desc("cortex_replication_lag_seconds", "Age of the oldest entry of this node's copy a peer that holds the table has not acknowledged (0 when it has them all).", "table", "peer")
	descSubUp    = desc("cortex_replication_subscription_up", "1 if this node's subscription to a peer's copy has its stream open, 0 while it is being opened or retried.", "table", "peer")
	descSubs     = desc("cortex_replication_subscriptions_opened_total", "Replication streams this node opened to peers, since it started.", "table")
	descSubRef   = desc("cortex_replication_subscribers_refused_total", "Subscribers this node refused (outside the table's scope, unknown table), since it started.", "table")
	descSnapSent = desc("cortex_replication_snapshots_sent_total", "Snapshots of this node's copy sent in full to subscribers, since it started.", "table")
	descSnapRecv = desc("cortex_replication_snapshots_received_total", "Snapshots of peers' copies received in full, since this node started.", "table")
	descEntSent  = desc("cortex_replication_entries_sent_total", "Log entries of this node's copy sent to a subscriber, since this node started.", "table", "peer")
	descEntSkip  = desc("cortex_replication_entries_skipped_total", "Log entries of this node's copy not sent to a subscriber because it claimed them (it had them, or newer versions), since this node started.", "table")
	descPeers    = desc("cortex_mesh_peers_connected", "Peers connected and past the hello.")
	descSkew     = desc("cortex_mesh_peer_clock_skew_seconds", "A connected peer's clock minus this node's, measured at connect.", "peer")
	descRefusals = desc("cortex_mesh_handshake_refusals_total", "Mesh connections and hellos refused (either way), since the start, by reason.", "reason")
	descRPCRef   = desc("cortex_rpc_refusals_total", "Connections the RPC listener refused, since the start, by reason.", "reason")
	descRepairs  = desc("cortex_repair_runs_total", "Repairs this node ran (cortex sync repair), since the start, by result.", "result")
	descRepairB  = desc("cortex_repair_bytes_total", "Bytes that crossed the network for the repairs this node ran (digests, hashes, records).")
	descCertExp  = desc("cortex_certificate_expiry_timestamp_seconds", "When this node's certificate (kind=node) and the mesh CA's (kind=ca) expire, in Unix seconds.", "kind")
	descReady    = desc("cortex_ready", "1 when the node is ready (/readyz answers 200).")
	descHealthy  = desc("cortex_healthy", "1 when the node is healthy (/healthz answers 200).")
	allDescs     = []*prometheus.Desc{descWrites, descRemote, descKeys, descTombs, descOpen, descWALBytes, descWALSegs, descLag, descLagS, descSubUp, descSubs, descSubRef, descSnapSent, descSnapRecv, descEntSent, descEntSkip, descPeers, descSkew, descRefusals, descRPCRef, descRepairs, descRepairB, descCertExp, descReady, descHealthy}
)

func newCollector(src Sources) *collector { return &collector{src: src} }

// Describe sends every metric's description.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range allDescs {
		ch <- d
	}
}

// Collect reads the state now.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	st, now := c.src.Store, c.src.Now()
	for _, info := range st.HeldInfo() {
		t, ok := st.Copy(info)
		if !ok {
			continue
		}
		name := info.Name
		s := t.Stats()
		counter(descWrites, float64(s.Puts), name, "put")
		counter(descWrites, float64(s.Deletes), name, "delete")
		counter(descRemote, float64(s.Adopted), name, "adopted")
		counter(descRemote, float64(s.Rejected), name, "rejected")
		counter(descRemote, float64(s.Refused), name, "refused")
		gauge(descKeys, float64(s.Keys), name)
		gauge(descTombs, float64(s.Tombstones), name)
		gauge(descOpen, 1, name)
		if segs, bytes, err := t.LogFiles(); err == nil {
			gauge(descWALSegs, float64(segs), name)
			gauge(descWALBytes, float64(bytes), name)
		}
		if c.src.Node != nil {
			for _, l := range Lags(info, st.Node(), s.Applied, t, now) {
				gauge(descLag, float64(l.Entries), name, l.Peer)
				gauge(descLagS, l.Seconds, name, l.Peer)
			}
		}
	}
	for _, b := range st.Broken() {
		gauge(descOpen, 0, b.Info.Name)
	}
	if r := c.src.Repl; r != nil {
		for _, s := range r.SubscriptionStates() {
			gauge(descSubUp, b2f(s.Up), s.Table.Name, s.Peer)
		}
		for table, s := range r.Stats() {
			counter(descSubs, float64(s.Subscribed), table)
			counter(descSubRef, float64(s.Refused), table)
			counter(descSnapSent, float64(s.SnapshotsSent), table)
			counter(descSnapRecv, float64(s.SnapshotsReceived), table)
			counter(descEntSkip, float64(s.EntriesSkipped), table)
			for peer, n := range s.SentTo {
				counter(descEntSent, float64(n), table, peer)
			}
		}
	}
	if n := c.src.Node; n != nil {
		connected := 0
		for _, p := range n.Peers() {
			if p.Connected && !p.Seed {
				connected++
				gauge(descSkew, float64(p.ClockSkewMS)/1000, p.Node)
			}
		}
		gauge(descPeers, float64(connected))
		refused := n.Refusals()
		for _, reason := range mesh.RefusalReasons {
			counter(descRefusals, float64(refused[reason]), reason)
		}
	}
	if f := c.src.RPCRefusals; f != nil {
		for reason, v := range f() {
			counter(descRPCRef, float64(v), reason)
		}
	}
	if f := c.src.Repairs; f != nil {
		runs, bytes := f()
		for result, v := range runs {
			counter(descRepairs, float64(v), result)
		}
		counter(descRepairB, float64(bytes))
	}
	if c.src.Cert != nil {
		gauge(descCertExp, float64(c.src.Cert.NotAfter.Unix()), "node")
	}
	if c.src.CA != nil {
		gauge(descCertExp, float64(c.src.CA.NotAfter.Unix()), "ca")
	}
	if h := c.src.Health; h != nil {
		gauge(descReady, b2f(h.Ready().OK))
		gauge(descHealthy, b2f(h.Health().OK))
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// PeerLag is how far one peer is behind this node's copy of a table.
type PeerLag struct {
	Peer    string
	Entries uint64
	Seconds float64
}

// Lags is, for every peer that acknowledged this node's copy of a table and
// holds the table by scope, the entries up to applied it has not
// acknowledged, and the age of the oldest of them (by its version's
// timestamp; since the peer's last acknowledgement if the entry is no
// longer in the log).
func Lags(info scope.TableInfo, self string, applied uint64, t *tables.Table, now time.Time) []PeerLag {
	var out []PeerLag
	for peer, a := range t.Subscribers() {
		if peer == self || !scope.Holds(info, peer) {
			continue
		}
		l := PeerLag{Peer: peer}
		if a.Offset < applied {
			l.Entries = applied - a.Offset
			since := a.At
			if v, err := t.EntryVersion(a.Offset + 1); err == nil {
				since, _ = tables.HLCTime(v.HLC)
			}
			l.Seconds = max(now.Sub(since).Seconds(), 0)
		}
		out = append(out, l)
	}
	return out
}
