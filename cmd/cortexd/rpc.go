package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/ratelog"
)

// Limits of the mTLS listener (its caps on connections are in connlimit.go).
const (
	// rpcHandshakeTimeout is how long a connection may take to complete
	// its TLS handshake: one round trip and a certificate check take
	// milliseconds, and a connection without a certificate holds a
	// descriptor and a handshake slot until then.
	rpcHandshakeTimeout = 3 * time.Second
	// rpcReadHeaderTimeout bounds reading a request's headers (a few
	// hundred bytes) once the client is authenticated.
	rpcReadHeaderTimeout = 5 * time.Second
	rpcShutdownTimeout   = 30 * time.Second
)

// serveRPC starts the mTLS API listener on cfg.RPCListen: TLS 1.3 only, the
// node's certificate as the server's, and only clients that present a client
// certificate of the mesh CA (a node certificate, one of another CA, an
// expired one or none at all is refused in the handshake, and the refusal is
// logged with the remote address and the reason). h serves the requests; if
// it is an *api.Server, its Remote handler is used, which also requires the
// identity to be registered as a client (and the certificate to be the pinned
// one, if any) before the ACLs are checked. stop shuts the listener down,
// letting requests in flight finish. The listener caps the connections it
// holds (rpcLimits), so that no one can exhaust the process's descriptors.
// Each handshake presents the certificate ident holds then, so a reload
// (SIGHUP) takes effect on the next connection.
func serveRPC(cfg Config, ident *pki.Current, h http.Handler, log *slog.Logger) (stop func(), err error) {
	s, err := listenRPC(cfg, ident, h, log)
	if err != nil {
		return nil, err
	}
	return s.stop, nil
}

// rpcServer is a running mTLS listener.
type rpcServer struct {
	ln   *handshakeListener
	stop func()
}

// Refusals counts the connections the listener refused since it started,
// by reason (rpcRefusalReason).
func (s *rpcServer) Refusals() map[string]uint64 { return s.ln.counts.Snapshot() }

// rpcRefusalReasons are the reasons the RPC listener counts refusals by:
// its connection caps, a client certificate pki.Verify refused (another CA,
// expired, a node certificate used as a client, or other), none presented,
// a handshake that was abandoned or timed out (port scans, floods), and any
// other TLS failure.
var rpcRefusalReasons = []string{"limits", "foreign_ca", "expired", "wrong_kind", "bad_certificate", "no_certificate", "aborted", "tls"}

// certReason is the reason of a certificate pki.Verify refused: the one
// mesh.RefusalReason gives for another CA, expiry or the wrong kind, else
// bad_certificate.
func certReason(err error) string {
	switch r := mesh.RefusalReason(err); r {
	case "foreign_ca", "expired", "wrong_kind":
		return r
	}
	return "bad_certificate"
}

func listenRPC(cfg Config, ident *pki.Current, h http.Handler, log *slog.Logger) (*rpcServer, error) {
	if ident == nil {
		return nil, errors.New("--rpc-listen needs mesh mode (--mesh-ca, --mesh-cert and --mesh-key)")
	}
	pool, err := pki.LoadCA(cfg.MeshCA)
	if err != nil {
		return nil, err
	}
	streams, hasStreams := h.(interface{ StopStreams() })
	if r, ok := h.(interface{ Remote() http.Handler }); ok {
		h = r.Remote()
	}
	raw, err := net.Listen("tcp", cfg.RPCListen)
	if err != nil {
		return nil, fmt.Errorf("rpc: listen on %s (--rpc-listen): %w", cfg.RPCListen, err)
	}
	ln := newHandshakeListener(raw, rpcTLSConfig(ident, pool), pool, rpcLimits, log)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: rpcReadHeaderTimeout,
		ReadTimeout:       2 * time.Minute,
		WriteTimeout:      2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	if hasStreams {
		srv.RegisterOnShutdown(streams.StopStreams)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Error("rpc: the listener stopped", "addr", raw.Addr().String(), "err", err)
		}
	}()
	log.Info("rpc listening", "addr", raw.Addr().String(), "node", ident.Get().Name)
	var once sync.Once
	return &rpcServer{ln: ln, stop: func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), rpcShutdownTimeout)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				log.Error("rpc: stopping the listener", "err", err)
				srv.Close()
			}
			ln.Close()
			<-done
			ln.wait()
		})
	}}, nil
}

