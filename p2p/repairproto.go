package p2p

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// RepairID is the protocol `cortex sync repair` uses between a coordinating
// node (one that holds the table) and the other holders, narrowing down
// what differs before anything moves: bucket digests, then leaf digests of
// the differing buckets, then key hashes of the differing leaves, then the
// records of the differing keys, merged by last-write-wins ("apply"). Both
// ends must be in the table's scope: data never leaves it.
const RepairID = "/cortex/repair/1"

// repairRequest is the first frame of a repair stream. A fetch sends the key
// hashes it wants after it, once the request is admitted, as frames of
// 8-byte hashes ended by an empty frame.
type repairRequest struct {
	Version int    `json:"v"`
	Op      string `json:"op"` // buckets, leaves, hashes, fetch or apply
	Table   string `json:"table"`
	TableID string `json:"table_id"`
	Buckets []int  `json:"buckets,omitempty"` // leaves: of these buckets
	Leaves  []int  `json:"leaves,omitempty"`  // hashes: of these leaves
}

// Limits of what a repair peer sends before and after it is admitted.
const (
	// maxRepairRequest bounds the request frame, read before admission:
	// at most every leaf of every bucket (65,536 numbers).
	maxRepairRequest = 1 << 20
	// maxFetchKeys bounds the key hashes of one fetch.
	maxFetchKeys = 1 << 24
)

// check validates a request's fields.
func (r repairRequest) check() error {
	if r.Version != replVersion {
		return fmt.Errorf("repair protocol version %d: this node speaks %d", r.Version, replVersion)
	}
	if len(r.Buckets) > tables.Buckets || len(r.Leaves) > tables.Buckets*256 {
		return errors.New("repair request: too many buckets or leaves")
	}
	for _, b := range r.Buckets {
		if b < 0 || b >= tables.Buckets {
			return fmt.Errorf("repair request: bucket %d", b)
		}
	}
	for _, l := range r.Leaves {
		if l < 0 || l >= tables.Buckets*256 {
			return fmt.Errorf("repair request: leaf %d", l)
		}
	}
	return nil
}

// BucketDigests is a copy's digest per bucket and its log offset.
type BucketDigests struct {
	Offset  uint64                 `json:"offset"`
	Keys    int64                  `json:"keys"`
	Buckets [tables.Buckets]uint64 `json:"buckets"`
}

func (n *Node) handleRepair(s network.Stream) {
	defer s.Close()
	peerName := n.peerName(s.Conn().RemotePeer())
	s.SetDeadline(time.Now().Add(handshakeTimeout))
	b, err := ReadFrame(s, maxRepairRequest)
	if err != nil {
		s.Reset()
		return
	}
	s.SetDeadline(time.Now().Add(5 * time.Minute))
	var req repairRequest
	if err = json.Unmarshal(b, &req); err == nil {
		err = req.check()
	}
	var t *tables.Table
	if err == nil {
		t, err = n.admit(peerName, replRequest{Version: replVersion, Table: req.Table, TableID: req.TableID})
	}
	if err == nil {
		err = n.serveRepair(s, t, req)
	}
	if err != nil {
		n.log.Warn("repair: refused or failed", "peer", peerName, "table", req.Table, "op", req.Op, "err", err)
		n.send(s, &replFrame{Type: frameError, Message: err.Error()})
	}
}

func (n *Node) serveRepair(s network.Stream, t *tables.Table, req repairRequest) error {
	switch req.Op {
	case "buckets":
		st := t.Stats()
		return WriteFrame(s, mustJSON(BucketDigests{Offset: st.Applied, Keys: st.Keys, Buckets: st.Buckets}))
	case "leaves":
		leaves, err := t.LeafDigests(req.Buckets)
		if err != nil {
			return err
		}
		return WriteFrame(s, mustJSON(leaves))
	case "hashes":
		hashes, err := t.LeafHashes(req.Leaves)
		if err != nil {
			return err
		}
		return sendHashes(s, hashes)
	case "fetch":
		keys, err := readKeyHashes(s)
		if err != nil {
			return err
		}
		recs, err := t.RecordsByKeyHash(keys)
		if err != nil {
			return err
		}
		return n.sendRecords(s, recs)
	case "apply":
		adopted, err := n.receiveRecords(s, t)
		if err != nil {
			return err
		}
		if adopted > 0 && t.Name() == scope.MetaTable {
			if err := n.store.Reconcile(); err != nil { // the catalog or the revocation list changed
				n.log.Error("repair: applying the catalog", "err", err)
			}
		}
		return n.send(s, &replFrame{Type: frameAck, Offset: uint64(adopted)})
	}
	return fmt.Errorf("unknown repair op %q", req.Op)
}

