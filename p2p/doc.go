// Package p2p owns the mesh: the libp2p host whose identity is the node
// certificate's key, the security transport that admits only peers with a
// node certificate from the mesh CA (package pki), peer dialing and
// membership, and the replication, status and repair stream protocols.
package p2p
