package mesh

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/wal"
	"github.com/libp2p/go-libp2p/core/peer"
)

// peerNamed returns n's status of the peer of that name.
func (n testNode) peerNamed(name string) (PeerStatus, bool) {
	for _, p := range n.Peers() {
		if p.Node == name && !p.Seed {
			return p, true
		}
	}
	return PeerStatus{}, false
}

// A node the mesh forgot is refused on both sides when it comes back with
// its old data directory, whichever side dials, and its streams are
// refused; the same name with a new incarnation joins.
func TestForgottenNodeRefused(t *testing.T) {
	ctx := context.Background()
	m := newTestMesh(t)
	oldInc, newInc := store.NewIncarnation(), store.NewIncarnation()
	a := m.startWith(nodeOpts{name: "a", admin: true, incarnation: store.NewIncarnation()})
	cDir := t.TempDir()
	c := m.startWith(nodeOpts{name: "c", dir: cDir, incarnation: oldInc, peers: []string{a.addr()}})
	waitFor(t, "a and c connected", func() bool { return slices.Contains(a.connectedTo(), "c") && slices.Contains(c.connectedTo(), "a") })
	if mem, ok := a.st.Member("c"); !ok || mem.Incarnation != oldInc {
		t.Fatalf("a has c's record %+v (%v), want incarnation %s", mem, ok, oldInc)
	}
	if _, err := a.st.Forget(ctx, "c", a.Ready(), false); err == nil {
		t.Fatal("a forgot c while connected to it")
	}
	c.stop()
	waitFor(t, "a sees c gone", func() bool { return !slices.Contains(a.Ready(), "c") })
	if _, err := a.st.Forget(ctx, "c", a.Ready(), false); err != nil {
		t.Fatal(err)
	}
	if p, ok := a.peerNamed("c"); !ok || !p.Forgotten {
		t.Fatalf("a's mesh peers do not show c forgotten: %+v", p)
	}

	// Old c dials a: a refuses it in its answer.
	c = m.startWith(nodeOpts{name: "c", dir: cDir, incarnation: oldInc, peers: []string{a.addr()}})
	waitFor(t, "c told it was forgotten", func() bool { return strings.Contains(c.Forgotten(), "node c was forgotten by the mesh at") })
	if !strings.Contains(c.Forgotten(), "wipe its data directory and start it again to rejoin") {
		t.Fatal(c.Forgotten())
	}
	waitFor(t, "the refusals counted", func() bool { return a.Refusals()["forgotten"] > 0 && c.Refusals()["forgotten"] > 0 })
	waitFor(t, "c's mesh peers say a refused it", func() bool {
		p, ok := c.peerNamed("a")
		return ok && !p.Connected && strings.HasPrefix(p.Refused, "forgotten: node c was forgotten")
	})
	if slices.Contains(a.Ready(), "c") || slices.Contains(a.st.Members(), "c") {
		t.Fatalf("a takes c back: ready %v, members %v", a.Ready(), a.st.Members())
	}

	// A node that learned of the forget dials old c (a seed): it refuses
	// c's answer and tells c.
	forgot, err := a.st.Forgotten()
	if err != nil || len(forgot) != 1 {
		t.Fatalf("forgot records %+v %v", forgot, err)
	}
	aMeta, _ := a.st.Table(scope.MetaTable)
	recs, _, err := aMeta.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	before := c.Refusals()["forgotten"]
	x := m.startWith(nodeOpts{name: "x", incarnation: store.NewIncarnation(), peers: []string{c.addr()}, before: func(st *store.Store) {
		meta, _ := st.Table(scope.MetaTable)
		var entries []wal.Entry
		for _, r := range recs {
			entries = append(entries, r.Entry())
		}
		if _, err := meta.Apply(ctx, entries); err != nil {
			t.Fatal(err)
		}
	}})
	waitFor(t, "x refuses c and c hears of it", func() bool {
		return x.Refusals()["forgotten"] > 0 && c.Refusals()["forgotten"] > before
	})
	if p, ok := x.peerNamed("c"); !ok || !strings.HasPrefix(p.Refused, "forgotten: ") || slices.Contains(x.Ready(), "c") {
		t.Fatalf("x's view of c: %+v, ready %v", p, x.Ready())
	}
	c.stop()
	x.stop()

	// c wiped (a new data directory, a new incarnation): it joins.
	c = m.startWith(nodeOpts{name: "c", incarnation: newInc, peers: []string{a.addr()}})
	waitFor(t, "the new c connected", func() bool { return slices.Contains(a.connectedTo(), "c") && slices.Contains(c.connectedTo(), "a") })
	if mem, ok := a.st.Member("c"); !ok || mem.Incarnation != newInc || a.st.IsForgotten("c") {
		t.Fatalf("a's record of the new c: %+v %v", mem, ok)
	}
	if c.Forgotten() != "" {
		t.Fatalf("the new c was refused: %s", c.Forgotten())
	}
}

// A stream from a forgotten incarnation is refused; from a new one it is
// served; from a peer of a forgotten name whose hello is not read yet, it
// waits for the hello.
func TestStreamRefusal(t *testing.T) {
	ctx := context.Background()
	m := newTestMesh(t)
	oldInc := store.NewIncarnation()
	a := m.startWith(nodeOpts{name: "a", admin: true})
	c := m.startWith(nodeOpts{name: "c", incarnation: oldInc, peers: []string{a.addr()}})
	waitFor(t, "a and c connected", func() bool { return slices.Contains(a.connectedTo(), "c") })
	var cid peer.ID
	for _, p := range a.Peers() {
		if p.Node == "c" {
			cid, _ = peer.Decode(p.PeerID)
		}
	}
	if err := a.streamRefusal(cid); err != nil {
		t.Fatalf("c before the forget: %v", err)
	}
	c.stop()
	waitFor(t, "a sees c gone", func() bool { return !slices.Contains(a.Ready(), "c") })
	if _, err := a.st.Forget(ctx, "c", nil, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		heard bool
		inc   string
		want  error
	}{
		{"the forgotten incarnation", true, oldInc, ErrForgotten},
		{"no incarnation", true, "", ErrForgotten},
		{"a new incarnation", true, store.NewIncarnation(), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.mu.Lock()
			p := a.peerLocked(cid)
			p.name, p.heard, p.incarnation = "c", tc.heard, tc.inc
			a.mu.Unlock()
			if err := a.streamRefusal(cid); !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("streamRefusal = %v, want %v", err, tc.want)
			}
		})
	}
	// Not heard yet: it waits for the hello.
	a.mu.Lock()
	a.peerLocked(cid).heard = false
	a.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- a.streamRefusal(cid) }()
	a.heard(cid, store.NewIncarnation())
	if err := <-done; err != nil {
		t.Fatalf("after a new incarnation's hello: %v", err)
	}
}
