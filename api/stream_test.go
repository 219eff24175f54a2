package api

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cortex-mesh/cortex/scope"
	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// jsonOnly returns a client of the same socket that never opens a stream.
func jsonOnly(t *testing.T, c *Client) *Client {
	t.Helper()
	j := Dial(c.socket)
	j.noStream = true
	t.Cleanup(j.Close)
	return j
}

// usesStream reports whether c has an open stream.
func usesStream(c *Client) bool {
	c.smu.Lock()
	defer c.smu.Unlock()
	return c.stream != nil && c.stream.broken() == nil
}

// TestStreamMatchesJSON makes every put, get and delete, good and bad,
// through a stream and through the JSON calls: the same answers and errors.
func TestStreamMatchesJSON(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, tables.Options{NoSync: true, Limits: tables.Limits{MaxKeySize: 16, MaxValueSize: 64}})
	j := jsonOnly(t, c)
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	binary := []byte{0, 1, 2, 0xfe, 0xff, '\n', '"'}
	for _, tc := range []struct {
		name string
		call func(c *Client, key []byte) (any, error)
		code string // "" for success
	}{
		{"put", func(c *Client, k []byte) (any, error) { return c.Put(ctx, "t", k, binary) }, ""},
		{"put empty value", func(c *Client, k []byte) (any, error) { return c.Put(ctx, "t", k, nil) }, ""},
		{"put empty key", func(c *Client, _ []byte) (any, error) { return c.Put(ctx, "t", nil, binary) }, CodeInvalid},
		{"put key over limit", func(c *Client, _ []byte) (any, error) { return c.Put(ctx, "t", make([]byte, 17), nil) }, CodeInvalid},
		{"put value over limit", func(c *Client, k []byte) (any, error) { return c.Put(ctx, "t", k, make([]byte, 65)) }, CodeInvalid},
		{"put unknown table", func(c *Client, k []byte) (any, error) { return c.Put(ctx, "nope", k, nil) }, CodeNotFound},
		{"put bad table name", func(c *Client, k []byte) (any, error) { return c.Put(ctx, "Bad/Name", k, nil) }, CodeNotFound},
		{"put system table", func(c *Client, k []byte) (any, error) { return c.Put(ctx, scope.MetaTable, k, nil) }, CodeInvalid},
		{"get missing", func(c *Client, k []byte) (any, error) { return c.Get(ctx, "t", k) }, CodeNotFound},
		{"get unknown table", func(c *Client, k []byte) (any, error) { return c.Get(ctx, "nope", k) }, CodeNotFound},
		{"delete missing", func(c *Client, k []byte) (any, error) { return c.Delete(ctx, "t", k) }, CodeNotFound},
		{"delete empty key", func(c *Client, _ []byte) (any, error) { return c.Delete(ctx, "t", nil) }, CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errs [2]error
			for i, cl := range []*Client{c, j} {
				key := fmt.Appendf(nil, "%s-%d", strings.ReplaceAll(tc.name, " ", "")[:3], i)
				got, err := tc.call(cl, key)
				errs[i] = err
				if tc.code == "" {
					if err != nil {
						t.Fatalf("client %d: %v", i, err)
					}
					w := got.(WriteResult)
					if w.HLC == 0 || w.Origin != "home" {
						t.Fatalf("client %d: version %+v", i, w)
					}
					r, err := cl.Get(ctx, "t", key)
					if err != nil || r.HLC != w.HLC || r.Origin != "home" || !bytes.Equal(r.Key, key) {
						t.Fatalf("client %d: get after put: %+v %v", i, r, err)
					}
					if _, err := cl.Delete(ctx, "t", key); err != nil {
						t.Fatalf("client %d: delete: %v", i, err)
					}
					if _, err := cl.Get(ctx, "t", key); !isCode(err, CodeNotFound) {
						t.Fatalf("client %d: get after delete: %v", i, err)
					}
				}
			}
			if tc.code == "" {
				return
			}
			var s, h *Error
			if !errors.As(errs[0], &s) || !errors.As(errs[1], &h) {
				t.Fatalf("errors %v / %v are not *Error", errs[0], errs[1])
			}
			// The messages name the keys, which differ by client.
			if s.Code != tc.code || s.Code != h.Code || s.Status != h.Status ||
				strings.ReplaceAll(s.Message, "-0", "-1") != h.Message {
				t.Fatalf("stream: %+v\njson:   %+v", s, h)
			}
		})
	}
	if !usesStream(c) {
		t.Fatal("the client did not use a stream")
	}
	if usesStream(j) {
		t.Fatal("the JSON-only client opened a stream")
	}
}

