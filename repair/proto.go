package repair

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
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
	if r.Version != protoVersion {
		return fmt.Errorf("repair protocol version %d: this node speaks %d", r.Version, protoVersion)
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

func (p *Peers) serveRepair(peerName string, s mesh.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(requestTimeout))
	b, err := mesh.ReadFrame(s, maxRepairRequest)
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
		t, err = p.store.CopyFor(peerName, req.Table, req.TableID)
	}
	if err == nil {
		err = p.serveOp(s, t, req)
	}
	if err != nil {
		p.log.Warn("repair: refused or failed", "peer", peerName, "table", req.Table, "op", req.Op, "err", err)
		send(s, &frame{Type: frameError, Message: err.Error()})
	}
}

func (p *Peers) serveOp(s mesh.Stream, t *tables.Table, req repairRequest) error {
	switch req.Op {
	case "buckets":
		st := t.Stats()
		return writeJSON(s, BucketDigests{Offset: st.Applied, Keys: st.Keys, Buckets: st.Buckets})
	case "leaves":
		leaves, err := t.LeafDigests(req.Buckets)
		if err != nil {
			return err
		}
		return writeJSON(s, leaves)
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
		return sendRecords(s, recs)
	case "apply":
		adopted, err := p.receiveRecords(s, t)
		if err != nil {
			return err
		}
		if adopted > 0 && t.Name() == scope.MetaTable {
			if err := p.store.Reconcile(); err != nil { // the catalog or the revocation list changed
				p.log.Error("repair: applying the catalog", "err", err)
			}
		}
		return send(s, &frame{Type: frameCount, N: uint64(adopted)})
	}
	return fmt.Errorf("unknown repair op %q", req.Op)
}

// receiveRecords applies record frames until the end frame and returns how
// many entries were adopted.
func (p *Peers) receiveRecords(s mesh.Stream, t *tables.Table) (int, error) {
	adopted := 0
	for {
		b, err := mesh.ReadFrame(s, maxFrame)
		if err != nil {
			return adopted, err
		}
		f, err := decodeFrame(b)
		if err != nil {
			return adopted, err
		}
		switch f.Type {
		case frameEnd:
			return adopted, nil
		case frameError:
			return adopted, errors.New(f.Message)
		case frameRecs:
			k, err := t.Apply(context.Background(), f.Entries)
			adopted += k
			if !tables.OnlyRefused(err) {
				return adopted, err
			}
		default:
			return adopted, fmt.Errorf("unexpected frame %q", f.Type)
		}
	}
}

func (p *Peers) repairStream(ctx context.Context, node string, req repairRequest) (mesh.Stream, error) {
	s, err := p.mesh.Open(ctx, node, RepairID)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	req.Version = protoVersion
	if err := writeJSON(s, req); err != nil {
		s.Reset()
		return nil, err
	}
	return s, nil
}

// RemoteBuckets asks a node for its bucket digests of a table.
func (p *Peers) RemoteBuckets(ctx context.Context, node string, info scope.TableInfo) (BucketDigests, error) {
	var bd BucketDigests
	return bd, p.repairCall(ctx, node, repairRequest{Op: "buckets", Table: info.Name, TableID: info.ID}, &bd)
}

// RemoteLeaves asks a node for the leaf digests of some buckets.
func (p *Peers) RemoteLeaves(ctx context.Context, node string, info scope.TableInfo, buckets []int) (map[int]*[256]uint64, error) {
	var out map[int]*[256]uint64
	return out, p.repairCall(ctx, node, repairRequest{Op: "leaves", Table: info.Name, TableID: info.ID, Buckets: buckets}, &out)
}

// RemoteHashes asks a node for the key and record hashes of some leaves.
func (p *Peers) RemoteHashes(ctx context.Context, node string, info scope.TableInfo, leaves []int) ([]tables.KeyHash, error) {
	s, err := p.repairStream(ctx, node, repairRequest{Op: "hashes", Table: info.Name, TableID: info.ID, Leaves: leaves})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var out []tables.KeyHash
	for {
		b, err := mesh.ReadFrame(s, maxFrame)
		if err != nil {
			return nil, err
		}
		switch {
		case len(b) > 0 && b[0] == frameError:
			return nil, fmt.Errorf("%s: %s", node, mesh.Clip(string(b[1:])))
		case len(b) == 1 && b[0] == frameEnd:
			return out, nil
		}
		hs, err := decodeHashes(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", node, err)
		}
		out = append(out, hs...)
	}
}

