package api

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// The stream protocol: puts, gets and deletes over the Unix socket without
// JSON, base64 or an HTTP request each. The client opens one stream per
// Client with
//
//	POST /v1/stream HTTP/1.1
//	Cortex-Stream: 1
//	Transfer-Encoding: chunked
//
// and cortexd answers 200 with the same Cortex-Stream header (a cortexd
// without streams answers 404, and the client goes on with the JSON calls).
// Both bodies then carry frames (frame.go) in both directions at once: the
// client sends requests with ids of its choosing (not 0) without waiting
// for answers, and cortexd answers each one, in any order, with its id.
// Concurrent calls of one Client share the connection: what they send in
// the same moment goes out in one chunk, one write, and cortexd hands the
// puts to the table's writer as they are read, so they meet in one group
// commit; the answers ready at once go back in one write too.
//
// A frame over the size limit (the key and value limits plus 64 KiB) is
// answered with code too_large and skipped; a malformed one with code
// invalid; neither changes anything, and the stream goes on. An error with
// id 0 is about the stream itself (a frame too short to carry an id, or
// cortexd stopping): the stream ends after it. Streams are served on the
// Unix socket only (the local administrator); the mTLS listener answers
// the JSON calls, each checked against the caller's grants.

// StreamVersion is the version of the stream protocol (the Cortex-Stream
// header) this package speaks.
const StreamVersion = "1"

const streamHeader = "Cortex-Stream"

// Limits of a stream on the server's side.
const (
	// streamInFlight is how many requests of one stream are served at
	// once; reading the stream waits while that many are.
	streamInFlight = 256
	// streamReadBuffer is the buffer frames are read through.
	streamReadBuffer = 64 << 10
)

// frameLimit is the largest request frame a stream accepts.
func (s *Server) frameLimit() int64 {
	return int64(s.limits.MaxKeySize+s.limits.MaxValueSize) + 64<<10
}

// serveStream serves POST /v1/stream: it reads request frames and answers
// each from its own goroutine, at most streamInFlight at once, until the
// client closes its side or StopStreams is called; then it waits for the
// requests it read and sends their answers.
func (s *Server) serveStream(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method != http.MethodPost:
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeInvalid, Message: "use POST /v1/stream"})
		return
	case r.TLS != nil:
		writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "streams are served on the Unix socket only; use the JSON calls"})
		return
	case r.Header.Get(streamHeader) != StreamVersion:
		writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf(
			"stream protocol version %q: this cortexd speaks version %s", r.Header.Get(streamHeader), StreamVersion)})
		return
	case s.watch.stop.Err() != nil:
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "cortexd is stopping"})
		return
	}
	rc := http.NewResponseController(w)
	if err := rc.EnableFullDuplex(); err != nil {
		writeError(w, fmt.Errorf("stream: %w", err))
		return
	}
	w.Header().Set(streamHeader, StreamVersion)
	w.Header().Set("Content-Type", "application/octet-stream")
	w.WriteHeader(http.StatusOK)
	if rc.Flush() != nil {
		return
	}
	out := newBatchWriter()
	written := make(chan struct{})
	go func() {
		defer close(written)
		out.run(func(b []byte) error {
			if _, err := w.Write(b); err != nil {
				return err
			}
			return rc.Flush()
		})
	}()
	// StopStreams ends the reading: the deadline wakes a blocked read.
	stopRead := context.AfterFunc(s.watch.stop, func() { rc.SetReadDeadline(time.Now()) })
	defer stopRead()

	// The requests read are carried out and answered even when reading
	// ends: the connection's context is canceled as soon as a read of the
	// body fails (StopStreams, the client closing its side), and a JSON
	// call in flight is not canceled by a shutdown either.
	var calls sync.WaitGroup
	err := s.readStream(context.WithoutCancel(r.Context()), r.Body, out, &calls)
	calls.Wait()
	if s.watch.stop.Err() != nil {
		err = &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "cortexd is stopping"}
	}
	var ae *Error
	if errors.As(err, &ae) { // about the stream itself: its last frame
		out.add(func(b []byte) []byte { return appendResponse(b, &streamResponse{Err: ae}) })
	}
	out.close()
	<-written
}

