package api

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
	"github.com/cortex-mesh/cortex/wal"
)

// Watching a table: POST /v1/watch streams every change this node applies
// to a table copy (its local writes and the remote entries it adopts), in
// the order it applies them, as HTTP/1.1 chunked JSON lines:
//
//	{"watching":"fruit","node":"home","log_id":"…","from":42}       first line
//	{"offset":42,"op":"put","key":"…","value":"…","hlc":"…","hlc_time":"…","origin":"office"}
//	{"offset":43,"op":"del","key":"…","value":null,"hlc":"…","hlc_time":"…","origin":"home"}
//	{"error":"…","code":"truncated"}                                   last line, if the server ends it
//
// Keys and values are base64, as in every API call; hlc is a decimal
// string, hlc_time the wall time it encodes (as in get and scan). The stream reads the
// copy's log (tables.Table.Changes), which holds exactly the changes
// applied there, so a watcher never slows the writer: it only falls behind.
// If it falls so far behind that its offset is cut from the log (the log
// keeps --wal-retention entries behind its newest checkpoint), the stream
// ends with code "truncated". A watcher whose connection takes no bytes for
// watchStallTimeout is dropped. The stream ends when the client goes away,
// when the copy closes (table dropped or handed off), when cortexd stops
// (code "unavailable"), and when the caller loses its read permission (code
// "denied", checked again before every batch).

// WatchRequest asks for a table's changes: those to keys starting with
// Prefix, from offset From of this node's log (0: from its end, i.e. the
// changes applied from now on).
type WatchRequest struct {
	Table  string `json:"table"`
	Prefix []byte `json:"prefix,omitempty"`
	From   uint64 `json:"from,omitempty"`
}

// WatchStart is the first line of a watch stream: the table, the node, the
// copy's log and the offset the stream starts at. Offsets mean something
// only within one log (log_id): a copy rebuilt from a snapshot has a new one.
type WatchStart struct {
	Watching string `json:"watching"`
	Node     string `json:"node"`
	LogID    string `json:"log_id"`
	From     uint64 `json:"from"`
}

// Change is one change applied to a table copy: its offset in the copy's
// log, the operation ("put" or "del"; a del has no value), the key, the
// value and the version (hlc, origin: the node that made the write).
type Change struct {
	Offset  uint64           `json:"offset"`
	Op      string           `json:"op"`
	Key     []byte           `json:"key"`
	Value   []byte           `json:"value"`
	HLC     tables.Timestamp `json:"hlc"`
	HLCTime string           `json:"hlc_time"`
	Origin  string           `json:"origin"`
}

// watchStallTimeout is how long a watch stream may wait for its connection
// to take a batch before the watcher is dropped.
const watchStallTimeout = 30 * time.Second

// watchBatch is the most entries a stream reads from the log at once.
const watchBatch = 1024

// watchState is the server's side of its watch streams.
type watchState struct {
	stall  time.Duration   // watchStallTimeout unless a test sets it
	stop   context.Context // done once StopStreams is called
	cancel context.CancelFunc
	active atomic.Int64 // streams being served
}

func newWatchState() *watchState {
	ctx, cancel := context.WithCancel(context.Background())
	return &watchState{stall: watchStallTimeout, stop: ctx, cancel: cancel}
}

// StopStreams ends every watch stream (each gets a last line saying that
// cortexd is stopping) and every put stream (stream.go: the requests read
// are answered, then a last frame says so), and refuses new ones. http.Server.Shutdown waits for
// active requests, so register it with RegisterOnShutdown.
func (s *Server) StopStreams() { s.watch.cancel() }

// Watchers returns the number of watch streams being served.
func (s *Server) Watchers() int { return int(s.watch.active.Load()) }

// bodyLimit is the largest request body any call accepts.
func (s *Server) bodyLimit() int64 {
	return int64(s.limits.MaxValueSize+s.limits.MaxKeySize)*4/3 + 64<<10
}

