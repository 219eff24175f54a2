// Package mesh owns the nodes' connections: the libp2p host whose identity
// is the node certificate's key, the security transport that admits only
// peers with a node certificate of the mesh CA, the hello (names, clock
// skew, membership records), dialing with backoff, revocation, and the
// small Transport interface the layers above use (Node here; memnet an
// in-memory one).
package mesh

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/ratelog"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	mss "github.com/multiformats/go-multistream"
)

// MaxRefusedSkew is the clock difference beyond which a peer is refused: its
// writes would win (or lose) every conflict by the error of its clock.
const MaxRefusedSkew = 60 * time.Second

const (
	// dialTimeout bounds a TCP connect, so that a dial into a partition
	// (no answer at all) gives up and retries soon after the link is back.
	dialTimeout = 3 * time.Second
)

// keepAliveInterval is how long a connection may stay silent before yamux
// pings the peer; a ping unanswered within yamux's write timeout (10 s)
// closes the connection. yamux's own default (30 s) left a peer behind a
// silent partition (link down, cable pulled, no RST) shown as connected,
// and not redialed, for up to 40 s.
const keepAliveInterval = 5 * time.Second

// Config configures a mesh node.
type Config struct {
	Identity     *pki.Identity // this node's certificate and key
	CAFile       string        // the mesh CA certificate
	Listen       string        // HOST:PORT to listen on
	Peers        []string      // HOST:PORT seeds
	MaxClockSkew time.Duration // log peers further off than this
	Store        *store.Store  // where membership records live
	Logger       *slog.Logger
	Now          func() time.Time // wall clock (tests set a skewed one)
	// Current, if set, is the certificate in use, which a reload replaces
	// (Identity is the one it held at start); new connections present
	// what it holds then.
	Current *pki.Current
	// ExpiryCheckEvery is how often the certificates are checked for an
	// end within pki.ExpiryWarning (default daily; expiry.go).
	ExpiryCheckEvery time.Duration
	// Incarnation is the id of this node's data directory (store.
	// NewIncarnation, kept in the directory), carried in its membership
	// record and hello: the mesh refuses an incarnation it forgot. Empty,
	// the node presents none (as an earlier version did).
	Incarnation string
}

// Node is this node's presence in the mesh: the libp2p host, the peers it
// keeps connected to, and what it learned about them.
type Node struct {
	cfg   Config
	host  host.Host
	sec   *Security
	log   *slog.Logger
	store *store.Store
	meta  *tables.Table

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	refusals *ratelog.Log[refusal]
	refused  RefusalCounts

	cur    *pki.Current      // this node's certificate now
	caCert *x509.Certificate // the mesh CA's
	expiry expiryLog

	mu      sync.Mutex
	peers   map[peer.ID]*peerState
	targets map[string]*target // addresses with a dial loop
	changed chan struct{}      // closed and replaced when a connection comes or goes
	// forgotten is the last refusal of this node by a peer because the
	// mesh forgot it (empty if none).
	forgotten string
}

type peerState struct {
	name      string
	addr      string
	connected bool
	since     time.Time // when it connected, or when it disconnected
	skew      time.Duration
	measured  bool   // past the hello on the current connection
	closing   string // why this node is closing the connection, if it is
	// heard: its hello on the current connection was read, and it
	// presented incarnation.
	heard       bool
	incarnation string
	// refused is why the last hello with it was refused (by either side),
	// and when; cleared by a hello that goes through.
	refused   string
	refusedAt time.Time
}

// target is an address with a dial loop, and how dialing it goes.
type target struct {
	stop         context.CancelFunc
	peer         peer.ID   // who answered there last
	lastErr      string    // the last dial's error, "" once one succeeded
	failingSince time.Time // since when every dial failed
}

