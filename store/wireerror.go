package store

import (
	"errors"
	"fmt"
	"strings"
)

// The wire error codec: how an error crosses the peer port. Every answer
// carries a status byte, the outcome class the caller acts on (retry at the
// leader, outcome unknown, refused); membership answers carry, besides, the
// number of the sentinel itself, so an operator's "node not found" arrives as
// ErrNodeNotFound. Both numbers come from one table, wireErrors. They are
// part of the protocol: nodes of an older build send and read them, so a row
// is never renumbered, only added.

// rpcStatus is the outcome class of a peer call (the status byte).
type rpcStatus uint8

const (
	statusOK             rpcStatus = 0
	statusNotCommitted   rpcStatus = 1 // not leader / not enqueued: retry at the leader
	statusOutcomeUnknown rpcStatus = 2
	statusShuttingDown   rpcStatus = 3 // the leader is stopping; nothing committed by this call
	statusFailed         rpcStatus = 4 // any other error; message says what
	// statusClockOffset: not committed because the leader's clock is out of
	// bound (clock.go); retry once leadership has moved.
	statusClockOffset rpcStatus = 5
	// statusQuotaExceeded: ErrQuotaExceeded, refused and nothing written.
	statusQuotaExceeded rpcStatus = 6
	// statusInvalid + n: the leader refused the write as breaking a rule
	// (the validation sentinel numbered n below); the message is the reason.
	// Nothing was proposed. A node that predates it reads statusFailed's
	// meaning.
	statusInvalid rpcStatus = 16
	// statusUnauthenticated: the leader refused the request because the
	// connection it came on is not a member's (ErrPeerUnauthenticated).
	statusUnauthenticated rpcStatus = 32
)

// wireErrors numbers the errors the peer protocol carries. An error is sent
// with the status of the first row it wraps whose status is not statusFailed
// (so the order of rows is the order of precedence), and with the smallest
// sentinel number among the rows it wraps (0: none).
var wireErrors = []struct {
	err    error
	status rpcStatus
	kind   uint8 // the sentinel's number in membership answers; 0: not sent
}{
	{ErrClockOffset, statusClockOffset, 10},
	{errNotCommitted, statusNotCommitted, 0},
	{errNotReadyLeader, statusNotCommitted, 0},
	{ErrOutcomeUnknown, statusOutcomeUnknown, 0},
	{ErrShuttingDown, statusShuttingDown, 0},
	{ErrQuotaExceeded, statusQuotaExceeded, 0},
	{ErrPeerUnauthenticated, statusUnauthenticated, 9},
	{ErrNodeNotFound, statusFailed, 1},
	{ErrLastVoter, statusFailed, 2},
	{ErrNodeConflict, statusFailed, 3},
	{ErrNotVoter, statusFailed, 4},
	{ErrTransferFailed, statusFailed, 5},
	{ErrInvalidNode, statusFailed, 6},
	{ErrNoLeader, statusFailed, 7},
	{ErrTimeout, statusFailed, 8},
	// Validation errors travel inside an *InvalidError, its Reason as the
	// message.
	{ErrInvalidKey, statusInvalid + 1, 0},
	{ErrInvalidPrefix, statusInvalid + 2, 0},
	{ErrInvalidValue, statusInvalid + 3, 0},
	{ErrValueTooLarge, statusInvalid + 4, 0},
	{ErrInvalidTTL, statusInvalid + 5, 0},
	{ErrInvalidIdempotencyKey, statusInvalid + 6, 0},
	{ErrInvalidWrite, statusInvalid + 7, 0},
}

// wireError is an error as an answer carries it.
type wireError struct {
	status rpcStatus
	kind   uint8 // sent only in membership answers
	msg    string
}

// toWire encodes err (nil: statusOK). A refused write's message is its reason
// alone (the status names the rule); any other message is the whole error.
func toWire(err error) wireError {
	if err == nil {
		return wireError{}
	}
	w := wireError{status: statusFailed, msg: err.Error()}
	var ie *InvalidError
	invalid := errors.As(err, &ie)
	for _, row := range wireErrors {
		if !errors.Is(err, row.err) {
			continue
		}
		if row.status >= statusInvalid && row.status < statusUnauthenticated && (!invalid || ie.Err != row.err) {
			continue
		}
		if w.status == statusFailed {
			w.status = row.status
		}
		if row.kind != 0 && (w.kind == 0 || row.kind < w.kind) {
			w.kind = row.kind
		}
	}
	if invalid && w.status >= statusInvalid && w.status < statusUnauthenticated {
		w.msg = ie.Reason
	}
	return w
}

// statusOf is err's status byte.
func statusOf(err error) rpcStatus { return toWire(err).status }

// err turns an answer's error back into this node's error values. An answer
// that names a sentinel is that sentinel; otherwise the status decides. A
// leader that is shutting down did not commit: the caller retries elsewhere.
func (w wireError) err() error {
	for _, row := range wireErrors {
		if w.kind != 0 && row.kind == w.kind {
			return fmt.Errorf("%w: leader: %s", row.err, w.msg)
		}
	}
	switch w.status {
	case statusOK:
		return nil
	case statusNotCommitted, statusShuttingDown:
		return fmt.Errorf("%w: leader: %s", errNotCommitted, w.msg)
	case statusOutcomeUnknown:
		return fmt.Errorf("%w: leader: %s", ErrOutcomeUnknown, w.msg)
	case statusQuotaExceeded:
		return fmt.Errorf("%w: %s", ErrQuotaExceeded, strings.TrimPrefix(w.msg, ErrQuotaExceeded.Error()+": "))
	case statusClockOffset:
		return fmt.Errorf("%w: %w: leader: %s", errNotCommitted, ErrClockOffset, w.msg)
	case statusUnauthenticated:
		return fmt.Errorf("%w: leader: %s", ErrPeerUnauthenticated, w.msg)
	}
	for _, row := range wireErrors {
		if row.status == w.status && w.status > statusInvalid && w.status < statusUnauthenticated {
			return &InvalidError{Err: row.err, Reason: w.msg}
		}
	}
	return fmt.Errorf("store: leader: %s", w.msg)
}

// errString is err's message ("" for nil), for answers that carry the status
// and the whole message (the read methods, readat.go).
func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
