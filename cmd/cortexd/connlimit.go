package main

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Caps of the RPC listener. Anyone who can reach the port can open TCP
// connections, certificate or not, and each one holds a file descriptor
// (and, during its handshake, a goroutine) until it is closed. A connection
// over a cap is closed as soon as it is accepted, before any TLS work.
//
//   - Handshakes are what an outsider can hold without a certificate, for up
//     to rpcHandshakeTimeout each. A legitimate TLS 1.3 handshake takes one
//     round trip and a few milliseconds of CPU, so 64 at once absorb bursts of
//     hundreds of new clients a second; a client opens one connection at a
//     time, so 8 per address leave room for several clients behind one NAT,
//     and it takes 8 addresses to fill the total.
//   - Connections (in their handshake or established) bound the descriptors
//     the listener can hold at all: 512 leaves most of a typical limit
//     (RLIMIT_NOFILE, which Go raises to the hard limit) to the tables and
//     the mesh. Only clients with a certificate of the mesh CA get past the
//     handshake; 64 per address allow a busy application server's pool of
//     keep-alive connections, and keep any one address to an eighth of the
//     total.
const (
	rpcMaxHandshakes      = 64
	rpcMaxHandshakesPerIP = 8
	rpcMaxConns           = 512
	rpcMaxConnsPerIP      = 64
)

// Refused connections are logged at most once per remote and reason per
// rpcRefusalLogInterval, with how many there were: a flood, or a client
// retrying with a certificate of another mesh, must not turn into a flood
// of log lines. At most rpcRefusalRemotes remotes and reasons are tracked
// for that; refusals of any others are logged together.
const (
	rpcRefusalLogInterval = time.Minute
	rpcRefusalRemotes     = 1024
)

var rpcLimits = connLimits{
	handshakes:      rpcMaxHandshakes,
	handshakesPerIP: rpcMaxHandshakesPerIP,
	conns:           rpcMaxConns,
	connsPerIP:      rpcMaxConnsPerIP,
}

// connLimits are the caps of a connLimiter. conns counts every connection
// admitted and not yet closed, handshakes those of them still in their
// handshake.
type connLimits struct {
	handshakes, handshakesPerIP int
	conns, connsPerIP           int
}

// limitError says which cap refused a connection.
type limitError struct {
	n    int
	what string
}

func (e limitError) Error() string { return fmt.Sprintf("over the limit of %d %s", e.n, e.what) }

// connCounts are the connections (and handshakes among them) of one remote
// or of all.
type connCounts struct{ handshakes, conns int }

// connLimiter counts a listener's connections, in total and per remote
// (remoteKey), and refuses those over its limits.
type connLimiter struct {
	limits connLimits

	mu       sync.Mutex
	total    connCounts
	perIP    map[netip.Prefix]*connCounts // only remotes with a connection open
	admitted uint64                       // connections admitted since the start
	refused  uint64                       // and refused
}

func newConnLimiter(limits connLimits) *connLimiter {
	return &connLimiter{limits: limits, perIP: map[netip.Prefix]*connCounts{}}
}

// remoteKey is the remote a connection is counted under: its IPv4 address,
// or the /64 of its IPv6 address (what one site usually has to itself).
func remoteKey(addr net.Addr) netip.Prefix {
	var ap netip.AddrPort
	if ta, ok := addr.(*net.TCPAddr); ok {
		ap = ta.AddrPort()
	} else if p, err := netip.ParseAddrPort(addr.String()); err == nil {
		ap = p
	} else {
		return netip.Prefix{} // not an IP address: all such count as one remote
	}
	ip := ap.Addr().Unmap()
	bits := 32
	if ip.Is6() {
		bits = 64
	}
	p, _ := ip.Prefix(bits)
	return p
}

// remoteString is a remote as the log shows it.
func remoteString(p netip.Prefix) string {
	switch {
	case !p.IsValid():
		return "other"
	case p.Addr().Is4():
		return p.Addr().String()
	}
	return p.String()
}

// admit counts a new connection from remote, as a connection and as a
// handshake, or refuses it with the limit it is over.
func (l *connLimiter) admit(remote netip.Prefix) (*connSlot, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ip := l.perIP[remote]
	if ip == nil {
		ip = &connCounts{}
	}
	var err error
	switch lim := l.limits; {
	case l.total.conns >= lim.conns:
		err = limitError{lim.conns, "connections"}
	case ip.conns >= lim.connsPerIP:
		err = limitError{lim.connsPerIP, "connections from one address"}
	case l.total.handshakes >= lim.handshakes:
		err = limitError{lim.handshakes, "TLS handshakes at once"}
	case ip.handshakes >= lim.handshakesPerIP:
		err = limitError{lim.handshakesPerIP, "TLS handshakes at once from one address"}
	}
	if err != nil {
		l.refused++
		return nil, err
	}
	l.admitted++
	l.perIP[remote] = ip
	ip.conns++
	ip.handshakes++
	l.total.conns++
	l.total.handshakes++
	return &connSlot{l: l, remote: remote, handshaking: true, open: true}, nil
}

// stats returns the counts of all connections, of the remotes with a
// connection open, and of the connections admitted and refused so far.
func (l *connLimiter) stats() (total connCounts, remotes int, admitted, refused uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, len(l.perIP), l.admitted, l.refused
}

// counts returns the counts of one remote.
func (l *connLimiter) counts(remote netip.Prefix) connCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ip := l.perIP[remote]; ip != nil {
		return *ip
	}
	return connCounts{}
}

// connSlot is one admitted connection's place in its limiter.
type connSlot struct {
	l                 *connLimiter
	remote            netip.Prefix
	handshaking, open bool // guarded by l.mu
}

// handshakeDone gives back the handshake's place; the connection keeps
// its own until release. Calls after the first do nothing.
func (s *connSlot) handshakeDone() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if !s.handshaking {
		return
	}
	s.handshaking = false
	s.l.total.handshakes--
	s.l.perIP[s.remote].handshakes--
}

// release gives back the connection's place (and its handshake's, if it
// is still in it). Calls after the first do nothing.
func (s *connSlot) release() {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	if !s.open {
		return
	}
	ip := s.l.perIP[s.remote]
	if s.handshaking {
		s.handshaking = false
		s.l.total.handshakes--
		ip.handshakes--
	}
	s.open = false
	s.l.total.conns--
	if ip.conns--; ip.conns == 0 {
		delete(s.l.perIP, s.remote)
	}
}

// limitedConn is an admitted connection: closing it gives back its slot,
// once however often it is closed.
type limitedConn struct {
	net.Conn
	slot *connSlot
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close() // first: the count never drops below the descriptors held
	c.slot.release()
	return err
}