// PeerStatus is one peer as `cortex mesh peers` shows it, or a seed
// (--peer) that is not connected: then Seed is set, Node and PeerID are
// those of whoever last answered there (if anyone) and LastError says why
// the last dial failed.
type PeerStatus struct {
	Node        string `json:"node"`
	PeerID      string `json:"peer_id"`
	Addr        string `json:"addr"`
	Connected   bool   `json:"connected"` // and past the hello: replicating
	ClockSkewMS int64  `json:"clock_skew_ms"`
	// SinceMS is when it connected, or (not connected) when it
	// disconnected or a seed's dials started failing, in Unix ms.
	SinceMS   int64  `json:"since_ms,omitempty"`
	Seed      bool   `json:"seed,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// Refused says why the last hello with it was refused, by either side
	// ("forgotten: ..." for a node the mesh forgot), while it is not
	// connected.
	Refused string `json:"refused,omitempty"`
	// Forgotten: the mesh forgot this node (cortex node forget): it is
	// not dialed and not expected.
	Forgotten bool `json:"forgotten,omitempty"`
}

// A remote refused again and again for the same reason (a certificate of
// another mesh, a revoked one, a clock minutes off) is logged once, then at
// most once a refusalLogInterval with the count. At most refusalKeys
// remotes and reasons are tracked; the refusals of others count together.
const (
	refusalLogInterval = time.Minute
	refusalKeys        = 256
)

// refusal is what refusals are counted under.
type refusal struct {
	msg    string
	level  slog.Level
	remote string // an IP (an inbound connection's port changes every time), a dialed address, or a node
	reason string // the error, without the addresses of a network error
}

// Start starts the libp2p host, writes this node's membership record and
// keeps connections to the seeds and to every member it learns of.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = time.Second
	}
	if self, ok := cfg.Store.Signer(); !ok || self.Name != cfg.Identity.Name {
		return nil, fmt.Errorf("the store of %s is not opened with its certificate: it could not sign or check system-table changes", cfg.Identity.Name)
	}
	roots, err := pki.LoadCA(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	caCert, err := pki.LoadCACert(cfg.CAFile)
	if err != nil {
		return nil, err
	}
	if cfg.Current == nil {
		cfg.Current = pki.NewCurrent(cfg.Identity)
	}
	if cfg.ExpiryCheckEvery <= 0 {
		cfg.ExpiryCheckEvery = expiryRepeat
	}
	if _, err := pki.Verify([][]byte{cfg.Identity.Leaf.Raw}, roots, pki.KindNode, cfg.Now()); err != nil {
		return nil, fmt.Errorf("this node's own certificate: %w", err)
	}
	priv, _, err := libp2pKeys(cfg.Identity)
	if err != nil {
		return nil, err
	}
	listen, err := toMultiaddr(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("--mesh-listen %q: %w", cfg.Listen, err)
	}
	meta, err := cfg.Store.Table(scope.MetaTable)
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, log: cfg.Logger, store: cfg.Store, meta: meta, peers: map[peer.ID]*peerState{}, targets: map[string]*target{}, changed: make(chan struct{}),
		cur: cfg.Current, caCert: caCert, expiry: expiryLog{warned: map[string]time.Time{}},
		refusals: ratelog.New(refusalLogInterval, refusalKeys, refusal{msg: "mesh: refused (more remotes than are counted apart)", level: slog.LevelWarn})}
	h, err := libp2p.New(
		libp2p.Identity(priv),
		libp2p.ListenAddrs(listen),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(SecurityID, func(id protocol.ID, muxers []tptu.StreamMuxer) (*Security, error) {
			s, err := newSecurity(id, cfg.Current, roots, muxers, n.refusedHandshake, cfg.Now, n.revoked)
			n.sec = s
			return s, err
		}),
		libp2p.Muxer(yamux.ID, muxer()),
		libp2p.DisableRelay(),
		libp2p.Ping(false),
		libp2p.DisableMetrics(),
		libp2p.UserAgent("cortexd"),
	)
	if err != nil {
		return nil, fmt.Errorf("start mesh host on %s: %w", cfg.Listen, err)
	}
	n.host = h
	n.ctx, n.cancel = context.WithCancel(context.Background())
	h.SetStreamHandler(HelloID, n.handleHello)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: n.connected, DisconnectedF: n.disconnected})
	if err := n.writeOwnRecord(ctx); err != nil {
		n.Close()
		return nil, err
	}
	n.log.Info("mesh listening", "node", cfg.Identity.Name, "peer_id", h.ID().String(), "addrs", n.ListenAddrs())
	n.CheckCertificates() // warn at start of an end within pki.ExpiryWarning
	n.dialKnownMembers()  // the seeds, and the members recorded
	n.wg.Add(3)
	go n.watchExpiry()
	go n.watchStore()
	go func() {
		defer n.wg.Done()
		n.refusals.Run(n.ctx, n.logRefusal)
	}()
	return n, nil
}

// refusedHandshake counts a failed security handshake and logs it if a
// line is due.
func (n *Node) refusedHandshake(inbound bool, remote net.Addr, err error) {
	r := refusal{msg: "mesh: could not connect", level: slog.LevelWarn, remote: remote.String()}
	if inbound {
		r.msg = "mesh: refused an inbound connection"
		if host, _, err := net.SplitHostPort(r.remote); err == nil {
			r.remote = host
		}
	}
	n.refuse(r, err)
}

// refuse counts a refusal and logs it if a line is due.
func (n *Node) refuse(r refusal, err error) {
	n.refused.Add(RefusalReason(err))
	r.reason = err.Error()
	var op *net.OpError
	if errors.As(err, &op) {
		r.reason = op.Op + ": " + op.Err.Error()
	}
	if rep, ok := n.refusals.Note(r, err, time.Now()); ok {
		n.logRefusal(rep)
	}
}

func (n *Node) logRefusal(rep ratelog.Report[refusal]) {
	n.log.Log(context.Background(), rep.Key.level, rep.Key.msg+" (repeats logged at most once a minute)",
		"remote", rep.Key.remote, "err", rep.Err, "refused", rep.N)
}

// closePeer disconnects a peer, saying why in the disconnect's log line.
func (n *Node) closePeer(id peer.ID, why string) {
	n.mu.Lock()
	if p, ok := n.peers[id]; ok {
		p.closing = why
	}
	n.mu.Unlock()
	n.host.Network().ClosePeer(id)
}

// muxer is yamux as libp2p configures it, with keepAliveInterval.
func muxer() *yamux.Transport {
	m := *yamux.DefaultTransport
	m.KeepAliveInterval = keepAliveInterval
	return &m
}

// Host is the libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Name is this node's name.
func (n *Node) Name() string { return n.cfg.Identity.Name }

// Close disconnects from every peer and stops the host.
func (n *Node) Close() error {
	n.cancel()
	err := n.host.Close()
	n.wg.Wait()
	return err
}

// ListenAddrs are the HOST:PORT addresses this node is reachable at.
func (n *Node) ListenAddrs() []string {
	var out []string
	for _, a := range n.host.Addrs() {
		if na, err := manet.ToNetAddr(a); err == nil {
			out = append(out, na.String())
		}
	}
	sort.Strings(out)
	return out
}

// writeOwnRecord writes this node's membership record into cortex_meta.
func (n *Node) writeOwnRecord(ctx context.Context) error {
	m := store.Member{Node: n.Name(), PeerID: n.host.ID().String(), Addrs: n.ListenAddrs(), LastSeen: n.cfg.Now().UnixMilli(),
		Incarnation: n.cfg.Incarnation}
	for _, t := range n.store.Draining() {
		m.Draining = append(m.Draining, t.ID)
	}
	b, _ := json.Marshal(m)
	if _, err := n.meta.Put(ctx, store.MemberKey(m.Node), b); err != nil {
		return fmt.Errorf("write membership record: %w", err)
	}
	return nil
}

// members returns the membership records this node has, as the changes
// that wrote them.
func (n *Node) members() []memberRecord {
	recs, err := n.store.MemberRecords()
	if err != nil {
		n.log.Error("mesh: read membership records", "err", err)
		return nil
	}
	out := make([]memberRecord, 0, len(recs))
	for _, r := range recs {
		out = append(out, memberRecord{Value: r.Value, HLC: r.Version.HLC, Origin: r.Version.Origin, Proof: r.Proof})
	}
	return out
}

// revoked reports whether a peer's certificate is on the revocation list.
func (n *Node) revoked(c *x509.Certificate) bool {
	return n.store.Revoked(c.Subject.CommonName, pki.Fingerprint(c))
}

// closeRevoked disconnects the peers whose certificates were revoked.
func (n *Node) closeRevoked() {
	for _, id := range n.host.Network().Peers() {
		if c, ok := n.sec.PeerCert(id); ok && n.revoked(c) {
			n.log.Warn("mesh: disconnecting a peer whose certificate is revoked", "peer", c.Subject.CommonName, "fingerprint", pki.Fingerprint(c))
			n.closePeer(id, "its certificate was revoked")
		}
	}
}

// dialKnownMembers keeps a dial loop on the seeds (--peer) and on the
// addresses of every member record that is not revoked, and stops the loops
// of addresses no record lists any more: a member rotating its addresses
// costs at most the 16 of its current record.
func (n *Node) dialKnownMembers() {
	want := map[string]bool{}
	for _, a := range n.cfg.Peers {
		want[a] = true
	}
	for _, r := range n.members() {
		m, err := r.member()
		if err != nil || m.Node == n.Name() || n.store.Revoked(m.Node, "") {
			continue
		}
		for _, a := range m.Addrs {
			want[a] = true
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for addr, t := range n.targets {
		if !want[addr] {
			t.stop()
			delete(n.targets, addr)
		}
	}
	for addr := range want {
		if _, ok := n.targets[addr]; ok || n.ctx.Err() != nil {
			continue
		}
		ctx, stop := context.WithCancel(n.ctx)
		t := &target{stop: stop}
		n.targets[addr] = t
		n.wg.Add(1)
		go n.dialLoop(ctx, addr, t)
	}
}

// dialLoop keeps this node connected to whatever node listens at addr,
// redialing with capped, jittered exponential backoff, slower once the
// address has not answered for slowAfter. It records how it goes in t.
func (n *Node) dialLoop(ctx context.Context, addr string, t *target) {
	defer n.wg.Done()
	b := NewBackoff()
	for ctx.Err() == nil {
		n.mu.Lock()
		wait, id := n.changed, t.peer
		n.mu.Unlock()
		if id != "" && n.host.Network().Connectedness(id) == network.Connected {
			select {
			case <-ctx.Done():
			case <-wait:
			case <-time.After(10 * time.Second):
			}
			continue
		}
		dialed := time.Now()
		got, err := n.dial(ctx, addr)
		if errors.Is(err, errSelf) {
			return
		}
		if err == nil {
			err = n.awaitHello(ctx, got, dialed) // a refused hello backs off like a failed dial
		}
		n.mu.Lock()
		if err == nil {
			t.peer, t.lastErr, t.failingSince = got, "", time.Time{}
		} else {
			t.lastErr = err.Error()
			if t.failingSince.IsZero() {
				t.failingSince = time.Now()
			}
		}
		failingFor := time.Since(t.failingSince)
		n.mu.Unlock()
		if err == nil {
			b.Reset()
			b.MaxInterval = maxBackoff
			continue
		}
		if failingFor > slowAfter {
			b.MaxInterval = slowBackoff
		}
		sleep := b.NextBackOff()
		n.log.Debug("mesh: dial failed", "addr", addr, "err", err, "retry_in", sleep)
		select {
		case <-ctx.Done():
		case <-time.After(sleep):
		}
	}
}

var errSelf = errors.New("that address is this node")

// awaitHello waits (at most handshakeTimeout) for the hello with a peer
// just dialed, and returns why it was refused if it was after since.
func (n *Node) awaitHello(ctx context.Context, id peer.ID, since time.Time) error {
	timeout := time.NewTimer(handshakeTimeout)
	defer timeout.Stop()
	for {
		n.mu.Lock()
		p, wait := n.peers[id], n.changed
		var refused string
		done := p == nil || !p.connected || p.measured
		if p != nil && p.refused != "" && !p.refusedAt.Before(since) {
			refused = p.refused
		}
		n.mu.Unlock()
		if refused != "" {
			return errors.New(refused)
		}
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-timeout.C:
			return nil
		case <-wait:
		}
	}
}

// dial connects to the node at addr. libp2p dials only a known peer ID, so
// a first connection learns it with a handshake of its own (probe).
func (n *Node) dial(ctx context.Context, addr string) (peer.ID, error) {
	maddr, err := toMultiaddr(addr)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	id, err := n.probe(ctx, addr)
	if err != nil {
		return "", err
	}
	if id == n.host.ID() {
		return "", errSelf
	}
	if err := n.host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{maddr}}); err != nil {
		return "", err
	}
	return id, nil
}

// probe runs the security handshake alone to learn the peer ID at addr.
func (n *Node) probe(ctx context.Context, addr string) (peer.ID, error) {
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := mss.SelectProtoOrFail(protocol.ID(SecurityID), conn); err != nil {
		return "", fmt.Errorf("%s does not speak the cortex mesh protocol: %w", addr, err)
	}
	sc, err := n.sec.SecureOutbound(ctx, conn, "")
	if err != nil {
		return "", err
	}
	return sc.RemotePeer(), nil
}

func (n *Node) connected(_ network.Network, c network.Conn) {
	n.mu.Lock()
	p := n.peerLocked(c.RemotePeer())
	if !p.connected {
		p.since = time.Now()
	}
	p.connected, p.addr = true, netAddr(c.RemoteMultiaddr())
	n.notifyLocked()
	n.mu.Unlock()
	if c.Stat().Direction == network.DirOutbound {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.helloUntilMet(c.RemotePeer())
		}()
	}
}

// helloUntilMet says hello to a peer just dialed, again (with backoff) while
// the peer stays connected without a hello through: when both nodes dial
// each other at once, one of the two connections may close under the first
// hello. After helloAttempts it closes the peer, and the dial loops start
// over.
func (n *Node) helloUntilMet(id peer.ID) {
	b := NewBackoff()
	for attempt := 1; ; attempt++ {
		err := n.sayHello(id)
		if err == nil || n.ctx.Err() != nil {
			return
		}
		n.mu.Lock()
		p := n.peers[id]
		waiting := p != nil && p.connected && !p.measured
		n.mu.Unlock()
		if !waiting || n.host.Network().Connectedness(id) != network.Connected {
			return
		}
		if attempt == helloAttempts {
			n.log.Warn("mesh: hello", "peer", n.peerName(id), "err", err, "attempts", attempt)
			n.closePeer(id, "hello failed: "+err.Error())
			return
		}
		n.log.Debug("mesh: hello failed, saying it again", "peer", n.peerName(id), "err", err)
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(b.NextBackOff()):
		}
	}
}

// helloAttempts bounds helloUntilMet.
const helloAttempts = 5

// disconnected notes that the last connection to a peer is gone, and logs
// it (with why, if this node closed it, and how long it was connected) if
// the peer had been announced as connected.
func (n *Node) disconnected(nw network.Network, c network.Conn) {
	n.mu.Lock()
	p, ok := n.peers[c.RemotePeer()]
	if !ok || !p.connected || nw.Connectedness(c.RemotePeer()) == network.Connected {
		n.mu.Unlock()
		return
	}
	announced, connectedFor, why := p.measured, time.Since(p.since), p.closing
	p.connected, p.measured, p.closing, p.since = false, false, "", time.Now()
	p.heard, p.incarnation = false, ""
	n.notifyLocked()
	name := p.name
	n.mu.Unlock()
	switch {
	case !announced:
		return // refused or lost during the hello: logged there
	case n.ctx.Err() != nil:
		why = "this node is stopping"
	case why == "":
		why = "the peer closed it or the network lost it"
	}
	n.log.Info("mesh: peer disconnected", "peer", name, "reason", why, "connected_for", connectedFor.Round(time.Millisecond))
}

func (n *Node) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *Node) peerLocked(id peer.ID) *peerState {
	p, ok := n.peers[id]
	if !ok {
		p = &peerState{}
		if c, ok := n.sec.PeerCert(id); ok {
			p.name = c.Subject.CommonName
		}
		n.peers[id] = p
	}
	return p
}

// sayHello opens the hello stream as the dialer: send ours, read theirs,
// measure the clock skew from the round trip's midpoint. It returns the
// error of a stream that failed on the way (worth saying hello again); a
// peer that refused, or answered what it may not, is closed here.
func (n *Node) sayHello(id peer.ID) error {
	ctx, cancel := context.WithTimeout(n.ctx, handshakeTimeout)
	defer cancel()
	s, err := n.host.NewStream(ctx, id, HelloID)
	if err != nil {
		return err
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(handshakeTimeout))
	sent := n.cfg.Now()
	if err := n.writeHello(s, nil); err != nil {
		return err
	}
	b, err := ReadFrame(s, maxHelloSize)
	if err != nil {
		return err
	}
	theirs, err := n.checkHello(b, id)
	if errors.Is(err, ErrForgotten) {
		n.refusedAsForgotten(id, err)
		return nil
	}
	if err != nil {
		n.refuse(refusal{msg: "mesh: peer refused the hello", level: slog.LevelError, remote: n.peerName(id)}, err)
		n.closePeer(id, "hello refused: "+err.Error())
		return nil
	}
	n.heard(id, theirs.Incarnation)
	if err := n.forgottenPeer(theirs.Node, theirs.Incarnation); err != nil {
		n.refuseForgotten(id, theirs.Node, err, true)
		return nil
	}
	mid := sent.Add(n.cfg.Now().Sub(sent) / 2)
	n.afterHello(id, theirs, time.UnixMilli(theirs.TimeMS).Sub(mid))
	return nil
}

// handleHello answers a dialer's hello with ours, or refuses the dialer.
func (n *Node) handleHello(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(handshakeTimeout))
	id := s.Conn().RemotePeer()
	theirs, err := n.readHello(s, id)
	if errors.Is(err, ErrForgotten) { // the dialer refused our answer: the mesh forgot this node
		n.refusedAsForgotten(id, err)
		return
	}
	if err != nil {
		n.log.Warn("mesh: hello", "peer", n.peerName(id), "err", err)
		s.Reset()
		return
	}
	n.heard(id, theirs.Incarnation) // before the answer: the dialer's streams may follow it at once
	skew := time.UnixMilli(theirs.TimeMS).Sub(n.cfg.Now())
	if refuse := n.forgottenPeer(theirs.Node, theirs.Incarnation); refuse != nil {
		n.writeHello(s, refuse)
		s.CloseWrite()
		io.Copy(io.Discard, s) // until the dialer has read it and closes (bounded by the deadline)
		n.refuseForgotten(id, theirs.Node, refuse, false)
		return
	}
	if refuse := skewError(skew); refuse != nil {
		n.writeHello(s, refuse)
		n.refuse(refusal{msg: "mesh: refused peer", level: slog.LevelError, remote: theirs.Node}, refuse)
		s.CloseWrite()
		io.Copy(io.Discard, s) // until the dialer has read it and closes (bounded by the deadline)
		n.closePeer(id, refuse.Error())
		return
	}
	if err := n.writeHello(s, nil); err != nil {
		n.log.Warn("mesh: hello", "peer", theirs.Node, "err", err)
		return
	}
	n.afterHello(id, theirs, skew)
}

func skewError(skew time.Duration) error {
	if skew > MaxRefusedSkew || skew < -MaxRefusedSkew {
		return &reasonError{ErrClockSkew, fmt.Sprintf("clock skew of %s is over the %s limit: fix the clock (NTP) on one of the two nodes", skew.Round(time.Millisecond), MaxRefusedSkew)}
	}
	return nil
}

// writeHello writes this node's hello, or, with refusal set, the refusal
// of the peer.
func (n *Node) writeHello(s network.Stream, refusal error) error {
	h := hello{Version: helloVersion, Node: n.Name(), TimeMS: n.cfg.Now().UnixMilli(), Incarnation: n.cfg.Incarnation}
	switch {
	case refusal == nil:
		h.Members = n.members()
	case errors.Is(refusal, ErrForgotten):
		h.Error, h.Code = refusal.Error(), codeForgotten
	default:
		h.Error = refusal.Error()
	}
	b, _ := json.Marshal(h)
	return WriteFrame(s, b)
}

// readHello reads the peer's hello and checks it (checkHello).
func (n *Node) readHello(s network.Stream, id peer.ID) (hello, error) {
	b, err := ReadFrame(s, maxHelloSize)
	if err != nil {
		return hello{}, err
	}
	return n.checkHello(b, id)
}

// checkHello decodes a peer's hello and checks it against its certificate.
func (n *Node) checkHello(b []byte, id peer.ID) (hello, error) {
	h, err := decodeHello(b)
	if err != nil {
		return h, err
	}
	if h.Error != "" && h.Code == codeForgotten {
		return h, &reasonError{ErrForgotten, h.Error}
	}
	if h.Error != "" {
		return h, &reasonError{ErrRefusedByPeer, h.Error}
	}
	if name := n.peerName(id); h.Node != name {
		return h, fmt.Errorf("peer says it is %q but its certificate says %q", h.Node, name)
	}
	return h, nil
}

// afterHello records the peer's skew, adopts its membership records and
// dials the members not yet connected.
func (n *Node) afterHello(id peer.ID, h hello, skew time.Duration) {
	if err := skewError(skew); err != nil {
		n.refuse(refusal{msg: "mesh: refused peer", level: slog.LevelError, remote: h.Node}, err)
		n.closePeer(id, err.Error())
		return
	}
	if skew > n.cfg.MaxClockSkew || skew < -n.cfg.MaxClockSkew {
		n.log.Warn("mesh: peer clock skew above --max-clock-skew", "peer", h.Node, "skew", skew.Round(time.Millisecond), "max", n.cfg.MaxClockSkew)
	}
	entries := make([]wal.Entry, 0, len(h.Members))
	for _, r := range h.Members {
		m, _ := r.member()
		if m.Node == n.Name() {
			continue // our own record is ours to write
		}
		entries = append(entries, r.entry(m.Node))
	}
	if len(entries) > 0 {
		if _, err := n.meta.Apply(n.ctx, entries); !tables.OnlyRefused(err) {
			n.log.Warn("mesh: adopt membership records", "peer", h.Node, "err", err)
		}
	}
	n.mu.Lock()
	p := n.peerLocked(id)
	p.name, p.skew, p.measured, p.refused = h.Node, skew, true, ""
	n.notifyLocked() // a peer ready for replication
	n.mu.Unlock()
	n.log.Info("mesh: peer connected", "peer", h.Node, "peer_id", id.String(), "clock_skew", skew.Round(time.Millisecond))
	n.CheckCertificates() // the peer's certificate, on connect
	n.dialKnownMembers()
}

func (n *Node) peerName(id peer.ID) string {
	if c, ok := n.sec.PeerCert(id); ok {
		return c.Subject.CommonName
	}
	return id.String()
}

// Peers lists the peers this node has met, by name, then the seeds
// (--peer) it is not connected to, by address, with their last error. A
// peer's address is where it listens (from its membership record), else the
// connection's.
func (n *Node) Peers() []PeerStatus {
	n.mu.Lock()
	out := make([]PeerStatus, 0, len(n.peers))
	for id, p := range n.peers {
		ps := PeerStatus{Node: p.name, PeerID: id.String(), Addr: p.addr, Connected: p.connected && p.measured,
			ClockSkewMS: p.skew.Milliseconds(), SinceMS: p.since.UnixMilli()}
		if !ps.Connected {
			ps.Refused = p.refused
		}
		out = append(out, ps)
	}
	var seeds []PeerStatus
	for _, addr := range n.cfg.Peers {
		t, ok := n.targets[addr]
		if !ok || t.lastErr == "" {
			continue // connected, never tried yet, or this node's own address
		}
		s := PeerStatus{Addr: addr, Seed: true, LastError: t.lastErr, SinceMS: t.failingSince.UnixMilli()}
		if p, ok := n.peers[t.peer]; ok {
			s.Node, s.PeerID = p.name, t.peer.String()
		}
		seeds = append(seeds, s)
	}
	n.mu.Unlock()
	for i, p := range out {
		if m, ok := n.store.Member(p.Node); ok && len(m.Addrs) > 0 {
			out[i].Addr = m.Addrs[0]
		}
		out[i].Forgotten = !p.Seed && n.store.IsForgotten(p.Node)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	sort.Slice(seeds, func(i, j int) bool { return seeds[i].Addr < seeds[j].Addr })
	return append(out, seeds...)
}

// LastContact is when this node was last connected to the named peer: now
// if it is, zero if it has not been since this node started.
func (n *Node) LastContact(node string) time.Time {
	n.mu.Lock()
	defer n.mu.Unlock()
	var last time.Time
	for _, p := range n.peers {
		switch {
		case p.name != node || p.since.IsZero():
		case p.connected:
			return time.Now()
		case p.since.After(last):
			last = p.since
		}
	}
	return last
}

// toMultiaddr turns HOST:PORT into a TCP multiaddr.
func toMultiaddr(hostport string) (ma.Multiaddr, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, err
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("bad port %q", port)
	}
	switch ip := net.ParseIP(host); {
	case host == "":
		return ma.NewMultiaddr("/ip4/0.0.0.0/tcp/" + port)
	case ip == nil:
		return ma.NewMultiaddr("/dns/" + host + "/tcp/" + port)
	case ip.To4() != nil:
		return ma.NewMultiaddr("/ip4/" + ip.String() + "/tcp/" + port)
	default:
		return ma.NewMultiaddr("/ip6/" + ip.String() + "/tcp/" + port)
	}
}

func netAddr(a ma.Multiaddr) string {
	if na, err := manet.ToNetAddr(a); err == nil {
		return na.String()
	}
	return a.String()
}

var _ Transport = (*Node)(nil)

// Handle serves protocol with h; the peer's name comes from its certificate.
// A stream from a node the mesh forgot, with the incarnation it was
// forgotten with, is refused.
func (n *Node) Handle(proto string, h Handler) {
	n.host.SetStreamHandler(protocol.ID(proto), func(s network.Stream) {
		id := s.Conn().RemotePeer()
		if err := n.streamRefusal(id); err != nil {
			n.refuse(refusal{msg: "mesh: refused a stream of a node the mesh forgot", level: slog.LevelWarn, remote: n.peerName(id)}, err)
			s.Reset()
			return
		}
		h(n.peerName(id), s)
	})
}

// Open opens a stream of protocol to a connected peer.
func (n *Node) Open(ctx context.Context, peerName, proto string) (Stream, error) {
	id, ok := n.peerByName(peerName)
	if !ok {
		return nil, fmt.Errorf("%s is not connected", peerName)
	}
	return n.host.NewStream(ctx, id, protocol.ID(proto))
}

// Ready lists the peers connected and past the hello.
func (n *Node) Ready() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for _, p := range n.peers {
		if p.connected && p.measured {
			out = append(out, p.name)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Changed returns a channel that is closed when a connection comes or goes
// or a peer finishes its hello.
func (n *Node) Changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.changed
}

// peerByName finds a connected peer by node name.
func (n *Node) peerByName(node string) (peer.ID, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for id, p := range n.peers {
		if p.name == node && p.connected {
			return id, true
		}
	}
	return "", false
}

// watchStore follows the store: on every change of the catalog (which holds
// the membership records and the revocation list) it closes the peers whose
// certificates were revoked, keeps the dial loops on the recorded members,
// and announces this node's hand-offs in its own membership record, so that
// holders come and fetch.
func (n *Node) watchStore() {
	defer n.wg.Done()
	var published []string // the draining tables in our membership record
	for {
		changed := n.store.Changed()
		n.closeRevoked()
		n.closeForgotten()
		n.dialKnownMembers()
		if draining := tableIDs(n.store.Draining()); !slices.Equal(draining, published) {
			if err := n.writeOwnRecord(n.ctx); err != nil {
				n.log.Warn("mesh: membership record", "err", err)
			} else {
				published = draining
			}
		}
		select {
		case <-n.ctx.Done():
			return
		case <-changed:
		}
	}
}

func tableIDs(ts []scope.TableInfo) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}
