package api

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The client's side of the stream protocol (stream.go): a Client made by
// Dial sends Put, Get and Delete over one stream, opened at the first of
// them and again after it breaks. A daemon that has no streams (an older
// cortexd, or anything that does not answer the stream's header) gets the
// JSON calls instead, from then on.

// streamReadLimit bounds a response frame the client reads: the largest
// value any cortexd accepts with room for the rest.
const streamReadLimit = 64<<20 + 64<<10

// clientStream is one open stream and its two goroutines: the writer sends
// what calls queue (all that queued during a write in the next one), the
// reader hands each response to its call.
type clientStream struct {
	conn    net.Conn
	where   string // the socket
	out     *batchWriter
	mu      sync.Mutex
	pending map[uint32]chan streamResponse
	next    uint32
	err     error         // set once the stream is broken: calls fail with it
	done    chan struct{} // closed when both goroutines have returned
}

// streamResult is what a call on a stream ended with: handled is false when
// the call must be made with JSON instead (the daemon has no streams, or
// could not be reached: the JSON call reports that as it always has).
type streamResult struct {
	resp    streamResponse
	handled bool
	err     error
}

// streamDo makes one call over the client's stream.
func (c *Client) streamDo(ctx context.Context, req *streamRequest) streamResult {
	st, handled, err := c.openStream(ctx)
	if !handled || err != nil {
		return streamResult{handled: handled, err: err}
	}
	resp, err := st.do(ctx, req)
	if err != nil {
		return streamResult{handled: true, err: err}
	}
	if resp.Err != nil {
		return streamResult{handled: true, err: resp.Err}
	}
	return streamResult{resp: resp, handled: true}
}

// openStream returns the client's open stream, opening one if there is none
// (or it broke). handled is false when the call should use JSON.
func (c *Client) openStream(ctx context.Context) (*clientStream, bool, error) {
	if c.socket == "" {
		return nil, false, nil
	}
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.noStream {
		return nil, false, nil
	}
	if c.stream != nil {
		if c.stream.broken() == nil {
			return c.stream, true, nil
		}
		c.stream.close()
		c.stream = nil
	}
	st, fallback, err := dialStream(ctx, c.socket)
	switch {
	case err != nil && ctx.Err() != nil:
		return nil, true, ctx.Err()
	case err != nil:
		return nil, false, nil // the JSON call says why it cannot reach cortexd
	case fallback != 0:
		// An older cortexd (404) or one that refuses this version: JSON from
		// now on. Anything else (stopping: 503) only this time.
		c.noStream = fallback == http.StatusNotFound || fallback == http.StatusBadRequest || fallback == http.StatusMethodNotAllowed
		return nil, false, nil
	}
	c.stream = st
	return st, true, nil
}

// closeStream closes the client's stream, if any, and waits for its
// goroutines.
func (c *Client) closeStream() {
	c.smu.Lock()
	defer c.smu.Unlock()
	if c.stream != nil {
		c.stream.close()
		c.stream = nil
	}
}

// dialStream connects to socket and opens a stream. fallback is the HTTP
// status of an answer that is not a stream (0 when it is one).
func dialStream(ctx context.Context, socket string) (st *clientStream, fallback int, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, 0, err
	}
	// Until the stream is open the call's context bounds it.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	hresp, fallback, err := openStreamOn(conn)
	if !stop() && err == nil {
		err = ctx.Err() // the deadline may be set: the connection is spent
	}
	if err != nil || fallback != 0 {
		conn.Close()
		return nil, fallback, err
	}
	st = &clientStream{conn: conn, where: socket, out: newBatchWriter(), pending: map[uint32]chan streamResponse{}, done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		st.out.run(func(b []byte) error { return writeChunk(conn, b) })
		st.fail(errors.New("stream closed")) // run returns when a write fails or on close
		conn.Close()                         // and the reader stops
	}()
	go func() {
		defer wg.Done()
		st.fail(st.read(hresp.Body))
		st.out.close()
	}()
	go func() { wg.Wait(); close(st.done) }()
	return st, 0, nil
}

