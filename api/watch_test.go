package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// watchServer is a real store served on a real Unix socket, with the
// Server itself at hand (its watch streams).
type watchServer struct {
	srv    *Server
	st     *store.Store
	socket string
	c      *Client
}

func newWatchServer(tb testing.TB, opts tables.Options) *watchServer {
	tb.Helper()
	quiet := slog.New(slog.DiscardHandler)
	st, err := store.Open(store.Options{Dir: tb.TempDir(), Node: "home", Table: opts, Logger: quiet})
	if err != nil {
		tb.Fatal(err)
	}
	s := NewServer(st, opts.Limits, quiet)
	ws := &watchServer{srv: s, st: st}
	ws.socket = serveOn(tb, s)
	ws.c = Dial(ws.socket)
	tb.Cleanup(func() {
		ws.c.Close()
		st.Close()
	})
	return ws
}

// serveOn serves h on a new Unix socket until the test ends.
func serveOn(tb testing.TB, h http.Handler) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "cxw")
	if err != nil {
		tb.Fatal(err)
	}
	ln, err := ListenUnix(filepath.Join(dir, "s.sock"))
	if err != nil {
		tb.Fatal(err)
	}
	hs := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() { hs.Serve(ln); close(done) }()
	tb.Cleanup(func() {
		hs.Close()
		<-done
		os.RemoveAll(dir)
	})
	return ln.Addr().String()
}

// watcher is a Client.WatchStream running in the background.
type watcher struct {
	start   chan WatchStart
	changes chan Change
	done    chan error
	cancel  context.CancelFunc
}

func startWatch(t *testing.T, c *Client, req WatchRequest) *watcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &watcher{start: make(chan WatchStart, 1), changes: make(chan Change, 10_000), done: make(chan error, 1), cancel: cancel}
	t.Cleanup(cancel)
	go func() {
		w.done <- c.WatchStream(ctx, req,
			func(s WatchStart) error { w.start <- s; return nil },
			func(ch Change) error { w.changes <- ch; return nil })
	}()
	return w
}

// started waits for the stream's first line.
func (w *watcher) started(t *testing.T) WatchStart {
	t.Helper()
	select {
	case s := <-w.start:
		return s
	case err := <-w.done:
		t.Fatalf("the watch ended before it started: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not start within 10s")
	}
	return WatchStart{}
}

// next waits for n changes.
func (w *watcher) next(t *testing.T, n int) []Change {
	t.Helper()
	var out []Change
	deadline := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case ch := <-w.changes:
			out = append(out, ch)
		case err := <-w.done:
			t.Fatalf("the watch ended after %d of %d changes: %v", len(out), n, err)
		case <-deadline:
			t.Fatalf("%d of %d changes within 10s: %+v", len(out), n, out)
		}
	}
	return out
}

// ended waits for the stream to end and returns its error.
func (w *watcher) ended(t *testing.T) error {
	t.Helper()
	select {
	case err := <-w.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end within 10s")
	}
	return nil
}

// waitFor polls cond until it holds, failing after 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within 10s: %s", what)
		}
		time.Sleep(5 * time.Millisecond) // poll interval
	}
}

func codeOf(err error) string {
	var ae *Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return ""
}