// sendRecords sends records as snapshot frames, then the end frame.
func (n *Node) sendRecords(s network.Stream, recs []tables.Record) error {
	for len(recs) > 0 {
		var entries []wal.Entry
		size := 0
		for len(recs) > 0 && len(entries) < maxBatchCount && size < maxBatchBytes {
			entries = append(entries, recs[0].Entry())
			size += len(recs[0].Key) + len(recs[0].Value)
			recs = recs[1:]
		}
		if err := n.send(s, &replFrame{Type: frameSnapRecs, Entries: entries}); err != nil {
			return err
		}
	}
	return n.send(s, &replFrame{Type: frameSnapEnd})
}

// receiveRecords applies record frames until the end frame and returns how
// many entries were adopted.
func (n *Node) receiveRecords(s network.Stream, t *tables.Table) (int, error) {
	adopted := 0
	for {
		b, err := ReadFrame(s, maxReplFrame)
		if err != nil {
			return adopted, err
		}
		f, err := decodeFrame(b)
		if err != nil {
			return adopted, err
		}
		switch f.Type {
		case frameSnapEnd:
			return adopted, nil
		case frameError:
			return adopted, errors.New(f.Message)
		case frameSnapRecs:
			k, err := t.Apply(n.ctx, f.Entries)
			adopted += k
			if !tables.OnlyRefused(err) {
				return adopted, err
			}
		default:
			return adopted, fmt.Errorf("unexpected frame %q", f.Type)
		}
	}
}

func (n *Node) repairStream(ctx context.Context, node string, req repairRequest) (network.Stream, error) {
	id, ok := n.peerByName(node)
	if !ok {
		return nil, fmt.Errorf("%s is not connected", node)
	}
	s, err := n.host.NewStream(ctx, id, RepairID)
	if err != nil {
		return nil, err
	}
	req.Version = replVersion
	if err := WriteFrame(s, mustJSON(req)); err != nil {
		s.Reset()
		return nil, err
	}
	return s, nil
}

// RemoteBuckets asks a node for its bucket digests of a table.
func (n *Node) RemoteBuckets(ctx context.Context, node string, info scope.TableInfo) (BucketDigests, error) {
	var bd BucketDigests
	return bd, n.repairCall(ctx, node, repairRequest{Op: "buckets", Table: info.Name, TableID: info.ID}, &bd)
}

// RemoteLeaves asks a node for the leaf digests of some buckets.
func (n *Node) RemoteLeaves(ctx context.Context, node string, info scope.TableInfo, buckets []int) (map[int]*[256]uint64, error) {
	var out map[int]*[256]uint64
	return out, n.repairCall(ctx, node, repairRequest{Op: "leaves", Table: info.Name, TableID: info.ID, Buckets: buckets}, &out)
}

// RemoteHashes asks a node for the key and record hashes of some leaves.
func (n *Node) RemoteHashes(ctx context.Context, node string, info scope.TableInfo, leaves []int) ([]tables.KeyHash, error) {
	s, err := n.repairStream(ctx, node, repairRequest{Op: "hashes", Table: info.Name, TableID: info.ID, Leaves: leaves})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []tables.KeyHash
	for {
		b, err := ReadFrame(s, maxReplFrame)
		if err != nil {
			return nil, err
		}
		if len(b) > 0 && b[0] == frameError {
			return nil, fmt.Errorf("%s: %s", node, clip(string(b[1:])))
		}
		if len(b) == 0 {
			return out, nil
		}
		hs, err := decodeHashes(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		out = append(out, hs...)
	}
}

// Key hashes travel as frames of 16-byte pairs (key hash, record hash, big
// endian) of at most hashesPerFrame pairs, ended by an empty frame.
const hashesPerFrame = 1 << 16

func sendHashes(s network.Stream, hs []tables.KeyHash) error {
	for len(hs) > 0 {
		n := min(len(hs), hashesPerFrame)
		b := make([]byte, 0, 16*n)
		for _, h := range hs[:n] {
			b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, h.Key), h.Hash)
		}
		if err := WriteFrame(s, b); err != nil {
			return err
		}
		hs = hs[n:]
	}
	return WriteFrame(s, nil)
}