// readStream reads request frames from body and hands each to a worker
// goroutine (counted in calls; at most streamInFlight). It returns at the body's end, when reading fails (an
// *Error when the stream is unusable: it is sent to the client as the
// stream's last frame), or when a started call could not send its answer.
func (s *Server) readStream(ctx context.Context, body io.Reader, out *batchWriter, calls *sync.WaitGroup) error {
	br := bufio.NewReaderSize(body, streamReadBuffer)
	limit := s.frameLimit()
	work := make(chan *streamRequest)
	defer close(work) // the workers end
	workers := 0
	var head [4]byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return err
		}
		n := int64(binary.BigEndian.Uint32(head[:]))
		if n < 4 {
			return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("stream: a frame of %d bytes has no id", n)}
		}
		if n > limit {
			if _, err := io.ReadFull(br, head[:]); err != nil {
				return err
			}
			id := binary.BigEndian.Uint32(head[:])
			if _, err := io.CopyN(io.Discard, br, n-4); err != nil {
				return err
			}
			err := &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: fmt.Sprintf("request of %d bytes is over the limit of %d", n, limit)}
			if out.add(func(b []byte) []byte { return appendResponse(b, &streamResponse{ID: id, Err: err}) }) != nil {
				return nil
			}
			continue
		}
		frame := make([]byte, n) // the call keeps it: its key and value alias it
		if _, err := io.ReadFull(br, frame); err != nil {
			return err
		}
		req, err := decodeRequest(frame)
		if err == nil && req.ID == 0 {
			err = fmt.Errorf("%w: request id 0", errFrame)
		}
		if err != nil {
			id, _ := frameID(frame)
			if id == 0 {
				return &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "stream: " + err.Error()}
			}
			ae := &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "malformed request: " + err.Error()}
			if out.add(func(b []byte) []byte { return appendResponse(b, &streamResponse{ID: id, Err: ae}) }) != nil {
				return nil
			}
			continue
		}
		// An idle worker takes the request, or a new one while there are
		// fewer than streamInFlight; else reading waits for one. Workers
		// live as long as the stream, so their stacks are grown once.
		select {
		case work <- &req:
			continue
		default:
		}
		if workers < streamInFlight {
			workers++
			calls.Add(1)
			go func() {
				defer calls.Done()
				for req := range work {
					resp := s.streamCall(ctx, req)
					out.add(func(b []byte) []byte { return appendResponse(b, &resp) })
				}
			}()
		}
		select {
		case work <- &req:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// streamCall answers one request as the JSON call of the same name would,
// for the local administrator.
func (s *Server) streamCall(ctx context.Context, req *streamRequest) streamResponse {
	resp := streamResponse{ID: req.ID}
	var err error
	switch req.Op {
	case opPut:
		var v WriteResult
		v, err = s.put(ctx, caller{}, &PutRequest{Table: req.Table, Key: req.Key, Value: req.Value})
		resp.HLC, resp.Origin = uint64(v.HLC), v.Origin
	case opDel:
		var v WriteResult
		v, err = s.del(ctx, caller{}, &KeyRequest{Table: req.Table, Key: req.Key})
		resp.HLC, resp.Origin = uint64(v.HLC), v.Origin
	case opGet:
		var rec Record
		rec, err = s.get(ctx, caller{}, &KeyRequest{Table: req.Table, Key: req.Key})
		resp.HLC, resp.Origin, resp.Key, resp.Value = uint64(rec.HLC), rec.Origin, rec.Key, rec.Value
	}
	if err != nil {
		code, status := classify(err)
		resp = streamResponse{ID: req.ID, Err: &Error{Status: status, Code: code, Message: err.Error()}}
	}
	return resp
}

// batchWriter gathers frames from many goroutines for one writer goroutine
// (run), which writes all that gathered while it was busy with one Write:
// frames ready at the same moment share a syscall.
type batchWriter struct {
	mu     sync.Mutex
	buf    []byte
	closed bool
	err    error
	wake   chan struct{}
}

func newBatchWriter() *batchWriter { return &batchWriter{wake: make(chan struct{}, 1)} }

// errWriterClosed is returned by add after close.
var errWriterClosed = errors.New("stream closed")

// add appends a frame (fn appends it to the buffer it is given) for the
// next write. It fails once the writer has failed or is closed.
func (w *batchWriter) add(fn func([]byte) []byte) error {
	w.mu.Lock()
	if w.err != nil {
		w.mu.Unlock()
		return w.err
	}
	w.buf = fn(w.buf)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return nil
}

// close makes run write what is gathered and return; add fails after it.
func (w *batchWriter) close() {
	w.mu.Lock()
	w.closed = true
	if w.err == nil {
		w.err = errWriterClosed
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// maxSpare is the largest buffer kept for reuse between writes.
const maxSpare = 1 << 20

// run writes the gathered frames with write until close, or until write
// fails (then add fails with its error).
func (w *batchWriter) run(write func([]byte) error) {
	var spare []byte
	for range w.wake {
		w.mu.Lock()
		buf, closed := w.buf, w.closed
		w.buf = spare[:0]
		w.mu.Unlock()
		if len(buf) > 0 {
			if err := write(buf); err != nil {
				w.mu.Lock()
				w.err, w.buf = fmt.Errorf("stream: write: %w", err), nil
				w.mu.Unlock()
				return
			}
		}
		if closed {
			return
		}
		if spare = buf; cap(spare) > maxSpare {
			spare = nil
		}
	}
}
