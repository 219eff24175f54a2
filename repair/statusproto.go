package repair

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// CopyStatus is one node's copy of a table, at one instant.
type CopyStatus struct {
	Table       string                   `json:"table"`
	ID          string                   `json:"id"`
	LogID       string                   `json:"log_id"`
	FirstOffset uint64                   `json:"first_offset"`
	Offset      uint64                   `json:"offset"` // last log offset the copy reflects
	Keys        int64                    `json:"keys"`
	Tombstones  int64                    `json:"tombstones"`
	Digest      string                   `json:"digest"`
	Draining    bool                     `json:"draining,omitempty"`
	Failed      string                   `json:"failed,omitempty"` // writes refused for now, or the copy did not open
	Damage      string                   `json:"damage,omitempty"` // damage found in its log and what was done
	Subscribers []SubscriberStatus       `json:"subscribers"`
	Cursors     map[string]tables.Cursor `json:"cursors"`
	Floor       uint64                   `json:"floor,omitempty"` // purge floor (HLC)
	Clock       uint64                   `json:"clock,omitempty"` // the node's clock when the bounds were taken
	Rebuilding  bool                     `json:"rebuilding,omitempty"`
}

// SubscriberStatus is how far a subscriber has applied a copy's log.
type SubscriberStatus struct {
	Node          string `json:"node"`
	Acked         uint64 `json:"acked"`
	LastContactMS int64  `json:"last_contact_ms"`
	// Bound: every entry of the log after Acked is at or above this HLC
	// (tables.AckBound); Behind says why there is none.
	Bound  uint64 `json:"bound,omitempty"`
	Behind string `json:"behind,omitempty"`
}

// LocalStatus describes this node's copies (held or being handed off) of
// the named tables, or of all when names is empty, that the asking node
// holds too by this node's catalog: a node learns nothing of a table it is
// not in the scope of.
func LocalStatus(st *store.Store, asker string, names []string) []CopyStatus {
	var out []CopyStatus
	infos := append(st.HeldInfo(), st.Draining()...)
	for _, info := range infos {
		if len(names) > 0 && !slices.Contains(names, info.Name) || !scope.Holds(info, asker) {
			continue
		}
		t, ok := st.Copy(info)
		if !ok {
			continue
		}
		s := t.Stats()
		cs := CopyStatus{Table: info.Name, ID: info.ID, LogID: s.LogID, FirstOffset: s.FirstOffset, Offset: s.Applied,
			Keys: s.Keys, Tombstones: s.Tombstones, Digest: strconv.FormatUint(s.Digest, 16), Draining: !st.Holds(info),
			Cursors: t.Cursors(), Subscribers: []SubscriberStatus{}, Failed: s.Failed, Damage: s.Damage}
		cs.Floor, cs.Rebuilding = s.Floor, s.Rebuilding
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		now, bounds, err := t.AckBounds(ctx)
		cs.Clock = now
		cancel()
		if err != nil {
			for node, a := range t.Subscribers() {
				cs.Subscribers = append(cs.Subscribers, SubscriberStatus{Node: node, Acked: a.Offset, LastContactMS: a.At.UnixMilli(), Behind: "no bound: " + err.Error()})
			}
		}
		for _, b := range bounds {
			cs.Subscribers = append(cs.Subscribers, SubscriberStatus{Node: b.Subscriber, Acked: b.Offset, LastContactMS: b.At.UnixMilli(), Bound: b.Bound, Behind: b.Behind})
		}
		slices.SortFunc(cs.Subscribers, func(a, b SubscriberStatus) int { return cmpString(a.Node, b.Node) })
		out = append(out, cs)
	}
	for _, b := range st.Broken() {
		if (len(names) == 0 || slices.Contains(names, b.Info.Name)) && scope.Holds(b.Info, asker) {
			out = append(out, CopyStatus{Table: b.Info.Name, ID: b.Info.ID, Failed: "the copy did not open: " + b.Err.Error(),
				Subscribers: []SubscriberStatus{}, Cursors: map[string]tables.Cursor{}})
		}
	}
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

type statusRequest struct {
	Tables []string `json:"tables"`
}

// serveStatus answers a peer with the status of this node's copies it may
// know of.
func (p *Peers) serveStatus(peer string, s mesh.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(requestTimeout))
	b, err := mesh.ReadFrame(s, 64<<10)
	if err != nil {
		s.Reset()
		return
	}
	var req statusRequest
	if err := json.Unmarshal(b, &req); err != nil || len(req.Tables) > 10_000 {
		p.log.Warn("status: malformed request", "peer", peer, "err", err)
		s.Reset()
		return
	}
	b, _ = json.Marshal(LocalStatus(p.store, peer, req.Tables))
	mesh.WriteFrame(s, b)
}

// QueryStatus asks a node for the status of its copies. It fails at once
// for a node that is not connected.
func (p *Peers) QueryStatus(ctx context.Context, node string, names []string) ([]CopyStatus, error) {
	if node == p.store.Node() {
		return LocalStatus(p.store, node, names), nil
	}
	s, err := p.mesh.Open(ctx, node, StatusID)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	b, _ := json.Marshal(statusRequest{Tables: names})
	if err := mesh.WriteFrame(s, b); err != nil {
		return nil, err
	}
	b, err = mesh.ReadFrame(s, maxStatusFrame)
	if err != nil {
		return nil, err
	}
	var out []CopyStatus
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("malformed status from %s: %w", node, err)
	}
	return out, nil
}

// LastContact is when this node was last connected to node.
func (p *Peers) LastContact(node string) time.Time { return p.mesh.LastContact(node) }

// Members lists the nodes with a membership record or connected now, this
// one included, sorted.
func (p *Peers) Members() []string {
	out := append(p.store.Members(), p.mesh.Ready()...)
	slices.Sort(out)
	return slices.Compact(out)
}