// decodeRequest reads a POST body into req as route does: bounded, strict
// (unknown fields are refused). It answers the error itself and returns
// false when the request is refused.
func (s *Server) decodeRequest(w http.ResponseWriter, r *http.Request, name string, req any) bool {
	if r.Method != http.MethodPost {
		writeError(w, &Error{Status: http.StatusMethodNotAllowed, Code: CodeInvalid, Message: "use POST /v1/" + name})
		return false
	}
	limit := s.bodyLimit()
	if r.ContentLength > limit {
		writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: fmt.Sprintf("request body of %d bytes is over the limit of %d", r.ContentLength, limit), Limits: &s.limits})
		return false
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(req); err != nil && !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeTooLarge, Message: fmt.Sprintf("request body is over the limit of %d bytes", limit), Limits: &s.limits})
			return false
		}
		writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: "malformed request: " + err.Error()})
		return false
	}
	return true
}

// verifiedCert is the verified client certificate of a request over the mTLS
// listener, nil on the Unix socket.
func verifiedCert(r *http.Request) *x509.Certificate {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return nil
	}
	return r.TLS.VerifiedChains[0][0]
}

// allowedToWatch checks, again, what the stream's caller had to pass to start it:
// its admission (registered, not revoked, pinned certificate) and its read
// permission on the table. A grant revoked while a stream is open ends the
// stream before its next batch.
func (s *Server) allowedToWatch(r *http.Request, c caller, table string) error {
	if cert := verifiedCert(r); cert != nil {
		if err := s.admit(cert); err != nil {
			return err
		}
	}
	return s.check(c, table, store.PermRead)
}

// serveWatch answers POST /v1/watch.
func (s *Server) serveWatch(w http.ResponseWriter, r *http.Request) {
	var req WatchRequest
	if !s.decodeRequest(w, r, "watch", &req) {
		return
	}
	// Read the body to its end: only then does the server start the
	// background read that notices the client closing its connection.
	io.Copy(io.Discard, io.LimitReader(r.Body, s.bodyLimit()))
	c := callerOf(r)
	t, err := s.table(c, req.Table, store.PermRead)
	if err != nil {
		writeError(w, err)
		return
	}
	if s.watch.stop.Err() != nil {
		writeError(w, &Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: "cortexd is stopping"})
		return
	}
	first, last := t.Bounds()
	from := req.From
	switch {
	case from == 0:
		from = last + 1
	case from < first:
		writeError(w, &Error{Status: http.StatusGone, Code: CodeTruncated, Message: fmt.Sprintf(
			"offset %d is no longer in the log of table %s on %s (it starts at %d)", from, req.Table, s.store.Node(), first)})
		return
	case from > last+1:
		writeError(w, &Error{Status: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf(
			"offset %d is past the end of the log of table %s on %s (the next offset is %d)", from, req.Table, s.store.Node(), last+1)})
		return
	}

	s.watch.active.Add(1)
	defer s.watch.active.Add(-1)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.watch.stop, cancel)()

	// The request is read: no read deadline of the server's (the mTLS
	// listener's ReadTimeout) may end the stream, since a read error on
	// the connection cancels the request's context. That background read
	// is also how the end of the client's connection is noticed.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Time{})
	who := c.identity
	if who == "" {
		who = "(socket)"
	}
	sent, why := 0, ""
	s.log.Info("watch started", "table", req.Table, "identity", who, "from", from)
	defer func() { s.log.Info("watch ended", "table", req.Table, "identity", who, "changes", sent, "why", why) }()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	// send writes buf out and flushes it, dropping a watcher whose
	// connection does not take it within the stall timeout.
	send := func() error {
		rc.SetWriteDeadline(time.Now().Add(s.watch.stall))
		_, err := w.Write(buf.Bytes())
		if err == nil {
			err = rc.Flush()
		}
		buf.Reset()
		return err
	}
	// end sends the last line, which says why the stream ends.
	end := func(err error) {
		code, _ := classify(err)
		why = code + ": " + err.Error()
		enc.Encode(ErrorBody{Error: err.Error(), Code: code})
		send()
	}
	enc.Encode(WatchStart{Watching: req.Table, Node: s.store.Node(), LogID: t.LogID(), From: from})
	if err := send(); err != nil {
		why = "the client did not take the stream: " + err.Error()
		return
	}
	for {
		recs, err := t.Changes(ctx, from, watchBatch)
		switch {
		case err == nil:
		case s.watch.stop.Err() != nil:
			end(&Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: fmt.Sprintf("cortexd on %s is stopping: the watch ends", s.store.Node())})
			return
		case r.Context().Err() != nil:
			why = "the client went away"
			return
		case errors.Is(err, wal.ErrTruncated):
			first, _ := t.Bounds()
			end(&Error{Status: http.StatusGone, Code: CodeTruncated, Message: fmt.Sprintf(
				"the watcher fell behind the log's retention: offset %d is no longer in the log of table %s on %s (it starts at %d); start it again",
				from, req.Table, s.store.Node(), first)})
			why += " (" + err.Error() + ")" // retention, or a damaged entry cut (logged by the table)
			return
		case errors.Is(err, tables.ErrClosed):
			end(&Error{Status: http.StatusServiceUnavailable, Code: CodeUnavailable, Message: fmt.Sprintf(
				"the copy of table %s on %s was closed (the table was dropped or handed off, or cortexd is stopping): the watch ends",
				req.Table, s.store.Node())})
			return
		default:
			end(err)
			return
		}
		if len(recs) == 0 { // Changes returns one at least; the index below relies on it
			continue
		}
		if err := s.allowedToWatch(r, c, req.Table); err != nil {
			end(err)
			return
		}
		for _, rec := range recs {
			if !bytes.HasPrefix(rec.Key, req.Prefix) {
				continue
			}
			h := tables.Timestamp(rec.Version.HLC)
			ch := Change{Offset: rec.Offset, Op: rec.Op.String(), Key: rec.Key, HLC: h, HLCTime: h.Time(), Origin: rec.Version.Origin}
			if rec.Op == wal.OpPut {
				ch.Value = rec.Value
				if ch.Value == nil {
					ch.Value = []byte{}
				}
			}
			enc.Encode(ch)
			sent++
		}
		from = recs[len(recs)-1].Offset + 1
		if buf.Len() == 0 {
			continue
		}
		if err := send(); err != nil {
			if r.Context().Err() != nil {
				why = "the client went away"
			} else {
				why = fmt.Sprintf("dropped: the connection took no bytes for %s or failed: %v", s.watch.stall, err)
			}
			return
		}
	}
}