// openStreamOn sends the stream's request on conn and reads the answer's
// header. fallback is the HTTP status of an answer that is not a stream.
// The request expects 100-continue so that a server without streams
// answers at once instead of first reading a body that has no end.
func openStreamOn(conn net.Conn) (*http.Response, int, error) {
	if _, err := io.WriteString(conn, "POST /v1/stream HTTP/1.1\r\nHost: cortexd\r\n"+streamHeader+": "+StreamVersion+
		"\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"); err != nil {
		return nil, 0, fmt.Errorf("open stream: %w", err)
	}
	br := bufio.NewReaderSize(conn, streamReadBuffer)
	hresp, err := http.ReadResponse(br, &http.Request{Method: http.MethodPost})
	for err == nil && hresp.StatusCode < http.StatusOK { // 100 Continue
		hresp, err = http.ReadResponse(br, &http.Request{Method: http.MethodPost})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("open stream: %w", err)
	}
	if hresp.StatusCode != http.StatusOK || hresp.Header.Get(streamHeader) != StreamVersion {
		hresp.Body.Close()
		return nil, max(hresp.StatusCode, 1), nil
	}
	return hresp, 0, nil
}

// writeChunk writes b as one HTTP/1.1 chunk, with one writev.
func writeChunk(w io.Writer, b []byte) error {
	var head [18]byte
	h := append(strconv.AppendUint(head[:0], uint64(len(b)), 16), "\r\n"...)
	bufs := net.Buffers{h, b, []byte("\r\n")}
	_, err := bufs.WriteTo(w)
	return err
}

// read hands each response frame to its call until the stream ends, and
// returns why it ended.
func (st *clientStream) read(body io.Reader) error {
	br := bufio.NewReaderSize(body, streamReadBuffer)
	var head [4]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("cortexd closed the stream")
			}
			return err
		}
		n := int(uint32(head[0])<<24 | uint32(head[1])<<16 | uint32(head[2])<<8 | uint32(head[3]))
		if n > streamReadLimit {
			return fmt.Errorf("%w: a response of %d bytes is over the limit of %d", errFrame, n, streamReadLimit)
		}
		frame := make([]byte, n)
		if _, err := io.ReadFull(br, frame); err != nil {
			return err
		}
		resp, err := decodeResponse(frame)
		if err != nil {
			return err
		}
		if resp.ID == 0 { // about the stream: it ends
			if resp.Err == nil {
				return fmt.Errorf("%w: an answer with id 0", errFrame)
			}
			return resp.Err
		}
		st.mu.Lock()
		ch, ok := st.pending[resp.ID]
		delete(st.pending, resp.ID)
		st.mu.Unlock()
		if ok { // not ok: its caller gave up
			ch <- resp
		}
	}
}

// fail breaks the stream with err (the first error is kept) and fails the
// calls still waiting.
func (st *clientStream) fail(err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.err == nil {
		st.err = err
	}
	for id, ch := range st.pending {
		delete(st.pending, id)
		close(ch)
	}
}

func (st *clientStream) broken() error {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err
}

// close ends the stream and waits for its goroutines.
func (st *clientStream) close() {
	st.fail(errors.New("client closed"))
	st.out.close()
	<-st.done
}

// do sends req and waits for its answer. A broken stream fails the call
// with ErrUnreachable (the request may or may not have been carried out).
func (st *clientStream) do(ctx context.Context, req *streamRequest) (streamResponse, error) {
	ch := make(chan streamResponse, 1)
	st.mu.Lock()
	if st.err != nil {
		err := st.err
		st.mu.Unlock()
		return streamResponse{}, st.unreachable(err)
	}
	st.next++
	for st.next == 0 || st.pending[st.next] != nil { // 0 is the stream's own
		st.next++
	}
	id := st.next
	st.pending[id] = ch
	st.mu.Unlock()
	r := *req
	r.ID = id
	if err := st.out.add(func(b []byte) []byte { return appendRequest(b, &r) }); err != nil {
		st.fail(err)
		return streamResponse{}, st.unreachable(err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return streamResponse{}, st.unreachable(st.broken())
		}
		return resp, nil
	case <-ctx.Done():
		st.mu.Lock()
		delete(st.pending, id)
		st.mu.Unlock()
		return streamResponse{}, ctx.Err()
	}
}

// unreachable wraps why the stream broke: an error cortexd sent about the
// stream (it is stopping) as it is, anything else as ErrUnreachable.
func (st *clientStream) unreachable(err error) error {
	var ae *Error
	if errors.As(err, &ae) {
		return ae
	}
	return fmt.Errorf("%w at %s: the stream broke: %w", ErrUnreachable, st.where, err)
}