// rpcTLSConfig is the server side of the mTLS listener. The standard
// verification (chain to the mesh CA, client-auth usage, validity) fills
// the verified chains that the API takes the caller's identity from;
// VerifyConnection then applies the mesh's own rules with pki.Verify, which
// refuses a node certificate used as a client.
func rpcTLSConfig(ident *pki.Current, pool *x509.CertPool) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		GetCertificate:         func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return ident.TLS(), nil },
		ClientAuth:             tls.RequireAndVerifyClientCert,
		ClientCAs:              pool,
		NextProtos:             []string{"http/1.1"},
		SessionTicketsDisabled: true, // every connection shows its certificate
		VerifyConnection: func(cs tls.ConnectionState) error {
			raw := make([][]byte, len(cs.PeerCertificates))
			for i, c := range cs.PeerCertificates {
				raw[i] = c.Raw
			}
			if _, err := pki.Verify(raw, pool, pki.KindClient, time.Now()); err != nil {
				return refusedError{err}
			}
			return nil
		},
	}
}

// refusedError is a client certificate refused by pki.Verify.
type refusedError struct{ err error }

func (e refusedError) Error() string { return e.err.Error() }
func (e refusedError) Unwrap() error { return e.err }

// handshakeListener accepts TCP connections and hands them on as TLS
// connections whose handshake has succeeded. A connection over the limiter's
// caps is closed at once (and the refusals logged at most once a minute per
// remote); each other handshake runs in its own goroutine under a deadline,
// so a slow client holds up no one; a failed one is logged with the remote
// address and, for a refused certificate, the reason in the words of
// pki.Verify. A connection gives back its place under the caps when it is
// closed.
type handshakeListener struct {
	inner    net.Listener
	cfg      *tls.Config
	pool     *x509.CertPool
	log      *slog.Logger
	limiter  *connLimiter
	refusals *ratelog.Log[refusal]
	counts   mesh.RefusalCounts // by rpcRefusalReasons

	ready     chan net.Conn
	ctx       context.Context // canceled by Close: ends handshakes in flight
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
}

func newHandshakeListener(inner net.Listener, cfg *tls.Config, pool *x509.CertPool, limits connLimits, log *slog.Logger) *handshakeListener {
	ctx, cancel := context.WithCancel(context.Background())
	l := &handshakeListener{inner: inner, cfg: cfg, pool: pool, log: log,
		limiter: newConnLimiter(limits), refusals: ratelog.New(rpcRefusalLogInterval, rpcRefusalRemotes, refusal{}),
		ready: make(chan net.Conn), ctx: ctx, cancel: cancel}
	l.wg.Add(2)
	go l.acceptLoop()
	go func() {
		defer l.wg.Done()
		l.refusals.Run(l.ctx, l.logRefusals)
	}()
	return l
}

// refusal is what refused connections are counted under: the remote
// (remoteKey) and the reason.
type refusal struct {
	remote netip.Prefix
	reason string
}

// refuse counts a refused connection and logs it if a line is due.
func (l *handshakeListener) refuse(remote netip.Prefix, err error) {
	if rep, ok := l.refusals.Note(refusal{remote, err.Error()}, err, time.Now()); ok {
		l.logRefusals(rep)
	}
}

