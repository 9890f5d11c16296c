package transport

import "errors"

// Errors returned by Client.Call. Every error Call returns satisfies exactly
// one of these tests, checked in this order:
//
//   - errors.Is(err, ErrNotSent): nothing happened remotely; safe to retry.
//   - errors.As(err, **RemoteError): the remote handler ran and returned an error.
//   - errors.Is(err, ErrConnLost) or errors.Is(err, ErrNoResponse): the request
//     was (or may have been) written, and no answer came back. The remote may
//     or may not have executed it: the outcome is unknown.
//
// When the caller's context ended, the error also wraps ctx.Err(), so
// errors.Is(err, context.DeadlineExceeded) still works.
var (
	// ErrNotSent: the request never left this node (the dial failed, the frame
	// was too large, the client was closed, or the context ended first).
	// Nothing happened remotely; the call is safe to retry.
	ErrNotSent = errors.New("transport: request not sent")

	// ErrConnLost: the connection failed after the request was handed to it.
	// The remote may or may not have executed the request.
	ErrConnLost = errors.New("transport: connection lost after request was sent")

	// ErrNoResponse: the caller's context ended after the request was sent and
	// before its response arrived. The remote may or may not have executed the
	// request. Always wrapped together with the context's error.
	ErrNoResponse = errors.New("transport: request sent, no response before the context ended")

	// ErrFrameTooLarge: a frame exceeded MaxFrameBytes. Returned wrapped with
	// ErrNotSent for an oversized request; an oversized incoming frame closes
	// the connection instead.
	ErrFrameTooLarge = errors.New("transport: frame too large")

	// ErrClosed: the Mux, its raft layer or the Client has been closed.
	ErrClosed = errors.New("transport: closed")
)

// RemoteError is returned by Call when the remote handler returned an error.
// Only the message travels, never the error's type or wrapped errors.
type RemoteError struct {
	Message string
}

func (e *RemoteError) Error() string {
	return "transport: remote error: " + e.Message
}

// Messages of the RemoteErrors produced by the transport itself rather than by
// a handler.
const (
	// MsgNotReady: the remote Mux has no RPC handler yet (SetRPCHandler not
	// called). The handler did not run; retrying later is safe.
	MsgNotReady = "node not ready"
)