func isCode(err error, code string) bool {
	var ae *Error
	return errors.As(err, &ae) && ae.Code == code
}

// TestStreamConcurrentCalls makes puts from 32 goroutines over one client:
// they share its one stream, and every write is there with its version.
func TestStreamConcurrentCalls(t *testing.T) {
	ctx := context.Background()
	st, c := newTestServer(t, tables.Options{})
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	const workers, each = 32, 50
	versions := make([][]WriteResult, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v, err := c.Put(ctx, "t", fmt.Appendf(nil, "k-%02d-%02d", w, i), fmt.Appendf(nil, "v%d", w*each+i))
				if err != nil {
					t.Error(err)
					return
				}
				versions[w] = append(versions[w], v)
			}
		}()
	}
	wg.Wait()
	seen := map[tables.Timestamp]bool{}
	for w := range workers {
		for i, v := range versions[w] {
			if seen[v.HLC] {
				t.Fatalf("version %d given twice", v.HLC)
			}
			seen[v.HLC] = true
			r, err := c.Get(ctx, "t", fmt.Appendf(nil, "k-%02d-%02d", w, i))
			if err != nil || r.HLC != v.HLC || string(r.Value) != fmt.Sprint("v", w*each+i) {
				t.Fatalf("get %d/%d: %+v %v, put gave %+v", w, i, r, err, v)
			}
		}
	}
	if len(seen) != workers*each {
		t.Fatalf("%d versions, want %d", len(seen), workers*each)
	}
	tb, _ := st.Table("t")
	if n := tb.Stats().Keys; n != workers*each {
		t.Fatalf("%d keys, want %d", n, workers*each)
	}
}

// rawStream opens a stream on socket by hand and returns the connection,
// a reader of the answers' frames (dechunked) and a writer of chunks.
func rawStream(t *testing.T, socket string) (net.Conn, *bufio.Reader) {
	t.Helper()
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	hresp, fallback, err := openStreamOn(conn)
	if err != nil || fallback != 0 {
		t.Fatalf("open stream: %v (status %d)", err, fallback)
	}
	return conn, bufio.NewReader(hresp.Body)
}

// readFrame reads one response frame.
func readFrame(t *testing.T, r io.Reader) streamResponse {
	t.Helper()
	var head [4]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(head[:]))
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("read frame: %v", err)
	}
	resp, err := decodeResponse(body)
	if err != nil {
		t.Fatalf("decode frame: %v", err)
	}
	return resp
}

// frame is a request frame with body as is (after the length).
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// TestStreamBadFrames sends malformed and oversized frames on a stream:
// each gets an error with its id and changes nothing, and the stream goes
// on serving; a frame too short to have an id ends the stream.
func TestStreamBadFrames(t *testing.T) {
	ctx := context.Background()
	st, c := newTestServer(t, tables.Options{NoSync: true, Limits: tables.Limits{MaxKeySize: 16, MaxValueSize: 64}})
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	conn, answers := rawStream(t, c.socket)
	id := func(n uint32, rest ...byte) []byte { return append(binary.BigEndian.AppendUint32(nil, n), rest...) }
	cases := []struct {
		body []byte
		code string
		msg  string
	}{
		{id(1, 9), CodeInvalid, "unknown op 9"},
		{id(2, opPut), CodeInvalid, "no length of the table"},
		{id(3, opPut, 5, 't'), CodeInvalid, "the table's length 5 is past the frame's end"},
		{id(4, opGet, 1, 't', 1, 'k', 'x'), CodeInvalid, "1 bytes after the key"},
		{id(5, opPut, 1, 't', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), CodeInvalid, "no length of the key"},
		{id(6, opPut, 1, 't', 1, 'k'), "", ""}, // sanity: a good put in between
		{append(id(7, opPut, 1, 't', 1, 'k'), make([]byte, 65<<10+64)...), CodeTooLarge, "over the limit"},
		{id(0, opPut, 1, 't', 1, 'k'), CodeInvalid, "request id 0"}, // last: it ends the stream
	}
	var chunk []byte
	for _, tc := range cases {
		chunk = append(chunk, frame(tc.body)...)
	}
	if err := writeChunk(conn, chunk); err != nil {
		t.Fatal(err)
	}
	got := map[uint32]streamResponse{}
	for range cases {
		r := readFrame(t, answers)
		got[r.ID] = r
	}
	for _, tc := range cases {
		id := binary.BigEndian.Uint32(tc.body)
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("no answer to request %d", id)
		case tc.code == "" && r.Err != nil:
			t.Errorf("request %d: %v", id, r.Err)
		case tc.code != "" && (r.Err == nil || r.Err.Code != tc.code || !strings.Contains(r.Err.Message, tc.msg)):
			t.Errorf("request %d: got %+v, want code %s with %q", id, r.Err, tc.code, tc.msg)
		}
	}
	if _, err := io.ReadFull(answers, make([]byte, 1)); err == nil {
		t.Fatal("the stream went on after a frame with id 0")
	}
	// Only the good put changed the table.
	tb, _ := st.Table("t")
	if n := tb.Stats().Keys; n != 1 {
		t.Fatalf("%d keys, want 1", n)
	}
	if _, err := tb.Delete(ctx, []byte("k")); err != nil {
		t.Fatal(err)
	}

	// A frame too short for an id: an error with id 0, and the end.
	conn2, answers2 := rawStream(t, c.socket)
	if err := writeChunk(conn2, frame([]byte{1, 2})); err != nil {
		t.Fatal(err)
	}
	if r := readFrame(t, answers2); r.ID != 0 || r.Err == nil || !strings.Contains(r.Err.Message, "has no id") {
		t.Fatalf("got %+v", r)
	}
}

