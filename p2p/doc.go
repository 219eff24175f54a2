// Package p2p owns the mesh: the mesh CA and its certificates, the libp2p
// host whose identity is the node certificate's key, the security transport
// that admits only peers with a node certificate from the mesh CA, peer
// dialing and membership, and (later) the replication stream protocol.
package p2p