// A watcher sees local writes and adopted remote entries, in the order the
// copy applies them, with their exact bytes and versions; a remote entry
// that loses last-write-wins is not applied, so not shown.
func TestWatchLocalAndRemoteChanges(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{}) // fsync=batch: the feed carries durable entries only
	if _, err := ws.c.CreateTable(ctx, "t", scope.Scope{All: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ws.c.Put(ctx, "t", []byte("before"), []byte("not shown")); err != nil {
		t.Fatal(err)
	}
	w := startWatch(t, ws.c, WatchRequest{Table: "t"})
	s := w.started(t)
	if s.Watching != "t" || s.Node != "home" || s.From != 2 || s.LogID == "" {
		t.Fatalf("start line %+v", s)
	}
	tb, err := ws.st.Table("t")
	if err != nil {
		t.Fatal(err)
	}
	binary := []byte{'a', 0, 'b', 0xff, '\n'}
	p1, err := ws.c.Put(ctx, "t", []byte("k\x00\xfe"), binary)
	if err != nil {
		t.Fatal(err)
	}
	remote := wal.Entry{Op: wal.OpPut, Key: []byte("r"), Value: []byte("from office"),
		Version: wal.Version{HLC: tables.HLC(time.Now().UnixMilli(), 7), Origin: "office"}}
	stale := wal.Entry{Op: wal.OpPut, Key: []byte("k\x00\xfe"), Value: []byte("older"),
		Version: wal.Version{HLC: uint64(p1.HLC) - 1<<16, Origin: "office"}}
	if n, err := tb.Apply(ctx, []wal.Entry{remote, stale}); err != nil || n != 1 {
		t.Fatalf("apply: %d adopted, %v", n, err)
	}
	d1, err := ws.c.Delete(ctx, "t", []byte("k\x00\xfe"))
	if err != nil {
		t.Fatal(err)
	}
	p2, err := ws.c.Put(ctx, "t", []byte("empty"), []byte{})
	if err != nil {
		t.Fatal(err)
	}
	got := w.next(t, 4)
	want := []Change{
		{Offset: 2, Op: "put", Key: []byte("k\x00\xfe"), Value: binary, HLC: p1.HLC, Origin: "home"},
		{Offset: 3, Op: "put", Key: []byte("r"), Value: []byte("from office"), HLC: tables.Timestamp(remote.Version.HLC), Origin: "office"},
		{Offset: 4, Op: "del", Key: []byte("k\x00\xfe"), HLC: d1.HLC, Origin: "home"},
		{Offset: 5, Op: "put", Key: []byte("empty"), Value: []byte{}, HLC: p2.HLC, Origin: "home"},
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Offset != w.Offset || g.Op != w.Op || !bytes.Equal(g.Key, w.Key) || !bytes.Equal(g.Value, w.Value) ||
			(g.Value == nil) != (w.Value == nil) || g.HLC != w.HLC || g.HLCTime != w.HLC.Time() || g.Origin != w.Origin {
			t.Errorf("change %d: got %+v, want %+v", i, g, w)
		}
	}
	select {
	case ch := <-w.changes:
		t.Errorf("an extra change: %+v", ch)
	default:
	}
	if ws.srv.Watchers() != 1 {
		t.Errorf("%d watchers, want 1", ws.srv.Watchers())
	}
}

// --prefix keeps the keys that start with it; From replays the log from an
// offset it still holds, then goes on live.
func TestWatchPrefixAndFrom(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true})
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	for _, k := range []string{"a1", "b1", "a2"} {
		if _, err := ws.c.Put(ctx, "t", []byte(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	w := startWatch(t, ws.c, WatchRequest{Table: "t", Prefix: []byte("a"), From: 1})
	if s := w.started(t); s.From != 1 {
		t.Fatalf("start %+v, want from 1", s)
	}
	ws.c.Put(ctx, "t", []byte("b2"), []byte("b2"))
	ws.c.Put(ctx, "t", []byte("a3"), []byte("a3"))
	var keys []string
	for _, ch := range w.next(t, 3) {
		keys = append(keys, fmt.Sprintf("%d:%s", ch.Offset, ch.Key))
	}
	if got := strings.Join(keys, " "); got != "1:a1 3:a2 5:a3" {
		t.Errorf("prefix a from 1: %s", got)
	}
}

// Refusals answered before the stream starts.
func TestWatchRefusals(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true, Retention: 2, CheckpointEvery: -1})
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	for i := range 10 {
		ws.c.Put(ctx, "t", fmt.Appendf(nil, "k%d", i), []byte("v"))
	}
	tb, _ := ws.st.Table("t")
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if first, _ := tb.Bounds(); first != 9 {
		t.Fatalf("the log starts at %d after the checkpoint, want 9", first)
	}
	none := func(Change) error { t.Error("a change"); return nil }
	for _, tc := range []struct {
		req        WatchRequest
		code, says string
	}{
		{WatchRequest{Table: "nope"}, CodeNotFound, "no such table"},
		{WatchRequest{Table: "t", From: 3}, CodeTruncated, "offset 3 is no longer in the log of table t on home (it starts at 9)"},
		{WatchRequest{Table: "t", From: 12}, CodeInvalid, "offset 12 is past the end of the log of table t on home (the next offset is 11)"},
	} {
		err := ws.c.WatchStream(ctx, tc.req, nil, none)
		if codeOf(err) != tc.code || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%+v: %v, want code %s saying %q", tc.req, err, tc.code, tc.says)
		}
	}
	// The body is read as every call's: strictly, and POST only.
	for _, tc := range []struct{ method, body, says string }{
		{http.MethodGet, ``, "use POST /v1/watch"},
		{http.MethodPost, `{"table":"t","since":1}`, `unknown field \"since\"`},
		{http.MethodPost, `{"table":`, "malformed request"},
	} {
		req, _ := http.NewRequest(tc.method, "http://cortexd/v1/watch", strings.NewReader(tc.body))
		resp, err := ws.c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || !strings.Contains(string(body), tc.says) {
			t.Errorf("%s %s: %d %s", tc.method, tc.body, resp.StatusCode, body)
		}
	}
	if ws.srv.Watchers() != 0 {
		t.Errorf("%d watchers after refusals", ws.srv.Watchers())
	}
}