// Key hashes travel as frames of 'H' and 16-byte pairs (key hash, record
// hash, big endian), at most hashesPerFrame pairs each, ended by 'Z'.
const (
	frameHashes    = 'H'
	hashesPerFrame = 1 << 16
)

func sendHashes(s mesh.Stream, hs []tables.KeyHash) error {
	for len(hs) > 0 {
		n := min(len(hs), hashesPerFrame)
		b := append(make([]byte, 0, 1+16*n), frameHashes)
		for _, h := range hs[:n] {
			b = binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(b, h.Key), h.Hash)
		}
		if err := mesh.WriteFrame(s, b); err != nil {
			return err
		}
		hs = hs[n:]
	}
	return mesh.WriteFrame(s, []byte{frameEnd})
}

// Key hashes of a fetch travel the same way, 8 bytes each.
func sendKeyHashes(s mesh.Stream, keys []uint64) error {
	for len(keys) > 0 {
		n := min(len(keys), hashesPerFrame)
		b := make([]byte, 0, 8*n)
		for _, k := range keys[:n] {
			b = binary.BigEndian.AppendUint64(b, k)
		}
		if err := mesh.WriteFrame(s, b); err != nil {
			return err
		}
		keys = keys[n:]
	}
	return mesh.WriteFrame(s, nil)
}

func readKeyHashes(s mesh.Stream) ([]uint64, error) {
	var out []uint64
	for {
		b, err := mesh.ReadFrame(s, 8*hashesPerFrame)
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
	if len(b) == 0 || b[0] != frameHashes || (len(b)-1)%16 != 0 || len(b)-1 > 16*hashesPerFrame {
		return nil, fmt.Errorf("malformed key hashes frame of %d bytes", len(b))
	}
	b = b[1:]
	out := make([]tables.KeyHash, len(b)/16)
	for i := range out {
		out[i] = tables.KeyHash{Key: binary.BigEndian.Uint64(b[16*i:]), Hash: binary.BigEndian.Uint64(b[16*i+8:])}
	}
	return out, nil
}

// repairCall runs a repair op answered by one JSON frame.
func (p *Peers) repairCall(ctx context.Context, node string, req repairRequest, out any) error {
	s, err := p.repairStream(ctx, node, req)
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := mesh.ReadFrame(s, maxFrame)
	if err != nil {
		return err
	}
	if len(b) > 0 && b[0] == frameError {
		return fmt.Errorf("%s: %s", node, mesh.Clip(string(b[1:])))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("malformed %s answer from %s: %w", req.Op, node, err)
	}
	return nil
}

// RemoteFetch returns a node's records of the given key hashes.
func (p *Peers) RemoteFetch(ctx context.Context, node string, info scope.TableInfo, keys []uint64) ([]tables.Record, error) {
	s, err := p.repairStream(ctx, node, repairRequest{Op: "fetch", Table: info.Name, TableID: info.ID})
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := sendKeyHashes(s, keys); err != nil {
		return nil, err
	}
	var out []tables.Record
	for {
		b, err := mesh.ReadFrame(s, maxFrame)
		if err != nil {
			return nil, err
		}
		f, err := decodeFrame(b)
		if err != nil {
			return nil, err
		}
		switch f.Type {
		case frameEnd:
			return out, nil
		case frameError:
			return nil, fmt.Errorf("%s: %s", node, f.Message)
		case frameRecs:
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
func (p *Peers) RemoteApply(ctx context.Context, node string, info scope.TableInfo, recs []tables.Record) (int, error) {
	s, err := p.repairStream(ctx, node, repairRequest{Op: "apply", Table: info.Name, TableID: info.ID})
	if err != nil {
		return 0, err
	}
	defer s.Close()
	if err := sendRecords(s, recs); err != nil {
		return 0, err
	}
	b, err := mesh.ReadFrame(s, 64<<10)
	if err != nil {
		return 0, err
	}
	f, err := decodeFrame(b)
	switch {
	case err != nil:
		return 0, err
	case f.Type == frameError:
		return 0, fmt.Errorf("%s: %s", node, f.Message)
	case f.Type != frameCount:
		return 0, fmt.Errorf("%s: unexpected frame %q", node, f.Type)
	}
	return int(f.N), nil
}
