package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// writeFrameOverhead bounds everything a forwarded write's frame carries
// besides its value: the transport's 21-byte frame header and the request's
// fields at their largest (a MaxKeyBytes key, a MaxIdempotencyKeyBytes key
// with its longest caller scope,
// the fingerprint, varints at full width), with room to spare.
// TestWriteFrameFitsLargestValue checks the sum.
const writeFrameOverhead = 4 << 10

// FrameBytesFor is the smallest peer-port frame limit
// (transport.Config.MaxFrameBytes) that carries a forwarded write of a
// maxValueBytes value: with a smaller one, the largest legal value could not
// be written through a follower. Open refuses a Mux whose limit is smaller.
func FrameBytesFor(maxValueBytes int64) int {
	return int(maxValueBytes) + writeFrameOverhead
}

// rpcStatus is the outcome class of a forwarded call; it carries the meaning of
// the store's sentinel errors across the wire.
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
	// (validationErrors[n], validate.go); the message is the reason. Nothing
	// was proposed. A follower that predates it reads statusFailed's meaning.
	statusInvalid rpcStatus = 16
	// statusUnauthenticated: the leader refused the request because the
	// connection it came on is not a member's (ErrPeerUnauthenticated).
	statusUnauthenticated rpcStatus = 32
)

func statusOf(err error) rpcStatus {
	switch {
	case err == nil:
		return statusOK
	case errors.Is(err, ErrClockOffset):
		return statusClockOffset
	case errors.Is(err, errNotCommitted), errors.Is(err, errNotReadyLeader):
		return statusNotCommitted
	case errors.Is(err, ErrOutcomeUnknown):
		return statusOutcomeUnknown
	case errors.Is(err, ErrShuttingDown):
		return statusShuttingDown
	case errors.Is(err, ErrQuotaExceeded):
		return statusQuotaExceeded
	case errors.Is(err, ErrPeerUnauthenticated):
		return statusUnauthenticated
	}
	var ie *InvalidError
	if errors.As(err, &ie) {
		for i, e := range validationErrors[1:] {
			if ie.Err == e {
				return statusInvalid + rpcStatus(i+1)
			}
		}
	}
	return statusFailed
}

// statusError turns a remote status back into this node's error values.
// A leader that is shutting down did not commit: the caller retries elsewhere.
func statusError(st rpcStatus, msg string) error {
	switch st {
	case statusOK:
		return nil
	case statusNotCommitted, statusShuttingDown:
		return fmt.Errorf("%w: leader: %s", errNotCommitted, msg)
	case statusOutcomeUnknown:
		return fmt.Errorf("%w: leader: %s", ErrOutcomeUnknown, msg)
	case statusQuotaExceeded:
		return fmt.Errorf("%w: %s", ErrQuotaExceeded, strings.TrimPrefix(msg, ErrQuotaExceeded.Error()+": "))
	case statusClockOffset:
		return fmt.Errorf("%w: %w: leader: %s", errNotCommitted, ErrClockOffset, msg)
	case statusUnauthenticated:
		return fmt.Errorf("%w: leader: %s", ErrPeerUnauthenticated, msg)
	}
	if st > statusInvalid && int(st-statusInvalid) < len(validationErrors) {
		return &InvalidError{Err: validationErrors[st-statusInvalid], Reason: msg}
	}
	return fmt.Errorf("store: leader: %s", msg)
}

// handleRPC serves forwarded requests. It acts only as the leader: a node that
// is not leader answers statusNotCommitted so the caller looks for the leader
// again, which rules out forwarding loops.
func (s *Store) handleRPC(ctx context.Context, method uint8, req []byte) ([]byte, error) {
	switch method {
	case methodWrite:
		wr, err := decodeWriteRequest(req)
		if err != nil {
			return nil, fmt.Errorf("store: bad write request: %w", err)
		}
		var res writeResult
		switch err = s.authorizePeer(ctx, method); {
		case err != nil:
		case s.raft.State() != raft.Leader:
			err = fmt.Errorf("%w: %s is not the leader", errNotCommitted, s.cfg.NodeID)
		default:
			res, err = s.writeAsLeader(ctx, wr)
		}
		// Answer in the request's format, so a follower that only knows
		// format 1 can read the answer.
		return encodeWriteResponse(res, statusOf(err), wireMessage(err), req[0]), nil
	case methodReadIndex:
		idx, now, err := s.leaderReadIndex(ctx)
		return encodeReadIndexResponse(idx, now, statusOf(err), errString(err)), nil
	case methodRestore:
		if err := s.authorizePeer(ctx, method); err != nil {
			return encodeRestoreResponse(fsm.RestoreResult{}, statusOf(err), errString(err)), nil
		}
		return s.handleRestoreRPC(ctx, req)
	case methodReadAt:
		return s.handleReadAtRPC(ctx, req)
	case methodReadIndexGet:
		return s.handleReadIndexGetRPC(ctx, req)
	case methodClockPing:
		return s.handleClockPing(req)
	default:
		if resp, ok, err := s.handleMembershipRPC(ctx, method, req); ok {
			return resp, err
		}
		return nil, fmt.Errorf("store: unknown rpc method %d", method)
	}
}

