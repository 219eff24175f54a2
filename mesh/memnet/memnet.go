// Package memnet is an in-memory mesh for tests: nodes that implement
// mesh.Transport over net.Pipe, in one process, with links a test can cut
// and heal (as etcd raft's test network does). A cut link breaks every
// stream on it at once, like a lost connection; nodes see their ready peers
// change. There is no hello and no membership: every node of the network
// that is not cut off is a ready peer.
package memnet

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
)

// Network is a set of nodes and the links between them (every pair is
// linked unless cut).
type Network struct {
	mu      sync.Mutex
	nodes   map[string]*Node
	cut     map[[2]string]time.Time  // links cut, and when
	streams map[[2]string][]net.Conn // open streams by link
	wg      sync.WaitGroup           // handler goroutines
	closed  bool
}

// New returns an empty network.
func New() *Network {
	return &Network{nodes: map[string]*Node{}, cut: map[[2]string]time.Time{}, streams: map[[2]string][]net.Conn{}}
}

func link(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// Node adds (or returns) the node called name.
func (nw *Network) Node(name string) *Node {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if n, ok := nw.nodes[name]; ok {
		return n
	}
	n := &Node{nw: nw, name: name, handlers: map[string]mesh.Handler{}, changed: make(chan struct{})}
	nw.nodes[name] = n
	nw.notifyLocked()
	return n
}

// Cut breaks the link between a and b, and every stream on it.
func (nw *Network) Cut(a, b string) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	l := link(a, b)
	if _, ok := nw.cut[l]; !ok {
		nw.cut[l] = time.Now()
	}
	for _, c := range nw.streams[l] {
		c.Close()
	}
	delete(nw.streams, l)
	nw.notifyLocked()
}

// Heal restores the link between a and b.
func (nw *Network) Heal(a, b string) {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	delete(nw.cut, link(a, b))
	nw.notifyLocked()
}

// Isolate cuts every link of a.
func (nw *Network) Isolate(a string) {
	for _, b := range nw.names() {
		if b != a {
			nw.Cut(a, b)
		}
	}
}

// HealAll restores every link.
func (nw *Network) HealAll() {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	clear(nw.cut)
	nw.notifyLocked()
}

// Close breaks every stream and waits for the handlers to return.
func (nw *Network) Close() {
	nw.mu.Lock()
	nw.closed = true
	for l, cs := range nw.streams {
		for _, c := range cs {
			c.Close()
		}
		delete(nw.streams, l)
	}
	nw.notifyLocked()
	nw.mu.Unlock()
	nw.wg.Wait()
}

func (nw *Network) names() []string {
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out []string
	for name := range nw.nodes {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// notifyLocked tells every node that its ready peers may have changed.
func (nw *Network) notifyLocked() {
	for _, n := range nw.nodes {
		close(n.changed)
		n.changed = make(chan struct{})
	}
}

// Node is one node of a Network: a mesh.Transport.
type Node struct {
	nw       *Network
	name     string
	handlers map[string]mesh.Handler // guarded by nw.mu
	changed  chan struct{}           // guarded by nw.mu
}

var _ mesh.Transport = (*Node)(nil)

// Name is the node's name.
func (n *Node) Name() string { return n.name }

// Handle serves protocol with h.
func (n *Node) Handle(protocol string, h mesh.Handler) {
	n.nw.mu.Lock()
	defer n.nw.mu.Unlock()
	n.handlers[protocol] = h
}

// Open opens a stream of protocol to peer, if the link is up and the peer
// serves protocol.
func (n *Node) Open(ctx context.Context, peer, protocol string) (mesh.Stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	nw := n.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	to, ok := nw.nodes[peer]
	l := link(n.name, peer)
	_, cut := nw.cut[l]
	switch {
	case nw.closed:
		return nil, fmt.Errorf("memnet: closed")
	case !ok || peer == n.name || cut:
		return nil, fmt.Errorf("memnet: %s is not connected to %s", n.name, peer)
	}
	h, ok := to.handlers[protocol]
	if !ok {
		return nil, fmt.Errorf("memnet: %s does not serve %s", peer, protocol)
	}
	mine, theirs := net.Pipe()
	nw.streams[l] = append(nw.streams[l], mine, theirs)
	nw.wg.Add(1)
	go func() {
		defer nw.wg.Done()
		h(n.name, stream{theirs})
		theirs.Close()
		nw.mu.Lock()
		nw.streams[l] = slices.DeleteFunc(nw.streams[l], func(c net.Conn) bool { return c == mine || c == theirs })
		nw.mu.Unlock()
	}()
	return stream{mine}, nil
}

// Ready lists the other nodes whose link to this one is up.
func (n *Node) Ready() []string {
	nw := n.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	var out []string
	for name := range nw.nodes {
		if _, cut := nw.cut[link(n.name, name)]; name != n.name && !cut && !nw.closed {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// LastContact is now if the link to peer is up, when it was cut if it is
// cut, and zero for a node that is not on the network.
func (n *Node) LastContact(peer string) time.Time {
	nw := n.nw
	nw.mu.Lock()
	defer nw.mu.Unlock()
	if _, ok := nw.nodes[peer]; !ok || peer == n.name {
		return time.Time{}
	}
	if at, cut := nw.cut[link(n.name, peer)]; cut {
		return at
	}
	return time.Now()
}

// Changed returns a channel closed when the links or nodes change.
func (n *Node) Changed() <-chan struct{} {
	n.nw.mu.Lock()
	defer n.nw.mu.Unlock()
	return n.changed
}

// stream is one end of a pipe as a mesh.Stream.
type stream struct{ net.Conn }

func (s stream) Reset() error { return s.Close() }
