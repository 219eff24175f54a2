package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cortex-mesh/cortex/pki"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// A table's purge horizon is the cortex_meta record horizon/TABLEID
// (scope.Horizon), written by the table's home, or an admin node, and
// applied by every copy: a copy counted in it purges the tombstones below
// it, any other is rebuilt (docs/lifecycle.md).

// horizonKey is the key of a table's horizon record.
func horizonKey(id string) []byte { return []byte("horizon/" + id) }

// decodeHorizon parses and validates a horizon record's value.
func decodeHorizon(b []byte) (scope.Horizon, error) {
	var h scope.Horizon
	if err := json.Unmarshal(b, &h); err != nil {
		return h, fmt.Errorf("%w: horizon record: %v", tables.ErrInvalid, err)
	}
	return h, h.Validate()
}

// authorizeHorizon: a horizon is written (or removed) by the table's home
// or an admin node, as the node it says computed it.
func authorizeHorizon(id string, e *wal.Entry, put bool, s pki.Signer) error {
	home, ok := scope.HomeOf(id)
	if !ok {
		return fmt.Errorf("%w: horizon key %q: malformed table id", tables.ErrInvalid, e.Key)
	}
	if put {
		h, err := decodeHorizon(e.Value)
		if err != nil {
			return err
		}
		if h.Table != id {
			return fmt.Errorf("%w: horizon record %q is of table %s", tables.ErrInvalid, e.Key, h.Table)
		}
		if h.By != s.Name {
			return fmt.Errorf("%w: horizon record %q says it was computed by %s, signed by %s", ErrDenied, e.Key, h.By, s.Name)
		}
	}
	if s.Role == pki.RoleAdmin || home != "" && s.Name == home {
		return nil
	}
	return fmt.Errorf("%w: %s is a member node: the purge horizon of table %s is written by its home node (%s) or an admin node", ErrDenied, s.Name, id, home)
}

// Horizon returns the horizon record of a table (by id), if any.
func (s *Store) Horizon(id string) (scope.Horizon, bool) {
	r, err := s.meta.Get(horizonKey(id))
	if err != nil {
		return scope.Horizon{}, false
	}
	h, err := decodeHorizon(r.Value)
	if err != nil || h.Table != id {
		return scope.Horizon{}, false
	}
	return h, true
}

// PutHorizon records a table's new horizon (this node must be its home or
// an admin) and applies it to this node's copy.
func (s *Store) PutHorizon(ctx context.Context, h scope.Horizon) error {
	h.By = s.opts.Node
	if old, ok := s.Horizon(h.Table); ok && old.HLC >= h.HLC {
		return fmt.Errorf("%w: the horizon of table %s is at %d already", tables.ErrInvalid, h.Table, old.HLC)
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	if err := s.putSystem(ctx, s.meta, scope.MetaTable, horizonKey(h.Table), b); err != nil {
		return err
	}
	return s.Reconcile()
}

// checkHorizonClaims hands the copy what the horizon says its peers
// acknowledged of its log (tables.Table.CheckClaim): a copy restored from
// older files learns it at start from its own catalog, or as soon as a
// newer horizon arrives from a peer.
func (s *Store) checkHorizonClaims(t *tables.Table, h scope.Horizon) {
	for _, cc := range h.Copies {
		if cc.Node != s.opts.Node {
			continue
		}
		for _, peer := range slices.Sorted(maps.Keys(cc.Acks)) {
			c := tables.LogClaim{Peer: peer, LogID: cc.LogID, Offset: cc.Acks[peer], Source: "purge horizon"}
			if _, err := t.CheckClaim(c); err != nil {
				s.log.Error("giving the log a new id", "table", t.Name(), "err", err)
			}
		}
	}
}

// applyHorizons brings every copy this node holds to its table's horizon:
// a copy counted in it and still in sync purges, any other rebuilds
// (scope.FloorAction). Reconcile calls it.
func (s *Store) applyHorizons() error {
	var errs []error
	for _, info := range s.HeldInfo() {
		if info.System() {
			continue
		}
		h, ok := s.Horizon(info.ID)
		if !ok {
			continue
		}
		t, ok := s.Copy(info)
		if !ok {
			continue
		}
		s.checkHorizonClaims(t, h)
		step, why := scope.FloorAction(h, s.opts.Node, t.Floor(), t.Rebuilding(), t.Cursors())
		if step == scope.FloorKeep {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		at, _ := tables.HLCTime(h.HLC)
		var n int
		var err error
		if step == scope.FloorPurge {
			n, err = t.Purge(ctx, h.HLC)
			if err == nil {
				s.log.Info("purged tombstones below the table's horizon", "table", info.Name, "horizon", at.Format(time.RFC3339Nano), "purged", n)
			}
		} else {
			n, err = t.Rebuild(ctx, h.HLC)
			if err == nil {
				s.log.Warn("rebuilding the copy from a copy at the table's horizon", "table", info.Name, "horizon", at.Format(time.RFC3339Nano), "why", why, "dropped", n)
			}
		}
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("table %s: applying the purge horizon: %w", info.Name, err))
		}
	}
	return errors.Join(errs...)
}