// logRefusals logs rep.N refusals of one remote for one reason: a refused
// certificate, or the listener's limits.
func (l *handshakeListener) logRefusals(rep ratelog.Report[refusal]) {
	var le limitError
	if errors.As(rep.Err, &le) {
		l.log.Warn("rpc: refused connections over the listener's limits (logged at most once a minute per remote)",
			"remote", remoteString(rep.Key.remote), "refused", rep.N, "reason", rep.Err.Error())
		return
	}
	l.log.Warn("rpc: refused a client", "remote", remoteString(rep.Key.remote), "reason", rep.Err.Error(), "refused", rep.N)
}

func (l *handshakeListener) acceptLoop() {
	defer l.wg.Done()
	var backoff time.Duration
	for {
		c, err := l.inner.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("rpc: accept", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-l.ctx.Done():
				return
			}
			continue
		}
		backoff = 0
		remote := remoteKey(c.RemoteAddr())
		slot, err := l.limiter.admit(remote)
		if err != nil {
			c.Close()
			l.counts.Add("limits")
			l.refuse(remote, err)
			continue
		}
		l.wg.Add(1)
		go l.handshake(&limitedConn{Conn: c, slot: slot})
	}
}

// handshake runs the TLS handshake of an admitted connection. The
// *tls.Conn handed on wraps the limitedConn, so that http.Server still
// sees a *tls.Conn (and fills Request.TLS) and closing it gives back the
// connection's slot.
func (l *handshakeListener) handshake(raw *limitedConn) {
	defer l.wg.Done()
	tc := tls.Server(raw, l.cfg)
	ctx, cancel := context.WithTimeout(l.ctx, rpcHandshakeTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		l.refused(raw.RemoteAddr(), err)
		tc.Close()
		return
	}
	raw.slot.handshakeDone()
	select {
	case l.ready <- tc:
	case <-l.ctx.Done():
		tc.Close()
	}
}

// refused logs a failed handshake: a refused certificate as a warning with
// the reason (the first of a remote at once, repeats at most once a minute
// with their count), anything else at info or debug level (debug for a port scan, a
// client that gave up, a connection that sent nothing in time: those are
// what a flood of connections is made of).
func (l *handshakeListener) refused(remote net.Addr, err error) {
	var re refusedError
	var cve *tls.CertificateVerificationError
	reason := ""
	switch {
	case errors.As(err, &re):
		reason = re.err.Error()
		l.counts.Add(certReason(re.err))
	case errors.As(err, &cve):
		// The standard verification failed; say why in the mesh's words.
		raw := make([][]byte, len(cve.UnverifiedCertificates))
		for i, c := range cve.UnverifiedCertificates {
			raw[i] = c.Raw
		}
		verr := error(nil)
		if _, verr = pki.Verify(raw, l.pool, pki.KindClient, time.Now()); verr != nil {
			reason = verr.Error()
		} else {
			reason = cve.Err.Error()
		}
		l.counts.Add(certReason(verr))
	case strings.Contains(err.Error(), "didn't provide a certificate"):
		reason = "no client certificate presented (remote clients need a client certificate of the mesh CA: cortex cert create-client)"
		l.counts.Add("no_certificate")
	case errors.Is(err, io.EOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		l.counts.Add("aborted")
		l.log.Debug("rpc: a connection closed or timed out during the TLS handshake", "remote", remote.String(), "err", err)
		return
	default:
		l.counts.Add("tls")
		l.log.Info("rpc: TLS handshake failed", "remote", remote.String(), "err", err)
		return
	}
	l.refuse(remoteKey(remote), errors.New(reason))
}

// Accept returns the next connection whose handshake succeeded.
func (l *handshakeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.ctx.Done():
		return nil, net.ErrClosed
	}
}

// Close stops accepting and ends the handshakes in flight.
func (l *handshakeListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.cancel()
		err = l.inner.Close()
	})
	return err
}

func (l *handshakeListener) Addr() net.Addr { return l.inner.Addr() }

// wait returns once the accept loop and every handshake have ended (after
// Close).
func (l *handshakeListener) wait() { l.wg.Wait() }