// Key hashes of a fetch travel the same way, 8 bytes each.
func sendKeyHashes(s network.Stream, keys []uint64) error {
	for len(keys) > 0 {
		n := min(len(keys), hashesPerFrame)
		b := make([]byte, 0, 8*n)
		for _, k := range keys[:n] {
			b = binary.BigEndian.AppendUint64(b, k)
		}
		if err := WriteFrame(s, b); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return WriteFrame(s, nil)
}

func readKeyHashes(s network.Stream) ([]uint64, error) {
	var out []uint64
	for {
		b, err := ReadFrame(s, 8*hashesPerFrame)
		if err != nil {
			return nil, err
		}
		if len(b) == 0 {
			return out, nil
		}
		if len(b)%8 != 0 || len(out)+len(b)/8 > maxFetchKeys {
			return nil, fmt.Errorf("malformed or too many key hashes (%d bytes)", len(b))
		}
		for i := 0; i < len(b); i += 8 {
			out = append(out, binary.BigEndian.Uint64(b[i:]))
		}
	}
}

func decodeHashes(b []byte) ([]tables.KeyHash, error) {
	if len(b)%16 != 0 || len(b) > 16*hashesPerFrame {
		return nil, fmt.Errorf("malformed key hashes frame of %d bytes", len(b))
	}
	out := make([]tables.KeyHash, len(b)/16)
	for i := range out {
		out[i] = tables.KeyHash{Key: binary.BigEndian.Uint64(b[16*i:]), Hash: binary.BigEndian.Uint64(b[16*i+8:])}
	}
	return out, nil
}

// repairCall runs a repair op answered by one JSON frame.
func (n *Node) repairCall(ctx context.Context, node string, req repairRequest, out any) error {
	s, err := n.repairStream(ctx, node, req)
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := ReadFrame(s, maxReplFrame)
	if err != nil {
		return err
	}
	if len(b) > 0 && b[0] == frameError {
		return fmt.Errorf("%s: %s", node, clip(string(b[1:])))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("malformed %s answer from %s: %w", req.Op, node, err)
	}
	return nil
}

// RemoteFetch returns a node's records of the given key hashes.
func (n *Node) RemoteFetch(ctx context.Context, node string, info scope.TableInfo, keys []uint64) ([]tables.Record, error) {
	s, err := n.repairStream(ctx, node, repairRequest{Op: "fetch", Table: info.Name, TableID: info.ID})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := sendKeyHashes(s, keys); err != nil {
		return nil, err
	}
	var out []tables.Record
	for {
		b, err := ReadFrame(s, maxReplFrame)
		if err != nil {
			return nil, err
		}
		f, err := decodeFrame(b)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case frameSnapEnd:
			return out, nil
		case frameError:
			return nil, fmt.Errorf("%s: %s", node, f.Message)
		case frameSnapRecs:
			for _, e := range f.Entries {
				out = append(out, tables.Record{Key: e.Key, Value: e.Value, Version: e.Version, Deleted: e.Op == wal.OpDelete, Proof: e.Proof})
			}
		default:
			return nil, fmt.Errorf("%s: unexpected frame %q", node, f.Type)
		}
	}
}

// RemoteApply sends records to a node, which merges them by LWW, and
// returns how many it adopted.
func (n *Node) RemoteApply(ctx context.Context, node string, info scope.TableInfo, recs []tables.Record) (int, error) {
	s, err := n.repairStream(ctx, node, repairRequest{Op: "apply", Table: info.Name, TableID: info.ID})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if err := n.sendRecords(s, recs); err != nil {
		return 0, err
	}
	b, err := ReadFrame(s, 64<<10)
	if err != nil {
		return 0, err
	}
	f, err := decodeFrame(b)
	switch {
	case err != nil:
		return 0, err
	case f.Type == frameError:
		return 0, fmt.Errorf("%s: %s", node, f.Message)
	case f.Type != frameAck:
		return 0, fmt.Errorf("%s: unexpected frame %q", node, f.Type)
	}
	return int(f.Offset), nil
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