// TestStreamRefused: a stream of another version, a GET, and a stream over
// TLS are refused with clear errors.
func TestStreamRefused(t *testing.T) {
	st, c := newTestServer(t, tables.Options{NoSync: true})
	post := func(hc *http.Client, url, version string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(""))
		if version != "" {
			req.Header.Set(streamHeader, version)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post(c.http, "http://cortexd/v1/stream", "2"); code != http.StatusBadRequest ||
		!strings.Contains(body, `stream protocol version \"2\": this cortexd speaks version 1`) {
		t.Fatalf("version 2: %d %s", code, body)
	}
	resp, err := c.http.Get("http://cortexd/v1/stream")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	ts := httptest.NewUnstartedServer(NewServer(st, tables.Limits{}, nil))
	ts.StartTLS()
	defer ts.Close()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the test's own server
	defer hc.CloseIdleConnections()
	if code, body := post(hc, ts.URL+"/v1/stream", StreamVersion); code != http.StatusBadRequest ||
		!strings.Contains(body, "streams are served on the Unix socket only") {
		t.Fatalf("TLS: %d %s", code, body)
	}
}

// TestStreamFallsBackToJSON: a daemon without streams (404, as a cortexd
// before them answers) gets JSON calls, and the client stops trying.
func TestStreamFallsBackToJSON(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: "home", Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := NewServer(st, tables.Limits{}, nil)
	var streamAsks, calls sync.Map
	old := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/stream" {
			n, _ := streamAsks.LoadOrStore("n", new(int))
			*n.(*int)++
			http.NotFound(w, r)
			return
		}
		calls.Store(r.URL.Path, true)
		h.ServeHTTP(w, r)
	})
	dir, err := os.MkdirTemp("", "cxapi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	ln, err := ListenUnix(filepath.Join(dir, "s.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: old}
	go srv.Serve(ln)
	defer srv.Close()
	c := Dial(ln.Addr().String())
	defer c.Close()
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := c.Put(ctx, "t", []byte("k"), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := c.Get(ctx, "t", []byte("k"))
	if err != nil || string(r.Value) != "v2" {
		t.Fatalf("get: %+v %v", r, err)
	}
	if _, err := c.Delete(ctx, "t", []byte("k")); err != nil {
		t.Fatal(err)
	}
	n, _ := streamAsks.Load("n")
	if n == nil || *n.(*int) != 1 {
		t.Fatalf("asked for a stream %v times, want once", n)
	}
	for _, p := range []string{"/v1/put", "/v1/get", "/v1/del"} {
		if _, ok := calls.Load(p); !ok {
			t.Errorf("no JSON call %s", p)
		}
	}
}