// A watcher that stops reading is not waited for: the writes go on, the
// stream is left behind, and once the watcher reads again and its next
// offset was cut from the log, the stream ends saying so.
func TestWatchFellBehindRetention(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true, Retention: 10, CheckpointEvery: -1})
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	release := make(chan struct{})
	got := make(chan Change, 1000)
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		done <- ws.c.WatchStream(ctx, WatchRequest{Table: "t"}, func(WatchStart) error { close(started); return nil },
			func(ch Change) error {
				got <- ch
				if ch.Offset == 1 {
					<-release // stop reading the stream
				}
				return nil
			})
	}()
	<-started
	value := bytes.Repeat([]byte("v"), 64<<10)
	// 200 values of 64 KiB: far more than the socket's buffers hold, so the
	// stream is stuck in a write well before the last of them.
	for i := range 200 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := ws.c.Put(wctx, "t", fmt.Appendf(nil, "k%03d", i), value)
		cancel()
		if err != nil {
			t.Fatalf("put %d while the watcher does not read: %v", i, err)
		}
	}
	tb, _ := ws.st.Table("t")
	if err := tb.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if first, _ := tb.Bounds(); first != 191 {
		t.Fatalf("the log starts at %d, want 191", first)
	}
	close(release)
	var err error
	select {
	case err = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream did not end within 10s")
	}
	if codeOf(err) != CodeTruncated || !strings.Contains(err.Error(), "the watcher fell behind the log's retention") ||
		!strings.Contains(err.Error(), "start it again") {
		t.Fatalf("the stream ended with %v, want code truncated", err)
	}
	// What it got before is a contiguous run from the start.
	for i := 1; len(got) > 0; i++ {
		if ch := <-got; ch.Offset != uint64(i) {
			t.Fatalf("change %d has offset %d", i, ch.Offset)
		}
	}
	waitFor(t, "the server released the stream", func() bool { return ws.srv.Watchers() == 0 })
}

// rawWatch sends a watch request on a connection of its own and never
// reads the answer.
func rawWatch(t testing.TB, socket, table string) net.Conn {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	body := fmt.Sprintf(`{"table":%q}`, table)
	fmt.Fprintf(conn, "POST /v1/watch HTTP/1.1\r\nHost: cortexd\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	return conn
}

// A watcher whose connection takes no bytes is dropped after the stall
// timeout, and the writes are acknowledged meanwhile as usual.
func TestWatchStalledWatcherIsDropped(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true})
	ws.srv.watch.stall = 300 * time.Millisecond
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	conn := rawWatch(t, ws.socket, "t")
	waitFor(t, "the stalled watch started", func() bool { return ws.srv.Watchers() == 1 })
	value := bytes.Repeat([]byte("v"), 64<<10)
	start := time.Now()
	for i := range 300 {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := ws.c.Put(wctx, "t", fmt.Appendf(nil, "k%03d", i), value)
		cancel()
		if err != nil {
			t.Fatalf("put %d with a stalled watcher: %v", i, err)
		}
	}
	t.Logf("300 puts of 64 KiB with a stalled watcher: %v", time.Since(start))
	waitFor(t, "the stalled watcher was dropped", func() bool { return ws.srv.Watchers() == 0 })
	// Its connection is closed: reading it gives what was sent, then EOF.
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("response %v %v", resp, err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err == nil {
		t.Error("the dropped stream ended as if complete")
	} else if os.IsTimeout(err) {
		t.Errorf("the dropped stream's connection is still open: %v", err)
	}
}

