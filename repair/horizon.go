package repair

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// The purge horizon's I/O: the reports of a table's copies come from the
// status protocol; scope.NextHorizon decides; the table's home writes the
// record (docs/lifecycle.md).

// Reports turns the copies' status into the reports NextHorizon takes.
func Reports(copies map[string]CopyStatus) map[string]scope.CopyReport {
	out := make(map[string]scope.CopyReport, len(copies))
	for n, c := range copies {
		if c.LogID == "" {
			continue // a copy that did not open
		}
		r := scope.CopyReport{Node: n, LogID: c.LogID, Floor: c.Floor, Rebuilding: c.Rebuilding, Draining: c.Draining,
			Failed: c.Failed, Acks: map[string]scope.AckReport{}}
		for _, s := range c.Subscribers {
			r.Acks[s.Node] = scope.AckReport{Offset: s.Acked, Bound: s.Bound, Behind: s.Behind, AtMS: s.LastContactMS}
		}
		out[n] = r
	}
	return out
}

// Refresh updates the last report of a copy that does not answer now with
// what the live copies know of its log: a subscriber whose cursor in its
// log (the same log) is at or past the offset it reported has every entry
// it had then, and what it wrote after is at or above its clock then (or
// comes from another copy, whose own bounds count it). So that
// subscriber's bound is the copy's clock at the report.
func Refresh(node string, stale CopyStatus, live map[string]CopyStatus) CopyStatus {
	subs := slices.Clone(stale.Subscribers)
	for i, s := range subs {
		l, ok := live[s.Node]
		if !ok || stale.Clock == 0 {
			continue
		}
		if cur, ok := l.Cursors[node]; ok && cur.LogID == stale.LogID && cur.Offset >= stale.Offset {
			subs[i].Acked, subs[i].Bound, subs[i].Behind = max(s.Acked, cur.Offset), max(s.Bound, stale.Clock), ""
		}
	}
	stale.Subscribers = subs
	return stale
}

// holders are the nodes whose copies a table's horizon must count: the
// nodes its scope selects among the members (a node named in a list scope
// that never joined has no copy; it gets one by rebuilding), but those the
// mesh forgot (cortex node forget), even if a list scope still names them:
// a wiped node that rejoins under the name is not counted until it has
// rebuilt its copy.
func holders(info scope.TableInfo, members, forgotten []string) []string {
	return slices.DeleteFunc(scope.Desired(info, members), func(n string) bool { return slices.Contains(forgotten, n) })
}

// limitFor is the highest horizon a table's grace allows now.
func limitFor(info scope.TableInfo, now time.Time) uint64 {
	return tables.HLC(now.Add(-info.Grace()).UnixMilli(), 0)
}

// purgeStatus is the purge part of a table's status.
func purgeStatus(st *store.Store, info scope.TableInfo, members, forgotten []string, copies map[string]CopyStatus, now time.Time) *PurgeStatus {
	ps := &PurgeStatus{GraceS: info.Grace().Seconds()}
	h, ok := st.Horizon(info.ID)
	if ok {
		ps.Horizon = tables.Timestamp(h.HLC)
		ps.HorizonAt = ps.Horizon.Time()
	}
	next, limitedBy, blocked := scope.NextHorizon(holders(info, members, forgotten), Reports(copies), h, limitFor(info, now))
	ps.Next, ps.LimitedBy, ps.Blocked = tables.Timestamp(next.HLC), limitedBy, blocked
	if next.HLC != 0 {
		ps.NextAt = ps.Next.Time()
	}
	return ps
}

// Horizons moves the purge horizon of every table this node is the home
// of, every period: it asks the holders for their copies, decides with
// scope.NextHorizon and writes the record when the horizon moves and some
// copy holds tombstones. A holder that does not answer is counted with the
// last report it gave (a report stays true while its copy is not lost;
// one that was lost is rebuilt when it sees the horizon). It returns when
// ctx ends.
func Horizons(ctx context.Context, q Querier, st *store.Store, period time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	last := map[string]map[string]CopyStatus{} // table id -> node -> last report
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		horizonRound(ctx, q, st, last, log)
	}
}

func horizonRound(ctx context.Context, q Querier, st *store.Store, last map[string]map[string]CopyStatus, log *slog.Logger) {
	var mine []string
	var infos []scope.TableInfo
	for _, info := range st.HeldInfo() {
		if !info.System() && info.Home == st.Node() {
			mine, infos = append(mine, info.Name), append(infos, info)
		}
	}
	if len(mine) == 0 {
		return
	}
	members := []string{st.Node()}
	if q != nil {
		members = q.Members()
	}
	forgotten := st.ForgottenNodes()
	reports := map[string][]CopyStatus{}
	for _, m := range members {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		var list []CopyStatus
		var err error
		if q == nil || m == st.Node() {
			list = LocalStatus(st, st.Node(), mine)
		} else {
			list, err = q.QueryStatus(qctx, m, mine)
		}
		cancel()
		if err == nil {
			reports[m] = list
		}
	}
	now := time.Now()
	for _, info := range infos {
		cache := last[info.ID]
		if cache == nil {
			cache = map[string]CopyStatus{}
			last[info.ID] = cache
		}
		live := map[string]CopyStatus{}
		for m, list := range reports {
			for _, c := range list {
				if c.Table == info.Name && c.ID == info.ID {
					cache[m], live[m] = c, c
				}
			}
		}
		for m, c := range cache {
			if _, ok := live[m]; !ok {
				cache[m] = Refresh(m, c, live)
			}
		}
		hs := holders(info, members, forgotten)
		for n := range cache {
			if !slices.Contains(hs, n) {
				delete(cache, n)
			}
		}
		tombs := int64(0)
		for _, c := range cache {
			tombs += c.Tombstones
		}
		prev, _ := st.Horizon(info.ID)
		next, _, blocked := scope.NextHorizon(hs, Reports(cache), prev, limitFor(info, now))
		if len(blocked) > 0 || next.HLC == 0 || tombs == 0 {
			continue
		}
		next.Table = info.ID
		if err := st.PutHorizon(ctx, next); err != nil {
			log.Warn("purge horizon", "table", info.Name, "err", err)
			continue
		}
		at, _ := tables.HLCTime(next.HLC)
		log.Info("purge horizon moved", "table", info.Name, "horizon", at.Format(time.RFC3339Nano), "copies", len(next.Copies))
	}
}