// TestStreamStopAndReconnect: StopStreams answers what was read, ends the
// stream with code unavailable, and a client whose stream ended opens a
// new one on a new server.
func TestStreamStopAndReconnect(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(store.Options{Dir: t.TempDir(), Node: "home", Table: tables.Options{NoSync: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.CreateTable(ctx, "t", scope.Scope{Local: true}); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "cxapi")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "s.sock")
	serve := func() (*Server, *http.Server) {
		ln, err := ListenUnix(sock)
		if err != nil {
			t.Fatal(err)
		}
		h := NewServer(st, tables.Limits{}, nil)
		srv := &http.Server{Handler: h}
		srv.RegisterOnShutdown(h.StopStreams)
		go srv.Serve(ln)
		return h, srv
	}
	_, srv := serve()
	c := Dial(sock)
	defer c.Close()
	if _, err := c.Put(ctx, "t", []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	conn, answers := rawStream(t, sock)
	if err := writeChunk(conn, appendRequest(nil, &streamRequest{ID: 7, Op: opPut, Table: "t", Key: []byte("b"), Value: []byte("2")})); err != nil {
		t.Fatal(err)
	}
	if r := readFrame(t, answers); r.ID != 7 || r.Err != nil {
		t.Fatalf("put: %+v", r)
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil { // waits for the streams to end
		t.Fatal(err)
	}
	if r := readFrame(t, answers); r.ID != 0 || r.Err == nil || r.Err.Code != CodeUnavailable || r.Err.Message != "cortexd is stopping" {
		t.Fatalf("last frame: %+v", r)
	}
	// The client's stream has ended too: its next call fails or opens a
	// new stream, here with a new server on the same socket.
	deadline := time.Now().Add(10 * time.Second)
	for usesStream(c) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling the client's state, with a deadline
	}
	if usesStream(c) {
		t.Fatal("the client's stream did not end")
	}
	_, srv2 := serve()
	defer srv2.Close()
	if _, err := c.Put(ctx, "t", []byte("c"), []byte("3")); err != nil {
		t.Fatal(err)
	}
	if !usesStream(c) {
		t.Fatal("no new stream")
	}
	tb, _ := st.Table("t")
	if n := tb.Stats().Keys; n != 3 {
		t.Fatalf("%d keys, want 3", n)
	}
}

// TestStreamCanceledCall: a call whose context ends returns its error; the
// stream goes on.
func TestStreamCanceledCall(t *testing.T) {
	ctx := context.Background()
	_, c := newTestServer(t, tables.Options{NoSync: true})
	if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
		t.Fatal(err)
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.Put(done, "t", []byte("k"), []byte("v")); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled put: %v", err)
	}
	if _, err := c.Put(ctx, "t", []byte("k"), []byte("w")); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Get(ctx, "t", []byte("k")); err != nil || string(r.Value) != "w" {
		t.Fatalf("get: %+v %v", r, err)
	}
}

// TestBatchWriter: frames added from many goroutines are all written, in
// fewer writes than frames; close writes the rest; add fails after close
// and after a failed write.
func TestBatchWriter(t *testing.T) {
	w := newBatchWriter()
	var out bytes.Buffer
	writes := 0
	release := make(chan struct{})
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		w.run(func(b []byte) error {
			if writes == 0 {
				<-release // the first write is slow: the rest gathers
			}
			writes++
			out.Write(b)
			return nil
		})
	}()
	if err := w.add(func(b []byte) []byte { return append(b, 'a') }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); w.add(func(b []byte) []byte { return append(b, 'b') }) }()
	}
	wg.Wait()
	close(release)
	w.close()
	<-ran
	if got := out.String(); got != "a"+strings.Repeat("b", 100) {
		t.Fatalf("wrote %q", got)
	}
	if writes > 3 {
		t.Fatalf("%d writes for 101 frames", writes)
	}
	if err := w.add(func(b []byte) []byte { return b }); !errors.Is(err, errWriterClosed) {
		t.Fatalf("add after close: %v", err)
	}

	f := newBatchWriter()
	failed := make(chan struct{})
	go func() { defer close(failed); f.run(func([]byte) error { return io.ErrClosedPipe }) }()
	f.add(func(b []byte) []byte { return append(b, 'x') })
	<-failed
	if err := f.add(func(b []byte) []byte { return b }); !errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("add after a failed write: %v", err)
	}
}

