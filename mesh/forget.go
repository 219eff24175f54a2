package mesh

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// A node the mesh forgot (cortex node forget, store.Forget) is refused in
// the hello, on both sides, when it presents the incarnation it was
// forgotten with (or none): the listener answers with the refusal, and a
// dialer that refuses the listener's answer says so in a hello of its own,
// so that the forgotten node knows either way; any stream it opens is
// refused too. The refused node logs it, shows it (mesh peers, node
// status) and backs off its dials like failed ones. A node of the same
// name with a new incarnation (its data directory wiped) is a new node.

// heard notes the incarnation a peer presented in its hello.
func (n *Node) heard(id peer.ID, incarnation string) {
	n.mu.Lock()
	p := n.peerLocked(id)
	p.heard, p.incarnation = true, incarnation
	n.notifyLocked()
	n.mu.Unlock()
}

// forgottenPeer returns the refusal of a peer presenting incarnation, if
// the mesh forgot it.
func (n *Node) forgottenPeer(name, incarnation string) error {
	if f, ok := n.store.RefusesPeer(name, incarnation); ok {
		return &reasonError{ErrForgotten, f.Message()}
	}
	return nil
}

// refuseForgotten refuses a peer the mesh forgot: counts and logs it,
// tells it (tell: the hello it answered is ours to refuse) and closes it.
func (n *Node) refuseForgotten(id peer.ID, name string, err error, tell bool) {
	n.mu.Lock()
	p := n.peerLocked(id)
	p.refused, p.refusedAt = "forgotten: "+err.Error(), time.Now()
	n.notifyLocked()
	n.mu.Unlock()
	n.refuse(refusal{msg: "mesh: refused a node the mesh forgot", level: slog.LevelWarn, remote: name}, err)
	if tell {
		n.tellRefused(id, err)
	}
	n.closePeer(id, err.Error())
}

// tellRefused sends a peer the refusal of its hello (best effort: the
// peer also learns it when it dials this node).
func (n *Node) tellRefused(id peer.ID, err error) {
	ctx, cancel := context.WithTimeout(n.ctx, 2*time.Second)
	defer cancel()
	s, serr := n.host.NewStream(ctx, id, HelloID)
	if serr != nil {
		return
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(2 * time.Second))
	if n.writeHello(s, err) == nil {
		s.CloseWrite()
		io.Copy(io.Discard, s) // until the peer has read it and closes
	}
}

// refusedAsForgotten records that a peer refused this node because the
// mesh forgot it, says so in the log and closes the peer.
func (n *Node) refusedAsForgotten(id peer.ID, err error) {
	n.mu.Lock()
	p := n.peerLocked(id)
	p.refused, p.refusedAt = "forgotten: "+err.Error(), time.Now()
	n.forgotten = err.Error()
	n.notifyLocked()
	n.mu.Unlock()
	n.refuse(refusal{msg: "mesh: a peer refused this node: the mesh forgot it; its data here is not taken by anyone", level: slog.LevelError,
		remote: n.peerName(id)}, err)
	n.closePeer(id, "it refused this node: "+err.Error())
}

// Forgotten is why a peer last refused this node because the mesh forgot
// it ("" if none did since it started).
func (n *Node) Forgotten() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.forgotten
}

// streamRefusal decides whether a stream from a peer is served: not if the
// mesh forgot the incarnation it presented. A peer of a forgotten name
// whose hello is not read yet (its streams may follow its hello at once)
// is waited for, at most handshakeTimeout.
func (n *Node) streamRefusal(id peer.ID) error {
	name := n.peerName(id)
	if !n.store.WasForgotten(name) {
		return nil
	}
	timeout := time.NewTimer(handshakeTimeout)
	defer timeout.Stop()
	for {
		n.mu.Lock()
		p, wait := n.peers[id], n.changed
		heard := p != nil && p.heard
		var inc string
		if heard {
			inc = p.incarnation
		}
		n.mu.Unlock()
		if heard {
			return n.forgottenPeer(name, inc)
		}
		select {
		case <-n.ctx.Done():
			return n.ctx.Err()
		case <-timeout.C:
			return n.forgottenPeer(name, "")
		case <-wait:
		}
	}
}

// closeForgotten refuses the connected peers that the mesh has forgotten
// since they said hello.
func (n *Node) closeForgotten() {
	type heardPeer struct {
		id        peer.ID
		name, inc string
	}
	var heard []heardPeer
	n.mu.Lock()
	for id, p := range n.peers {
		if p.connected && p.heard {
			heard = append(heard, heardPeer{id, p.name, p.incarnation})
		}
	}
	n.mu.Unlock()
	for _, p := range heard {
		if n.host.Network().Connectedness(p.id) != network.Connected {
			continue
		}
		if err := n.forgottenPeer(p.name, p.inc); err != nil {
			n.log.Warn("mesh: disconnecting a peer the mesh forgot", "peer", p.name)
			n.refuseForgotten(p.id, p.name, err, true)
		}
	}
}
