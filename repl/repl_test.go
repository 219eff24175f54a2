package repl

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/mesh"
	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// askRepl speaks /cortex/repl/1 directly from one node to another: it sends
// req and returns the frames received until the publisher ends the stream
// (end is the error that ended it) or until stopAt is received.
func askRepl(t *testing.T, from, to *tnode, req request, stopAt byte) (frames []frame, end error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := from.mesh.Open(ctx, to.name, ID)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if err := mesh.WriteFrame(s, mustJSON(req)); err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b, err := mesh.ReadFrame(s, maxReplFrame)
		if err != nil {
			return frames, err
		}
		f, err := decodeFrame(b)
		if err != nil {
			t.Fatalf("a malformed frame from %s: %v", to.name, err)
		}
		frames = append(frames, f)
		if f.Type == stopAt {
			return frames, nil
		}
	}
	t.Fatalf("more than 100 frames from %s", to.name)
	return nil, nil
}

// A publisher refuses a subscriber outside the table's scope: one error
// frame naming the scope, then the end of the stream, no data; the node
// outside the scope never holds the table, while a node in it gets the
// data, tombstones included.
func TestReplRefusesSubscriberOutsideScope(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) { testRefusesSubscriberOutsideScope(t, transport) })
	}
}

func testRefusesSubscriberOutsideScope(t *testing.T, transport string) {
	cl := newCluster(t, transport)
	a, b, c := cl.add("a", true), cl.add("b", true), cl.add("c", true)
	cl.waitReady()
	ctx := context.Background()

	scope, err := scope.ScopeOf([]string{"a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := a.store.CreateTable(ctx, "secret", scope)
	if err != nil {
		t.Fatal(err)
	}
	ta, err := a.store.Table("secret")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"k1", "gone"} {
		if _, err := ta.Put(ctx, []byte(k), []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ta.Delete(ctx, []byte("gone")); err != nil {
		t.Fatal(err)
	}

	// b, in the scope, gets the data through its own subscription.
	waitFor(t, "b to hold secret/k1", func() bool {
		tb, err := b.store.Table("secret")
		if err != nil {
			return false
		}
		r, err := tb.Get([]byte("k1"))
		return err == nil && string(r.Value) == "v-k1"
	})
	// c learns of the table through the catalog but holds no copy.
	waitFor(t, "c to know the table", func() bool { _, err := c.store.Info("secret"); return err == nil })

	log := ta.LogID()
	for _, req := range []request{
		{Version: version, Table: "secret", TableID: info.ID, From: 1},             // no cursor: snapshot
		{Version: version, Table: "secret", TableID: info.ID, LogID: log, From: 1}, // a cursor in a's log
	} {
		frames, end := askRepl(t, c, a, req, 0)
		if len(frames) != 1 || frames[0].Type != frameError {
			t.Fatalf("c asked for secret (%+v) and got %d frames: %+v", req, len(frames), frames)
		}
		if msg := frames[0].Message; !strings.Contains(msg, "c is not in the scope of table secret (a,b)") {
			t.Fatalf("refusal does not name the scope: %q", msg)
		}
		if !errors.Is(end, io.EOF) {
			t.Fatalf("after the refusal the stream did not end cleanly: %v", end)
		}
	}
	if !strings.Contains(a.logs.String(), "repl: refused a subscriber") {
		t.Fatalf("a did not log the refusal:\n%s", a.logs)
	}
	if _, err := c.store.Table("secret"); !errors.Is(err, store.ErrNotHeld) {
		t.Fatalf("c's copy of secret: %v, want ErrNotHeld", err)
	}
	for _, info := range c.store.HeldInfo() {
		if info.Name == "secret" {
			t.Fatal("c holds secret")
		}
	}
	if _, ok := ta.Acks()["c"]; ok {
		t.Fatalf("a recorded an acknowledgement from c: %v", ta.Acks())
	}

	// The same request from b, in the scope, gets the snapshot: the
	// refusal above was for c, not for the request.
	frames, err := askRepl(t, b, a, request{Version: version, Table: "secret", TableID: info.ID, From: 1}, frameSnapEnd)
	if err != nil {
		t.Fatalf("b's direct request: %v (frames %+v)", err, frames)
	}
	got := map[string]wal.Entry{}
	for _, f := range frames {
		for _, e := range f.Entries {
			got[string(e.Key)] = e
		}
	}
	if frames[0].Type != frameSnapBegin || frames[0].LogID != log {
		t.Fatalf("b's first frame: %+v", frames[0])
	}
	if e := got["k1"]; e.Op != wal.OpPut || string(e.Value) != "v-k1" {
		t.Fatalf("snapshot for b: k1 = %+v", e)
	}
	if e := got["gone"]; e.Op != wal.OpDelete {
		t.Fatalf("snapshot for b: the tombstone of gone = %+v", e)
	}
}

// fakePublisher answers /cortex/repl/1 requests with canned answers per
// table and records what the subscriber does.
type fakePublisher struct {
	answers map[string]func(mesh.Stream) error

	mu       sync.Mutex
	requests map[string][]time.Time // when each request arrived, by table
	ended    map[string]int         // answered streams the subscriber ended
	acks     map[string][]uint64    // acknowledgements received
}

func (f *fakePublisher) handle(_ string, s mesh.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	b, err := mesh.ReadFrame(s, 64<<10)
	if err != nil {
		s.Reset()
		return
	}
	req, err := decodeRequest(b)
	if err != nil {
		s.Reset()
		return
	}
	answer, ok := f.answers[req.Table]
	if !ok && scope.IsSystem(req.Table) {
		// The system tables: an empty snapshot, so that the subscriber has
		// synced them and goes on to the user tables.
		answer, ok = emptySnapshot, true
	}
	if !ok {
		s.Reset()
		return
	}
	f.mu.Lock()
	f.requests[req.Table] = append(f.requests[req.Table], time.Now())
	f.mu.Unlock()
	if err := answer(s); err != nil { // the subscriber closed the stream on us
		f.mu.Lock()
		f.ended[req.Table]++
		f.mu.Unlock()
		return
	}
	for range 1000 {
		b, err := mesh.ReadFrame(s, 64)
		if err != nil {
			f.mu.Lock()
			f.ended[req.Table]++
			f.mu.Unlock()
			return
		}
		if fr, err := decodeFrame(b); err == nil && fr.Type == frameAck {
			f.mu.Lock()
			f.acks[req.Table] = append(f.acks[req.Table], fr.Offset)
			f.mu.Unlock()
		}
	}
}

func emptySnapshot(s mesh.Stream) error {
	if err := mesh.WriteFrame(s, encodeFrame(&frame{Type: frameSnapBegin, LogID: "fakesys", Offset: 0})); err != nil {
		return err
	}
	return mesh.WriteFrame(s, encodeFrame(&frame{Type: frameSnapEnd}))
}

func (f *fakePublisher) stats(table string) (requests []time.Time, ended int, acks []uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.requests[table]...), f.ended[table], append([]uint64(nil), f.acks[table]...)
}

// A publisher that answers with a malformed frame (garbage, an entry that
// fails its checksum, a length over the limit) gets its stream closed by the
// subscriber, which logs `repl: malformed frame`, applies nothing of it, and
// retries with growing backoff. A well-formed answer from the same fake is
// applied, so the fake is heard.
func TestReplMalformedFrames(t *testing.T) {
	for _, transport := range transports {
		t.Run(transport, func(t *testing.T) { testMalformedFrames(t, transport) })
	}
}

func testMalformedFrames(t *testing.T, transport string) {
	cl := newCluster(t, transport)
	version := wal.Version{HLC: tables.HLC(time.Now().UnixMilli(), 0), Origin: "a"}
	put := func(k, v string) wal.Entry {
		return wal.Entry{Op: wal.OpPut, Key: []byte(k), Value: []byte(v), Version: version}
	}
	send := func(s mesh.Stream, f *frame) error { return mesh.WriteFrame(s, encodeFrame(f)) }
	fake := &fakePublisher{
		requests: map[string][]time.Time{}, ended: map[string]int{}, acks: map[string][]uint64{},
		answers: map[string]func(mesh.Stream) error{
			"garbage": func(s mesh.Stream) error {
				return mesh.WriteFrame(s, []byte{0xff, 0x13, 0x37})
			},
			"corrupt": func(s mesh.Stream) error {
				if err := send(s, &frame{Type: frameSnapBegin, LogID: "fakelog", Offset: 7}); err != nil {
					return err
				}
				b := encodeFrame(&frame{Type: frameSnapRecs, Entries: []wal.Entry{put("must-not-apply", "1"), put("nor-this", "2")}})
				b[len(b)-1] ^= 0xff // the last entry's checksum
				return mesh.WriteFrame(s, b)
			},
			"oversized": func(s mesh.Stream) error {
				var hdr [4]byte
				binary.BigEndian.PutUint32(hdr[:], maxReplFrame+1)
				_, err := s.Write(append(hdr[:], "and then some"...))
				return err
			},
			"valid": func(s mesh.Stream) error {
				for _, f := range []*frame{
					{Type: frameSnapBegin, LogID: "fakelog", Offset: 7},
					{Type: frameSnapRecs, Entries: []wal.Entry{put("applied", "yes")}},
					{Type: frameSnapEnd},
				} {
					if err := send(s, f); err != nil {
						return err
					}
				}
				return nil
			},
		},
	}
	a := cl.add("a", false)
	a.mesh.Handle(ID, fake.handle)
	b := cl.add("b", true)
	cl.waitReady()
	malformed := []string{"garbage", "corrupt", "oversized"}
	for _, name := range append(malformed, "valid") {
		if _, err := b.store.CreateTable(context.Background(), name, scope.Scope{All: true}); err != nil {
			t.Fatal(err)
		}
	}

	// The control: the fake's well-formed snapshot is applied and acknowledged.
	tv, err := b.store.Table("valid")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("b's log:\n%s", b.logs)
		}
	})
	waitFor(t, "b to apply the fake's valid snapshot", func() bool {
		r, err := tv.Get([]byte("applied"))
		_, _, acks := fake.stats("valid")
		return err == nil && string(r.Value) == "yes" && len(acks) > 0 && acks[0] == 7
	})
	if cur, ok := tv.Cursor("a"); !ok || cur != (tables.Cursor{LogID: "fakelog", Offset: 7}) {
		t.Fatalf("b's cursor in the fake's log: %+v %v", cur, ok)
	}

	const tries = 5
	for _, name := range malformed {
		t.Run(name, func(t *testing.T) {
			waitFor(t, "b to ask "+name+" 5 times", func() bool {
				requests, ended, _ := fake.stats(name)
				return len(requests) >= tries && ended >= tries-1
			})
			requests, _, acks := fake.stats(name)
			// Retries back off: attempt k+1 waits at least half of
			// 100 ms << k after attempt k (jitter takes up to half).
			for k := 0; k+1 < tries; k++ {
				gap, least := requests[k+1].Sub(requests[k]), (100*time.Millisecond<<k)/2
				if gap < least {
					t.Fatalf("retry %d came %s after the previous one, want at least %s", k+1, gap, least)
				}
			}
			if len(acks) != 0 {
				t.Fatalf("b acknowledged %v", acks)
			}
			waitFor(t, "b to log the malformed frames of "+name, func() bool {
				n := 0
				for _, line := range strings.Split(b.logs.String(), "\n") {
					if strings.Contains(line, `msg="repl: malformed frame`) && strings.Contains(line, " table="+name+" ") && strings.Contains(line, " peer=a ") {
						n++
					}
				}
				return n >= tries-1
			})
			tb, err := b.store.Table(name)
			if err != nil {
				t.Fatal(err)
			}
			if st := tb.Stats(); st.Applied != 0 || st.Keys != 0 || st.Tombstones != 0 {
				t.Fatalf("b applied something of %s: %+v", name, st)
			}
			if cur, ok := tb.Cursor("a"); ok {
				t.Fatalf("b stored a cursor for %s: %+v", name, cur)
			}
		})
	}
}