// TestFrameRoundTrip encodes and decodes requests and responses.
func TestFrameRoundTrip(t *testing.T) {
	for _, r := range []streamRequest{
		{ID: 1, Op: opPut, Table: "t", Key: []byte("k"), Value: []byte{0, 0xff}},
		{ID: 1<<32 - 1, Op: opPut, Table: "a-long-table-name", Key: bytes.Repeat([]byte("k"), 300), Value: []byte{}},
		{ID: 2, Op: opGet, Table: "t", Key: []byte{0}},
		{ID: 3, Op: opDel, Table: "", Key: []byte{}},
	} {
		buf := appendRequest([]byte("prefix"), &r)
		body := buf[len("prefix"):]
		if n := binary.BigEndian.Uint32(body); int(n) != len(body)-4 {
			t.Fatalf("length %d of a %d-byte frame", n, len(body))
		}
		got, err := decodeRequest(body[4:])
		if r.Op != opPut {
			r.Value = nil
		}
		if err != nil || !reflect.DeepEqual(norm(got), norm(r)) {
			t.Fatalf("%+v: got %+v %v", r, got, err)
		}
	}
	for _, r := range []streamResponse{
		{ID: 1, HLC: 42, Origin: "home"},
		{ID: 2, HLC: 1 << 63, Origin: "o", Key: []byte("k"), Value: []byte("v")},
		{ID: 3, Err: &Error{Status: 404, Code: CodeNotFound, Message: "table t: key \"k\": not found"}},
	} {
		buf := appendResponse(nil, &r)
		got, err := decodeResponse(buf[4:])
		if err != nil || !reflect.DeepEqual(normResp(got), normResp(r)) {
			t.Fatalf("%+v: got %+v %v", r, got, err)
		}
	}
}

func norm(r streamRequest) streamRequest {
	if len(r.Key) == 0 {
		r.Key = nil
	}
	if len(r.Value) == 0 {
		r.Value = nil
	}
	return r
}

func normResp(r streamResponse) streamResponse {
	if len(r.Key) == 0 {
		r.Key = nil
	}
	if len(r.Value) == 0 {
		r.Value = nil
	}
	return r
}

// FuzzDecodeRequest: any frame body decodes or fails with errFrame, and one
// that decodes encodes back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(appendRequest(nil, &streamRequest{ID: 1, Op: opPut, Table: "t", Key: []byte("k"), Value: []byte("v")})[4:])
	f.Add(appendRequest(nil, &streamRequest{ID: 2, Op: opGet, Table: "t", Key: []byte("k")})[4:])
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeRequest(body)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error %v is not errFrame", err)
			}
			return
		}
		if again := appendRequest(nil, &r)[4:]; !bytes.Equal(again, body) {
			t.Fatalf("%x decoded to %+v, encoded to %x", body, r, again)
		}
	})
}

// FuzzDecodeResponse: any frame body decodes or fails with errFrame, and
// one that decodes encodes back to the same bytes.
func FuzzDecodeResponse(f *testing.F) {
	f.Add(appendResponse(nil, &streamResponse{ID: 1, HLC: 5, Origin: "home", Key: []byte("k"), Value: []byte("v")})[4:])
	f.Add(appendResponse(nil, &streamResponse{ID: 1, Err: &Error{Status: 400, Code: CodeInvalid, Message: "m"}})[4:])
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := decodeResponse(body)
		if err != nil {
			if !errors.Is(err, errFrame) {
				t.Fatalf("error %v is not errFrame", err)
			}
			return
		}
		if again := appendResponse(nil, &r)[4:]; !bytes.Equal(again, body) {
			t.Fatalf("%x decoded to %+v, encoded to %x", body, r, again)
		}
	})
}

// TestCopyCacheFollowsTheCatalog: the server's cache of table lookups
// forgets a dropped table (its writes fail as before, with not_found) and
// finds the table re-created under the same name.
func TestCopyCacheFollowsTheCatalog(t *testing.T) {
	ctx := context.Background()
	st, c := newTestServer(t, tables.Options{NoSync: true})
	j := jsonOnly(t, c)
	for round := range 2 {
		if _, err := c.CreateTable(ctx, "t", scope.Scope{Local: true}, Overrides{}); err != nil {
			t.Fatal(err)
		}
		for i, cl := range []*Client{c, j} {
			key := fmt.Appendf(nil, "k%d", i)
			if _, err := cl.Get(ctx, "t", key); !isCode(err, CodeNotFound) {
				t.Fatalf("round %d, client %d: a new table has the old key: %v", round, i, err)
			}
			if _, err := cl.Put(ctx, "t", key, []byte("v")); err != nil {
				t.Fatalf("round %d, client %d: %v", round, i, err)
			}
		}
		tb, err := st.Table("t")
		if err != nil || tb.Stats().Keys != 2 {
			t.Fatalf("round %d: the store's copy: %v", round, err)
		}
		if err := c.DropTable(ctx, "t", ""); err != nil {
			t.Fatal(err)
		}
		for i, cl := range []*Client{c, j} {
			if _, err := cl.Put(ctx, "t", []byte("x"), []byte("v")); !isCode(err, CodeNotFound) {
				t.Fatalf("round %d, client %d: put after drop: %v", round, i, err)
			}
		}
	}
}
