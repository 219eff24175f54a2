package integration

// A raw-protocol peer: a node of the mesh (it holds a real node certificate
// of the mesh CA) that speaks cortex's protocols by hand, frame by frame, as
// a modified cortexd would, to send what a stock node never sends. Its
// frames are built here from the wire format (length-prefixed frames,
// wal entries, JSON requests), not with the p2p package's own encoders.

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	ic "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	mss "github.com/multiformats/go-multistream"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/repair"
	"github.com/cortex-mesh/cortex/repl"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

type rawPeer struct {
	t     *testing.T
	name  string
	ident *pki.Identity
	host  host.Host
	sec   *mesh.Security

	mu    sync.Mutex
	fresh int            // with freshLogs: the log ids handed out so far
	asked map[string]int // replication requests received, by table
	// freshLogs: every subscription gets a snapshot in a new log of its own
	// (a modified node may start a new log whenever it likes).
	freshLogs bool
	publish   map[string][]wal.Entry
	requests  []map[string]any
}

// newRawPeer starts a libp2p host with the mesh's security transport and
// the certificate of node name in certs.
func newRawPeer(t *testing.T, certs, name string) *rawPeer {
	t.Helper()
	crt, key := pki.NodeCertFiles(certs, name)
	ident, err := pki.LoadIdentity(crt, key, pki.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	roots, err := pki.LoadCA(filepath.Join(certs, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	priv, _, err := ic.ECDSAKeyPairFromKey(ident.TLS.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	p := &rawPeer{t: t, name: name, ident: ident, asked: map[string]int{}, publish: map[string][]wal.Entry{}}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(mesh.SecurityID, func(id protocol.ID, muxers []tptu.StreamMuxer) (*mesh.Security, error) {
			s, err := mesh.NewSecurity(id, ident, roots, muxers, nil, time.Now, nil)
			p.sec = s
			return s, err
		}),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.DisableRelay(), libp2p.Ping(false), libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	p.host = h
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler(mesh.HelloID, func(s network.Stream) { // answer a dialer's hello
		defer s.Close()
		if _, err := mesh.ReadFrame(s, 4<<20); err == nil {
			mesh.WriteFrame(s, p.hello(nil))
		}
	})
	h.SetStreamHandler(repl.ID, p.serveRepl)
	return p
}

// connect dials a node at addr (learning its peer ID with a probe
// handshake, as cortexd does) and says hello with the given membership
// records; it returns the node's peer ID.
func (p *rawPeer) connect(addr string, members []map[string]any) peer.ID {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		p.t.Fatal(err)
	}
	defer conn.Close()
	if err := mss.SelectProtoOrFail(protocol.ID(mesh.SecurityID), conn); err != nil {
		p.t.Fatal(err)
	}
	sc, err := p.sec.SecureOutbound(ctx, conn, "")
	if err != nil {
		p.t.Fatal(err)
	}
	id := sc.RemotePeer()
	maddr, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/" + mustPort(p.t, addr))
	if err := p.host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{maddr}}); err != nil {
		p.t.Fatal(err)
	}
	s, err := p.host.NewStream(ctx, id, mesh.HelloID)
	if err != nil {
		p.t.Fatal(err)
	}
	defer s.Close()
	if err := mesh.WriteFrame(s, p.hello(members)); err != nil {
		p.t.Fatal(err)
	}
	if _, err := mesh.ReadFrame(s, 4<<20); err != nil {
		p.t.Fatalf("hello: %v", err)
	}
	return id
}

func mustPort(t *testing.T, addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return port
}

func (p *rawPeer) hello(members []map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"v": 1, "node": p.name, "time_ms": time.Now().UnixMilli(), "members": members})
	return b
}

// memberRecord is a membership record as a hello carries it, signed by
// signer (a record of someone else signed by this peer is a forgery).
func (p *rawPeer) memberRecord(signer *pki.Identity, m store.Member) map[string]any {
	p.t.Helper()
	value, _ := json.Marshal(m)
	e := wal.Entry{Op: wal.OpPut, Key: store.MemberKey(m.Node), Value: value,
		Version: wal.Version{HLC: tables.HLC(time.Now().UnixMilli(), 0), Origin: m.Node}}
	if err := store.Sign(signer, scope.MetaTable, &e); err != nil {
		p.t.Fatal(err)
	}
	return map[string]any{"value": json.RawMessage(value), "hlc": e.Version.HLC, "origin": e.Version.Origin, "proof": e.Proof}
}

// signed is a system-table change signed by this peer.
func (p *rawPeer) signed(table string, e wal.Entry) wal.Entry {
	p.t.Helper()
	if e.Version.Origin == "" {
		e.Version.Origin = p.name
	}
	if e.Version.HLC == 0 {
		e.Version.HLC = tables.HLC(time.Now().UnixMilli(), 0)
	}
	if err := store.Sign(p.ident, table, &e); err != nil {
		p.t.Fatal(err)
	}
	return e
}

