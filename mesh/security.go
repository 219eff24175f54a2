package mesh

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	ic "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/sec"
	tptu "github.com/libp2p/go-libp2p/p2p/net/upgrader"
)

// SecurityID is the security protocol negotiated on every mesh connection.
const SecurityID = "/cortex/tls/1.0.0"

// handshakeTimeout bounds a handshake whose context has no deadline.
const handshakeTimeout = 10 * time.Second

// confirmAccepted is the byte a listener sends once it has verified the
// dialer's certificate. In TLS 1.3 the dialer finishes its handshake before
// the listener has checked the dialer's certificate; without this byte a
// refused dialer would believe it is connected until its first stream fails.
const confirmAccepted = 0xC0

// Security is the mesh's libp2p security transport: TLS 1.3 where both
// sides present node certificates from the mesh CA. The remote peer ID is
// derived from the certificate's key and the node name from its subject.
type Security struct {
	id     protocol.ID
	cur    *pki.Current // the certificate presented on new connections
	roots  *x509.CertPool
	local  peer.ID
	muxers []string
	now    func() time.Time
	// refused is told of every failed handshake (the caller decides what
	// to log: a peer retrying forever must not fill the log).
	refused func(inbound bool, remote net.Addr, err error)
	// revoked reports whether a verified certificate is on the mesh's
	// revocation list: such a peer gets no connection.
	revoked func(*x509.Certificate) bool

	mu    sync.Mutex
	peers map[peer.ID]*x509.Certificate // certificates of authenticated peers
}

var _ sec.SecureTransport = (*Security)(nil)

// NewSecurity returns the transport for a node identity and the mesh CA.
// refused, if not nil, is called with every handshake that failed.
func NewSecurity(id protocol.ID, ident *pki.Identity, roots *x509.CertPool, muxers []tptu.StreamMuxer, refused func(inbound bool, remote net.Addr, err error), now func() time.Time, revoked func(*x509.Certificate) bool) (*Security, error) {
	return newSecurity(id, pki.NewCurrent(ident), roots, muxers, refused, now, revoked)
}

// newSecurity is NewSecurity presenting whatever certificate cur holds when
// a connection is made: a renewal (same key, so the same peer ID) takes
// effect on the next connection, and those up keep theirs.
func newSecurity(id protocol.ID, cur *pki.Current, roots *x509.CertPool, muxers []tptu.StreamMuxer, refused func(inbound bool, remote net.Addr, err error), now func() time.Time, revoked func(*x509.Certificate) bool) (*Security, error) {
	if refused == nil {
		refused = func(bool, net.Addr, error) {}
	}
	_, pub, err := libp2pKeys(cur.Get())
	if err != nil {
		return nil, err
	}
	local, err := peer.IDFromPublicKey(pub)
	if err != nil {
		return nil, err
	}
	s := &Security{id: id, cur: cur, roots: roots, local: local, refused: refused, now: now, revoked: revoked, peers: map[peer.ID]*x509.Certificate{}}
	for _, m := range muxers {
		s.muxers = append(s.muxers, string(m.ID))
	}
	return s, nil
}

// libp2pKeys converts the node certificate's key pair to libp2p's types.
func libp2pKeys(ident *pki.Identity) (ic.PrivKey, ic.PubKey, error) {
	key, ok := ident.TLS.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, fmt.Errorf("node key: want an ECDSA key, got %T", ident.TLS.PrivateKey)
	}
	return ic.ECDSAKeyPairFromKey(key)
}

// peerKey derives the libp2p peer ID and key of a certificate's public key.
func peerKey(c *x509.Certificate) (peer.ID, ic.PubKey, error) {
	pub, ok := c.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return "", nil, fmt.Errorf("certificate of %q: want an ECDSA key, got %T", c.Subject.CommonName, c.PublicKey)
	}
	pk, err := ic.ECDSAPublicKeyFromPubKey(*pub)
	if err != nil {
		return "", nil, err
	}
	id, err := peer.IDFromPublicKey(pk)
	return id, pk, err
}

// ID is the protocol ID.
func (s *Security) ID() protocol.ID { return s.id }

// PeerCert returns the certificate an authenticated peer presented.
func (s *Security) PeerCert(p peer.ID) (*x509.Certificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.peers[p]
	return c, ok
}