// wireMessage is the message sent with err's status: a refused write's
// reason alone (the status names the rule), else the whole error.
func wireMessage(err error) string {
	var ie *InvalidError
	if errors.As(err, &ie) {
		return ie.Reason
	}
	return errString(err)
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Wire formats are uvarint/varint fields after a one-byte format version, so a
// mixed-version cluster fails loudly instead of misreading.
//
// Write requests and their answers come in two formats. Format 1 is the
// original set/delete; a follower still uses it for such plain writes, so a
// leader that only knows format 1 keeps serving them during a rolling upgrade.
// Format 2 appends the fields of conditional, touch, incr, delete-prefix and
// idempotent writes to the request, and the status fields and log index to the
// answer. A leader answers in the format of the request.
const (
	rpcFormat   = 1
	rpcFormatV2 = 2
)

func encodeWriteRequest(r writeRequest) []byte {
	format := byte(rpcFormatV2)
	if r.plain() {
		format = rpcFormat
	}
	b := make([]byte, 0, 64+len(r.key)+len(r.value)+len(r.idemKey))
	b = append(b, format, byte(r.op))
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	b = binary.AppendUvarint(b, uint64(len(r.value)))
	b = append(b, r.value...)
	b = binary.AppendVarint(b, r.ttlMs)
	if format == rpcFormatV2 {
		b = append(b, byte(r.cond), flag(r.keepTTL))
		b = binary.AppendUvarint(b, r.condVersion)
		b = binary.AppendVarint(b, r.by)
		b = binary.AppendUvarint(b, uint64(len(r.idemKey)))
		b = append(b, r.idemKey...)
		b = append(b, r.fingerprint[:]...)
	}
	return b
}

func decodeWriteRequest(b []byte) (writeRequest, error) {
	d := decoder{b: b}
	var r writeRequest
	format := d.byte()
	if format != rpcFormat && format != rpcFormatV2 {
		return r, fmt.Errorf("unsupported format %d", format)
	}
	r.op = fsm.Op(d.byte())
	r.key = string(d.bytes())
	r.value = d.bytes()
	r.ttlMs = d.varint()
	if format == rpcFormatV2 {
		r.cond = fsm.Cond(d.byte())
		r.keepTTL = d.byte() != 0
		r.condVersion = d.uvarint()
		r.by = d.varint()
		r.idemKey = string(d.bytes())
		fp := d.fixed(fsm.FingerprintSize)
		copy(r.fingerprint[:], fp)
	}
	if d.err != nil {
		return writeRequest{}, d.err
	}
	switch r.op {
	case fsm.OpSet, fsm.OpDelete:
	case fsm.OpTouch, fsm.OpIncr, fsm.OpDeletePrefix:
		if format == rpcFormat {
			return writeRequest{}, fmt.Errorf("op %d in format 1", r.op)
		}
	default:
		return writeRequest{}, fmt.Errorf("unsupported op %d", r.op)
	}
	if r.cond > fsm.CondIfAbsent {
		return writeRequest{}, fmt.Errorf("unsupported condition %d", r.cond)
	}
	if len(d.b) != 0 {
		return writeRequest{}, errors.New("trailing bytes")
	}
	// Accept only the one encoding encodeWriteRequest produces: a field the
	// op does not use, or format 2 for a plain write, is a forged or corrupt
	// request, not something to ignore.
	if !bytes.Equal(encodeWriteRequest(r), b) {
		return writeRequest{}, errors.New("non-canonical encoding")
	}
	return r, nil
}

func encodeWriteResponse(r writeResult, st rpcStatus, msg string, format byte) []byte {
	b := []byte{rpcFormat, byte(st), flag(r.created) | flag(r.deleted)<<1}
	b = binary.AppendUvarint(b, r.revision)
	b = binary.AppendVarint(b, r.expiresAt)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	b = append(b, msg...)
	if format == rpcFormatV2 {
		b[0] = rpcFormatV2
		b = append(b, byte(r.status))
		b = binary.AppendUvarint(b, r.current)
		b = binary.AppendVarint(b, r.value)
		b = binary.AppendVarint(b, r.count)
		b = binary.AppendUvarint(b, r.index)
	}
	return b
}

func decodeWriteResponse(b []byte) (writeResult, rpcStatus, string, error) {
	d := decoder{b: b}
	var r writeResult
	format := d.byte()
	if format != rpcFormat && format != rpcFormatV2 {
		return r, 0, "", fmt.Errorf("unsupported format %d", format)
	}
	st := rpcStatus(d.byte())
	flags := d.byte()
	r.created, r.deleted = flags&1 != 0, flags&2 != 0
	r.revision = d.uvarint()
	r.expiresAt = d.varint()
	msg := string(d.bytes())
	if format == rpcFormatV2 {
		r.status = fsm.Status(d.byte())
		r.current = d.uvarint()
		r.value = d.varint()
		r.count = d.varint()
		r.index = d.uvarint()
	} else {
		// A plain set or delete: its revision is its log index.
		r.index = r.revision
	}
	return r, st, msg, d.err
}

func encodeReadIndexResponse(idx uint64, nowMs int64, st rpcStatus, msg string) []byte {
	b := []byte{rpcFormat, byte(st)}
	b = binary.AppendUvarint(b, idx)
	b = binary.AppendVarint(b, nowMs)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

func decodeReadIndexResponse(b []byte) (uint64, int64, rpcStatus, string, error) {
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat {
		return 0, 0, 0, "", fmt.Errorf("unsupported format %d", v)
	}
	st := rpcStatus(d.byte())
	idx := d.uvarint()
	now := d.varint()
	msg := string(d.bytes())
	return idx, now, st, msg, d.err
}

func flag(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decoder reads the fields above, remembering the first error; lengths are
// checked against the remaining input before any allocation.
type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("truncated message")

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errShort
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errShort
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}
