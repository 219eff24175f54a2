package api

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The stream protocol's frames (stream.go). Every frame is
//
//	u32 length of what follows (big-endian) | u32 id | u8 op or status | fields
//
// A request's fields are its table and key, each a uvarint length and the
// bytes, then, for a put, the value: the rest of the frame, raw (no base64,
// no length of its own). A response has the id of its request and either
//
//	status 0 (ok): u64 hlc | uvarint length, origin | uvarint length, key | value: the rest
//
// (a put's or a delete's answer has no key and no value), or
//
//	status 1 (error): uvarint HTTP status | uvarint length, code | message: the rest
//
// with the code and status an HTTP call would have answered (errors.go).

// Ops of a stream request.
const (
	opPut byte = 1
	opGet byte = 2
	opDel byte = 3
)

// Status of a stream response.
const (
	statusOK    byte = 0
	statusError byte = 1
)

// frameHeader is the length prefix and the id and op (or status) byte.
const frameHeader = 4 + 4 + 1

// errFrame is wrapped by every decoding error of a frame.
var errFrame = errors.New("malformed frame")

// streamRequest is one call in a stream: a put, get or delete of Key in Table.
type streamRequest struct {
	ID    uint32
	Op    byte
	Table string
	Key   []byte
	Value []byte // puts only
}

// streamResponse answers the request of the same ID: a record (or a write's
// version) when Err is nil, else the error.
type streamResponse struct {
	ID     uint32
	HLC    uint64
	Origin string
	Key    []byte
	Value  []byte
	Err    *Error
}

// appendRequest appends r as a frame to buf.
func appendRequest(buf []byte, r *streamRequest) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, r.ID)
	buf = append(buf, r.Op)
	buf = appendBytes(buf, []byte(r.Table))
	buf = appendBytes(buf, r.Key)
	if r.Op == opPut {
		buf = append(buf, r.Value...)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
	return buf
}

// appendResponse appends r as a frame to buf.
func appendResponse(buf []byte, r *streamResponse) []byte {
	start := len(buf)
	buf = append(buf, 0, 0, 0, 0)
	buf = binary.BigEndian.AppendUint32(buf, r.ID)
	if r.Err != nil {
		buf = append(buf, statusError)
		buf = binary.AppendUvarint(buf, uint64(r.Err.Status))
		buf = appendBytes(buf, []byte(r.Err.Code))
		buf = append(buf, r.Err.Message...)
	} else {
		buf = append(buf, statusOK)
		buf = binary.BigEndian.AppendUint64(buf, r.HLC)
		buf = appendBytes(buf, []byte(r.Origin))
		buf = appendBytes(buf, r.Key)
		buf = append(buf, r.Value...)
	}
	binary.BigEndian.PutUint32(buf[start:], uint32(len(buf)-start-4))
	return buf
}

func appendBytes(buf, b []byte) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(b))), b...)
}

// frameID returns the id of a frame's body (the bytes after its length), so
// that an error about a malformed request can still be addressed to it.
func frameID(body []byte) (uint32, bool) {
	if len(body) < 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(body), true
}

// decodeRequest decodes a request frame's body (the bytes after its length).
// Key and Value alias body.
func decodeRequest(body []byte) (streamRequest, error) {
	var r streamRequest
	if len(body) < frameHeader-4 {
		return r, fmt.Errorf("%w: %d bytes, shorter than a request's header", errFrame, len(body))
	}
	r.ID, r.Op = binary.BigEndian.Uint32(body), body[4]
	rest := body[5:]
	switch r.Op {
	case opPut, opGet, opDel:
	default:
		return r, fmt.Errorf("%w: unknown op %d", errFrame, r.Op)
	}
	table, rest, err := takeBytes(rest, "table")
	if err != nil {
		return r, err
	}
	r.Table = string(table)
	if r.Key, rest, err = takeBytes(rest, "key"); err != nil {
		return r, err
	}
	if r.Op == opPut {
		r.Value = rest
	} else if len(rest) > 0 {
		return r, fmt.Errorf("%w: %d bytes after the key of a get or delete", errFrame, len(rest))
	}
	return r, nil
}

// decodeResponse decodes a response frame's body. Key and Value alias body.
func decodeResponse(body []byte) (streamResponse, error) {
	var r streamResponse
	if len(body) < frameHeader-4 {
		return r, fmt.Errorf("%w: %d bytes, shorter than a response's header", errFrame, len(body))
	}
	r.ID = binary.BigEndian.Uint32(body)
	status, rest := body[4], body[5:]
	switch status {
	case statusOK:
		if len(rest) < 8 {
			return r, fmt.Errorf("%w: no version", errFrame)
		}
		r.HLC, rest = binary.BigEndian.Uint64(rest), rest[8:]
		origin, rest, err := takeBytes(rest, "origin")
		if err != nil {
			return r, err
		}
		r.Origin = string(origin)
		if r.Key, rest, err = takeBytes(rest, "key"); err != nil {
			return r, err
		}
		r.Value = rest
		return r, nil
	case statusError:
		code, n := uvarint(rest)
		if n <= 0 || code < 100 || code > 599 {
			return r, fmt.Errorf("%w: bad HTTP status in an error", errFrame)
		}
		name, rest, err := takeBytes(rest[n:], "error code")
		if err != nil {
			return r, err
		}
		if len(name) == 0 {
			return r, fmt.Errorf("%w: an error without a code", errFrame)
		}
		r.Err = &Error{Status: int(code), Code: string(name), Message: string(rest)}
		return r, nil
	}
	return r, fmt.Errorf("%w: unknown status %d", errFrame, status)
}

// takeBytes splits a uvarint-length-prefixed field off b.
func takeBytes(b []byte, what string) (field, rest []byte, err error) {
	n, k := uvarint(b)
	if k <= 0 {
		return nil, nil, fmt.Errorf("%w: no length of the %s", errFrame, what)
	}
	b = b[k:]
	if n > uint64(len(b)) {
		return nil, nil, fmt.Errorf("%w: the %s's length %d is past the frame's end (%d bytes left)", errFrame, what, n, len(b))
	}
	return b[:n:n], b[n:], nil
}

// uvarint is binary.Uvarint that takes only the shortest encoding of a
// number (so that a frame has one meaning and one form); k <= 0 otherwise.
func uvarint(b []byte) (n uint64, k int) {
	n, k = binary.Uvarint(b)
	if k > 1 && b[k-1] == 0 { // a last byte of 0 adds nothing
		return 0, -1
	}
	return n, k
}
