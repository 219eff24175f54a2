package mesh

import (
	"context"
	"io"
	"time"
)

// Stream is one bidirectional stream with a peer, as a protocol handler
// or Open gets it.
type Stream interface {
	io.ReadWriter
	// Close ends the stream; Reset aborts it (the peer gets an error).
	Close() error
	Reset() error
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// Handler serves a stream that a peer opened. peer is the peer's node name,
// as its (verified) certificate says.
type Handler func(peer string, s Stream)

// Transport is what the layers above (replication, status, repair) need
// of the mesh. Node is the libp2p implementation; memnet has an in-memory
// one whose links a test can cut and heal.
type Transport interface {
	// Name is this node's name.
	Name() string
	// Handle serves protocol with h (call it before any peer connects).
	Handle(protocol string, h Handler)
	// Open opens a stream of protocol to a ready peer.
	Open(ctx context.Context, peer, protocol string) (Stream, error)
	// Ready lists the peers connected and past the hello (clock checked,
	// membership exchanged), sorted.
	Ready() []string
	// Changed returns a channel that is closed when the ready peers
	// change.
	Changed() <-chan struct{}
	// LastContact is when this node was last connected to peer: now if it
	// is, zero if never since this node started.
	LastContact(peer string) time.Time
}