// Frames, by hand: a 4-byte length, then the payload; a records frame is
// 'R', a count and length-prefixed wal entries; 'Z' ends a snapshot.
func recordsFrame(typ byte, offset uint64, entries []wal.Entry) []byte {
	b := []byte{typ}
	if typ == 'B' {
		b = binary.AppendUvarint(b, offset)
	}
	b = binary.AppendUvarint(b, uint64(len(entries)))
	for i := range entries {
		enc := wal.AppendEncode(nil, &entries[i])
		b = binary.AppendUvarint(b, uint64(len(enc)))
		b = append(b, enc...)
	}
	return b
}

// repairApply sends records into a node's copy of a table with the repair
// protocol's apply operation and returns the node's answer frame.
func (p *rawPeer) repairApply(id peer.ID, table, tableID string, entries []wal.Entry) []byte {
	p.t.Helper()
	s := p.open(id, repair.RepairID, map[string]any{"v": 1, "op": "apply", "table": table, "table_id": tableID})
	defer s.Close()
	for _, f := range [][]byte{recordsFrame('R', 0, entries), {'Z'}} {
		if err := mesh.WriteFrame(s, f); err != nil {
			p.t.Fatal(err)
		}
	}
	b, err := mesh.ReadFrame(s, 1<<20)
	if err != nil {
		p.t.Fatalf("repair apply: %v", err)
	}
	return b
}

// status asks a node for the status of its copies of tables (all if none).
func (p *rawPeer) status(id peer.ID, names ...string) []repair.CopyStatus {
	p.t.Helper()
	if names == nil {
		names = []string{}
	}
	s := p.open(id, repair.StatusID, map[string]any{"tables": names})
	defer s.Close()
	b, err := mesh.ReadFrame(s, 4<<20)
	if err != nil {
		p.t.Fatalf("status: %v", err)
	}
	var out []repair.CopyStatus
	if err := json.Unmarshal(b, &out); err != nil {
		p.t.Fatal(err)
	}
	return out
}

func (p *rawPeer) open(id peer.ID, proto string, req any) network.Stream {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := p.host.NewStream(ctx, id, protocol.ID(proto))
	if err != nil {
		p.t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(20 * time.Second))
	b, _ := json.Marshal(req)
	if err := mesh.WriteFrame(s, b); err != nil {
		p.t.Fatal(err)
	}
	return s
}

// serveRepl publishes whatever the test put in p.publish for a table: a
// start frame at the subscriber's cursor (in a log of its own), then one
// batch, then it keeps the stream open.
func (p *rawPeer) serveRepl(s network.Stream) {
	defer s.Close()
	b, err := mesh.ReadFrame(s, 64<<10)
	if err != nil {
		return
	}
	var req struct {
		Table string `json:"table"`
		LogID string `json:"log_id"`
		From  uint64 `json:"from"`
	}
	json.Unmarshal(b, &req)
	p.mu.Lock()
	p.asked[req.Table]++
	entries := p.publish[req.Table]
	logID := "raw0000000000000"
	if p.freshLogs {
		p.fresh++
		logID = fmt.Sprintf("raw%013d", p.fresh)
	}
	p.mu.Unlock()
	start := binary.AppendUvarint([]byte{'L'}, uint64(len(logID)))
	start = binary.AppendUvarint(append(start, logID...), 1)
	if req.LogID != logID || req.From != 1 { // no cursor yet: a "snapshot" of the entries
		begin := binary.AppendUvarint([]byte{'S'}, uint64(len(logID)))
		begin = binary.AppendUvarint(append(begin, logID...), uint64(len(entries)))
		begin = binary.AppendUvarint(begin, 0) // floor: complete below nothing
		mesh.WriteFrame(s, begin)
		if len(entries) > 0 {
			mesh.WriteFrame(s, recordsFrame('R', 0, entries))
		}
		mesh.WriteFrame(s, []byte{'Z'})
	} else {
		mesh.WriteFrame(s, start)
	}
	// Keep the stream until the subscriber goes; read its acks.
	r := bufio.NewReader(s)
	for {
		if _, err := mesh.ReadFrame(r, 64); err != nil {
			return
		}
	}
}

// askedFor reports how many replication requests the peer received for a
// table.
func (p *rawPeer) askedFor(table string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.asked[table]
}

func (p *rawPeer) setPublished(table string, entries ...wal.Entry) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publish[table] = entries
}

func (p *rawPeer) String() string { return fmt.Sprintf("raw peer %s", p.name) }