func (s *Security) config(verified **x509.Certificate) *tls.Config {
	return &tls.Config{
		MinVersion:           tls.VersionTLS13,
		GetCertificate:       func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return s.cur.TLS(), nil },
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return s.cur.TLS(), nil },
		ClientAuth:           tls.RequireAnyClientCert, // verified below, against the mesh CA
		InsecureSkipVerify:   true,                     // likewise: peers are nodes, not host names
		NextProtos:           append([]string(nil), s.muxers...),
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			leaf, err := pki.Verify(raw, s.roots, pki.KindNode, s.now())
			if err != nil {
				return err
			}
			if s.revoked != nil && s.revoked(leaf) {
				return &reasonError{ErrRevoked, fmt.Sprintf("the certificate of %q (%s) is revoked", leaf.Subject.CommonName, pki.Fingerprint(leaf))}
			}
			*verified = leaf
			return nil
		},
	}
}

// SecureInbound runs the handshake as the listener. If p is not empty the
// dialer must be that peer.
func (s *Security) SecureInbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	var leaf *x509.Certificate
	cfg := s.config(&leaf)
	// Prefer the dialer's muxer order, as libp2p's own TLS transport does.
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		for _, proto := range hello.SupportedProtos {
			for _, m := range s.muxers {
				if m == proto {
					c := cfg.Clone()
					c.GetConfigForClient = nil
					c.NextProtos = []string{proto}
					return c, nil
				}
			}
		}
		return nil, nil
	}
	conn, err := s.handshake(ctx, tls.Server(insecure, cfg), &leaf, p)
	if err == nil {
		_, err = conn.Write([]byte{confirmAccepted})
	}
	if err != nil {
		s.refused(true, insecure.RemoteAddr(), err)
		insecure.Close()
		return nil, err
	}
	return conn, nil
}

// SecureOutbound runs the handshake as the dialer and waits for the
// listener's confirmation that it accepted our certificate.
func (s *Security) SecureOutbound(ctx context.Context, insecure net.Conn, p peer.ID) (sec.SecureConn, error) {
	var leaf *x509.Certificate
	conn, err := s.handshake(ctx, tls.Client(insecure, s.config(&leaf)), &leaf, p)
	if err == nil {
		err = s.awaitConfirmation(ctx, conn)
	}
	if err != nil {
		s.refused(false, insecure.RemoteAddr(), err)
		insecure.Close()
		return nil, err
	}
	return conn, nil
}

func (s *Security) awaitConfirmation(ctx context.Context, c *secureConn) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(handshakeTimeout)
	}
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	var b [1]byte
	if _, err := c.Read(b[:]); err != nil {
		return fmt.Errorf("%w or closed the connection: %w", ErrRefusedByPeer, err)
	}
	if b[0] != confirmAccepted {
		return fmt.Errorf("the peer sent %#x instead of accepting the connection", b[0])
	}
	return nil
}

func (s *Security) handshake(ctx context.Context, tc *tls.Conn, leaf **x509.Certificate, want peer.ID) (*secureConn, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, handshakeTimeout)
		defer cancel()
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	if *leaf == nil {
		return nil, errors.New("tls handshake: no verified peer certificate")
	}
	remote, pub, err := peerKey(*leaf)
	if err != nil {
		return nil, err
	}
	if want != "" && remote != want {
		return nil, sec.ErrPeerIDMismatch{Expected: want, Actual: remote}
	}
	s.mu.Lock()
	s.peers[remote] = *leaf
	s.mu.Unlock()
	muxer := tc.ConnectionState().NegotiatedProtocol
	return &secureConn{
		Conn: tc, local: s.local, remote: remote, remotePub: pub,
		state: network.ConnectionState{StreamMultiplexer: protocol.ID(muxer), UsedEarlyMuxerNegotiation: muxer != ""},
	}, nil
}

// secureConn is an authenticated mesh connection.
type secureConn struct {
	*tls.Conn
	local, remote peer.ID
	remotePub     ic.PubKey
	state         network.ConnectionState
}

func (c *secureConn) LocalPeer() peer.ID                 { return c.local }
func (c *secureConn) RemotePeer() peer.ID                { return c.remote }
func (c *secureConn) RemotePublicKey() ic.PubKey         { return c.remotePub }
func (c *secureConn) ConnState() network.ConnectionState { return c.state }