// Watch calls fn with every change this node applies to table (those to
// keys starting with prefix) from now on, in the order it applies them,
// until ctx ends (it then returns ctx's error), fn returns an error (it
// returns that error) or cortexd ends the stream (an *Error: code
// "truncated" if the watcher fell behind the log's retention, "denied" if
// its read permission was revoked, "unavailable" if cortexd is stopping or
// the copy was closed).
func (c *Client) Watch(ctx context.Context, table, prefix string, fn func(Change) error) error {
	return c.WatchStream(ctx, WatchRequest{Table: table, Prefix: []byte(prefix)}, nil, fn)
}

// WatchStream is Watch with every option of the request; started, if not
// nil, is called with the stream's first line before any change.
func (c *Client) WatchStream(ctx context.Context, req WatchRequest, started func(WatchStart) error, fn func(Change) error) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"watch", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hresp, err := c.http.Do(hreq)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("%w at %s: %w", ErrUnreachable, c.where, err)
	}
	defer hresp.Body.Close()
	if hresp.StatusCode != http.StatusOK {
		data, err := io.ReadAll(io.LimitReader(hresp.Body, 1<<20))
		if err != nil {
			return fmt.Errorf("watch: read response: %w", err)
		}
		var eb ErrorBody
		if json.Unmarshal(data, &eb) != nil || eb.Code == "" {
			return &Error{Status: hresp.StatusCode, Code: CodeInternal, Message: fmt.Sprintf("watch: HTTP %d: %s", hresp.StatusCode, bytes.TrimSpace(data))}
		}
		return &Error{Status: hresp.StatusCode, Code: eb.Code, Message: eb.Error}
	}
	dec := json.NewDecoder(hresp.Body)
	for {
		// One line of the stream: a start, a change or an end. Lines of
		// other shapes (added later) are skipped.
		var line struct {
			WatchStart
			Change
			ErrorBody
		}
		if err := dec.Decode(&line); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%w at %s: the watch stream broke off (%w): cortexd stopped, the connection failed, or cortexd dropped the watcher for not taking its changes",
				ErrUnreachable, c.where, err)
		}
		switch {
		case line.Code != "":
			return &Error{Status: hresp.StatusCode, Code: line.Code, Message: line.ErrorBody.Error}
		case line.Watching != "":
			if started != nil {
				if err := started(line.WatchStart); err != nil {
					return err
				}
			}
		case line.Op != "":
			if err := fn(line.Change); err != nil {
				return err
			}
		}
	}
}
