package api

import (
	"errors"
	"net/http"

	"github.com/cortex-mesh/cortex/store"
	"github.com/cortex-mesh/cortex/tables"
)

// Error codes carried in ErrorBody.Code.
const (
	CodeInvalid     = "invalid"     // bad input: nothing changed
	CodeNotFound    = "not_found"   // unknown table, key or identity
	CodeExists      = "exists"      // creating what exists
	CodeNotHeld     = "not_held"    // the table lives on other nodes
	CodeDenied      = "denied"      // the ACLs, or this node's role, do not allow it
	CodeConflict    = "conflict"    // several tables have the name
	CodeTooLarge    = "too_large"   // the request body is over the limit
	CodeUnavailable = "unavailable" // the node is stopping or a table has failed
	CodeTruncated   = "truncated"   // a watched offset is no longer in the log
	// CodeNeedsConfirm: the change is risky (fewer copies, no reachable
	// holder); the message shows it; nothing changed. Send it again with
	// Overrides.Confirmed to go on.
	CodeNeedsConfirm = "needs_confirmation"
	CodeInternal     = "internal"
)

// Error is an error answered by cortexd.
type Error struct {
	Status  int
	Code    string
	Message string
	// Limits are, for CodeTooLarge, the node's limits on keys and values,
	// from which a client that knows what it sent says which was over.
	Limits *tables.Limits
}

func (e *Error) Error() string { return e.Message }

// classify maps a store error to its code and HTTP status.
func classify(err error) (string, int) {
	var ae *Error
	switch {
	case errors.As(err, &ae):
		return ae.Code, ae.Status
	case errors.Is(err, tables.ErrInvalid):
		return CodeInvalid, http.StatusBadRequest
	case errors.Is(err, store.ErrNoTable), errors.Is(err, tables.ErrNotFound), errors.Is(err, store.ErrNoIdentity), errors.Is(err, store.ErrNoNode):
		return CodeNotFound, http.StatusNotFound
	case errors.Is(err, store.ErrDenied):
		return CodeDenied, http.StatusForbidden
	case errors.Is(err, store.ErrConflict):
		return CodeConflict, http.StatusConflict
	case errors.Is(err, store.ErrExists):
		return CodeExists, http.StatusConflict
	case errors.Is(err, store.ErrNotHeld), errors.Is(err, tables.ErrFenced):
		return CodeNotHeld, http.StatusMisdirectedRequest
	case errors.Is(err, tables.ErrClosed):
		return CodeUnavailable, http.StatusServiceUnavailable
	}
	return CodeInternal, http.StatusInternalServerError
}
