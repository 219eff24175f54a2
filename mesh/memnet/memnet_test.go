package memnet

import (
	"context"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
)

func TestCutAndHeal(t *testing.T) {
	nw := New()
	defer nw.Close()
	a, b, c := nw.Node("a"), nw.Node("b"), nw.Node("c")
	got := make(chan string, 1)
	b.Handle("/echo", func(peer string, s mesh.Stream) {
		got <- peer
		io.Copy(s, s)
	})
	ctx := context.Background()
	s, err := a.Open(ctx, "b", "/echo")
	if err != nil {
		t.Fatal(err)
	}
	if p := <-got; p != "a" {
		t.Fatalf("the handler saw peer %q", p)
	}
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := s.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2)
	if _, err := io.ReadFull(s, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	changed := a.Changed()
	nw.Cut("a", "b")
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("a was not told of the cut")
	}
	if _, err := s.Read(buf); err == nil {
		t.Fatal("a stream on a cut link still reads")
	}
	if !slices.Equal(a.Ready(), []string{"c"}) || !slices.Equal(b.Ready(), []string{"c"}) {
		t.Fatalf("ready after the cut: a %v, b %v", a.Ready(), b.Ready())
	}
	if _, err := a.Open(ctx, "b", "/echo"); err == nil {
		t.Fatal("opened a stream over a cut link")
	}
	if _, err := a.Open(ctx, "c", "/echo"); err == nil {
		t.Fatal("opened a stream to a node that does not serve the protocol")
	}
	nw.Heal("a", "b")
	if !slices.Equal(a.Ready(), []string{"b", "c"}) {
		t.Fatalf("ready after the heal: %v", a.Ready())
	}
	_ = c
}

// LastContact is now over a link that is up, the time of the cut over a
// cut one, and zero for a node not on the network.
func TestLastContact(t *testing.T) {
	nw := New()
	defer nw.Close()
	a, _ := nw.Node("a"), nw.Node("b")
	before := time.Now()
	if at := a.LastContact("b"); at.Before(before) {
		t.Fatalf("linked: %v, want now", at)
	}
	nw.Cut("a", "b")
	cutAt := a.LastContact("b")
	if cutAt.Before(before) || cutAt.After(time.Now()) {
		t.Fatalf("cut: %v, want the time of the cut", cutAt)
	}
	nw.Cut("a", "b") // a second cut keeps the first one's time
	if at := a.LastContact("b"); !at.Equal(cutAt) {
		t.Fatalf("cut again: %v, want %v", at, cutAt)
	}
	nw.Heal("a", "b")
	if at := a.LastContact("b"); !at.After(cutAt) {
		t.Fatalf("healed: %v, want now", at)
	}
	if at := a.LastContact("nobody"); !at.IsZero() {
		t.Fatalf("unknown node: %v", at)
	}
}