// The server notices a client that goes away and releases its stream;
// StopStreams ends every stream with a last line and refuses new ones.
func TestWatchClientGoneAndStopStreams(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true})
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	w := startWatch(t, ws.c, WatchRequest{Table: "t"})
	w.started(t)
	w.cancel()
	if err := w.ended(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled watch returned %v", err)
	}
	waitFor(t, "the server released the stream of a client gone", func() bool { return ws.srv.Watchers() == 0 })

	w1 := startWatch(t, ws.c, WatchRequest{Table: "t"})
	w2 := startWatch(t, ws.c, WatchRequest{Table: "t", Prefix: []byte("x")})
	w1.started(t)
	w2.started(t)
	ws.srv.StopStreams()
	for _, w := range []*watcher{w1, w2} {
		if err := w.ended(t); codeOf(err) != CodeUnavailable || !strings.Contains(err.Error(), "cortexd on home is stopping") {
			t.Errorf("stopped stream: %v", err)
		}
	}
	err := ws.c.Watch(ctx, "t", "", func(Change) error { return nil })
	if codeOf(err) != CodeUnavailable {
		t.Errorf("a watch after StopStreams: %v", err)
	}
	waitFor(t, "no streams left", func() bool { return ws.srv.Watchers() == 0 })
}

// A dropped table ends its watchers' streams.
func TestWatchTableDropped(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true})
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	w := startWatch(t, ws.c, WatchRequest{Table: "t"})
	w.started(t)
	if err := ws.c.DropTable(ctx, "t", ""); err != nil {
		t.Fatal(err)
	}
	if err := w.ended(t); codeOf(err) != CodeUnavailable || !strings.Contains(err.Error(), "the copy of table t on home was closed") {
		t.Errorf("the stream of a dropped table ended with %v", err)
	}
}

// As identity, over the mTLS listener's handler: a watcher needs read
// permission, and loses the stream once the permission is revoked.
func TestWatchRemoteReadPermission(t *testing.T) {
	ctx := context.Background()
	ws := newWatchServer(t, tables.Options{NoSync: true})
	ws.c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{})
	dir := t.TempDir()
	as := func(cert *x509.Certificate) *Client {
		remote := ws.srv.Remote()
		c := Dial(serveOn(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{cert}}, PeerCertificates: []*x509.Certificate{cert}}
			remote.ServeHTTP(w, r)
		})))
		t.Cleanup(c.Close)
		return c
	}
	aliceCert, _ := clientCert(t, dir, "alice")
	bobCert, _ := clientCert(t, dir, "bob")
	alice, bob := as(aliceCert), as(bobCert)
	ws.st.AddIdentity(ctx, store.Identity{Name: "alice", Kind: "client"})
	ws.st.AddIdentity(ctx, store.Identity{Name: "bob", Kind: "client"})
	ws.st.GrantPerm(ctx, "alice", "t", store.PermRead)

	err := bob.Watch(ctx, "t", "", func(Change) error { return nil })
	if codeOf(err) != CodeDenied || !strings.Contains(err.Error(), "bob may not read table t") {
		t.Fatalf("bob without a grant: %v", err)
	}
	w := startWatch(t, alice, WatchRequest{Table: "t"})
	w.started(t)
	ws.c.Put(ctx, "t", []byte("k"), []byte("v"))
	if ch := w.next(t, 1)[0]; string(ch.Key) != "k" || string(ch.Value) != "v" {
		t.Fatalf("alice got %+v", ch)
	}
	if _, err := ws.st.RevokePerm(ctx, "alice", "t", store.PermNone); err != nil {
		t.Fatal(err)
	}
	ws.c.Put(ctx, "t", []byte("secret"), []byte("after the revocation"))
	if err := w.ended(t); codeOf(err) != CodeDenied || !strings.Contains(err.Error(), "alice may not read table t") {
		t.Fatalf("alice's stream after the revocation: %v", err)
	}
	select {
	case ch := <-w.changes:
		t.Errorf("alice got a change after the revocation: %+v", ch)
	default:
	}
}
