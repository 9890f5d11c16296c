package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/fsm"
)

// writeFrameOverhead bounds everything a forwarded write's frame carries
// besides its value: the transport's 21-byte frame header and the request's
// fields at their largest (a MaxKeyBytes key, a MaxIdempotencyKeyBytes key
// with its longest caller scope,
// the fingerprint, varints at full width), with room to spare; and a
// transaction's, whose values together obey the same value limit but whose
// keys (up to MaxTxnItems operations and as many checks, MaxKeyBytes each)
// come on top. TestWriteFrameFitsLargestValue checks the sum.
const writeFrameOverhead = 256 << 10

// FrameBytesFor is the smallest peer-port frame limit
// (transport.Config.MaxFrameBytes) that carries a forwarded write of a
// maxValueBytes value: with a smaller one, the largest legal value could not
// be written through a follower. Open refuses a Mux whose limit is smaller.
func FrameBytesFor(maxValueBytes int64) int {
	return int(maxValueBytes) + writeFrameOverhead
}

// handleRPC serves the peer RPC methods (methods.go) through s.handlers.
// Methods that change state act only on the leader: a node that is not leader
// answers statusNotCommitted so the caller looks for the leader again, which
// rules out forwarding loops.
func (s *Store) handleRPC(ctx context.Context, method uint8, req []byte) ([]byte, error) {
	serve, ok := s.handlers[method]
	if !ok {
		return nil, fmt.Errorf("store: unknown rpc method %d", method)
	}
	return serve(ctx, req)
}

// serveWrite serves methodWrite: a forwarded client write.
func (s *Store) serveWrite(ctx context.Context, req []byte) ([]byte, error) {
	wr, err := decodeWriteRequest(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad write request: %w", err)
	}
	var res writeResult
	switch err = s.authorizePeer(ctx, methodWrite); {
	case err != nil:
	case s.raft.State() != raft.Leader:
		err = fmt.Errorf("%w: %s is not the leader", errNotCommitted, s.cfg.NodeID)
	default:
		res, err = s.writeAsLeader(ctx, wr)
	}
	// Answer in the request's format, so a follower that only knows
	// format 1 can read the answer.
	return encodeWriteResponse(res, toWire(err), req[0]), nil
}

// serveReadIndex serves methodReadIndex: a confirmed read index and the
// leader's clock at it. It reveals no data, so it answers any caller; only a
// member's authenticated call may have it confirmed by its term (readvouch.go).
func (s *Store) serveReadIndex(ctx context.Context, req []byte) ([]byte, error) {
	vouch, err := decodeReadIndexRequest(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad read index request: %w", err)
	}
	idx, now, err := s.readIndexFor(ctx, vouch)
	if len(req) == 0 {
		return encodeReadIndexResponse(idx, now, toWire(err)), nil
	}
	return encodeReadIndexAnswer(idx, now, toWire(err), s.answerMark()), nil
}

// serveRestore serves methodRestore for an authenticated member.
func (s *Store) serveRestore(ctx context.Context, req []byte) ([]byte, error) {
	if err := s.authorizePeer(ctx, methodRestore); err != nil {
		return encodeRestoreResponse(fsm.RestoreResult{}, toWire(err)), nil
	}
	return s.handleRestoreRPC(ctx, req)
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
//
// Format 3 carries a transaction (txn.go): the op byte is fsm.OpTxn, then the
// idempotency key and fingerprint, the checks and the operations; its answer
// is format 2's fields followed by the state machine's transaction result
// (fsm.EncodeTxnResult; empty when the leader refused it). A leader that
// predates it refuses the frame ("unsupported format"), so every node must be
// upgraded before clients send transactions.
const (
	rpcFormat    = 1
	rpcFormatV2  = 2
	rpcFormatTxn = 3
)

func encodeWriteRequest(r writeRequest) []byte {
	if r.op == fsm.OpTxn {
		return encodeTxnRequest(r)
	}
	format := byte(rpcFormatV2)
	if r.plain() {
		format = rpcFormat
	}
	b := make([]byte, 0, 64+len(r.key)+len(r.value)+len(r.idemKey))
	b = append(b, format, byte(r.op))
	b = appendString(b, r.key)
	b = appendBytes(b, r.value)
	b = binary.AppendVarint(b, r.ttlMs)
	if format == rpcFormatV2 {
		b = append(b, byte(r.cond), flag(r.keepTTL))
		b = binary.AppendUvarint(b, r.condVersion)
		b = binary.AppendVarint(b, r.by)
		b = appendString(b, r.idemKey)
		b = append(b, r.fingerprint[:]...)
	}
	return b
}

func decodeWriteRequest(b []byte) (writeRequest, error) {
	d := decoder{b: b}
	var r writeRequest
	format := d.format(rpcFormat, rpcFormatV2, rpcFormatTxn)
	if format == rpcFormatTxn && d.err == nil {
		return decodeTxnRequest(b)
	}
	r.op = fsm.Op(d.byte())
	r.key = d.string()
	r.value = d.bytes()
	r.ttlMs = d.varint()
	if format == rpcFormatV2 {
		r.cond = fsm.Cond(d.byte())
		r.keepTTL = d.byte() != 0
		r.condVersion = d.uvarint()
		r.by = d.varint()
		r.idemKey = d.string()
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
	if err := d.done(); err != nil {
		return writeRequest{}, err
	}
	// Accept only the one encoding encodeWriteRequest produces: a field the
	// op does not use, or format 2 for a plain write, is a forged or corrupt
	// request, not something to ignore.
	if !bytes.Equal(encodeWriteRequest(r), b) {
		return writeRequest{}, errors.New("non-canonical encoding")
	}
	return r, nil
}

func encodeWriteResponse(r writeResult, w wireError, format byte) []byte {
	b := []byte{rpcFormat, byte(w.status), flag(r.created) | flag(r.deleted)<<1}
	b = binary.AppendUvarint(b, r.revision)
	b = binary.AppendVarint(b, r.expiresAt)
	b = appendString(b, w.msg)
	if format == rpcFormatV2 || format == rpcFormatTxn {
		b[0] = format
		b = append(b, byte(r.status))
		b = binary.AppendUvarint(b, r.current)
		b = binary.AppendVarint(b, r.value)
		b = binary.AppendVarint(b, r.count)
		b = binary.AppendUvarint(b, r.index)
	}
	if format == rpcFormatTxn {
		var txn []byte
		if r.txn != nil {
			txn = fsm.EncodeTxnResult(*r.txn)
		}
		b = binary.AppendUvarint(b, uint64(len(txn)))
		b = append(b, txn...)
	}
	return b
}

func decodeWriteResponse(b []byte) (writeResult, wireError, error) {
	d := decoder{b: b}
	var r writeResult
	format := d.format(rpcFormat, rpcFormatV2, rpcFormatTxn)
	w := wireError{status: rpcStatus(d.byte())}
	flags := d.byte()
	r.created, r.deleted = flags&1 != 0, flags&2 != 0
	r.revision = d.uvarint()
	r.expiresAt = d.varint()
	w.msg = d.string()
	if format == rpcFormatV2 || format == rpcFormatTxn {
		r.status = fsm.Status(d.byte())
		r.current = d.uvarint()
		r.value = d.varint()
		r.count = d.varint()
		r.index = d.uvarint()
		if format == rpcFormatTxn {
			if txn := d.bytes(); d.err == nil && len(txn) > 0 {
				tr, err := fsm.DecodeTxnResult(txn)
				if err != nil {
					return r, w, err
				}
				r.txn = &tr
			}
		}
	} else {
		// A plain set or delete: its revision is its log index.
		r.index = r.revision
	}
	return r, w, d.err
}

func encodeReadIndexResponse(idx uint64, nowMs int64, w wireError) []byte {
	b := []byte{rpcFormat, byte(w.status)}
	b = binary.AppendUvarint(b, idx)
	b = binary.AppendVarint(b, nowMs)
	return appendString(b, w.msg)
}

func flag(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// appendString appends s with its uvarint length, as decoder.string reads it.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendBytes appends v with its uvarint length, as decoder.bytes reads it.
func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decoder reads every peer RPC message: a format byte (format), fields, and
// the check that nothing follows them (done). It remembers the first error,
// so a decoding function reads all its fields and looks once; lengths are
// checked against the remaining input before any allocation.
type decoder struct {
	b   []byte
	err error
}

var (
	errShort    = errors.New("truncated message")
	errTrailing = errors.New("trailing bytes")
)

// format reads the format byte and fails unless it is one of accept.
func (d *decoder) format(accept ...byte) byte {
	v := d.byte()
	if d.err == nil && !bytes.Contains(accept, []byte{v}) {
		d.err = fmt.Errorf("unsupported format %d", v)
	}
	return v
}

// done is the first error, or errTrailing when input is left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errTrailing
	}
	return d.err
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.err = errShort
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 { return readVarint(d, binary.Uvarint) }

func (d *decoder) varint() int64 { return readVarint(d, binary.Varint) }

// readVarint reads one varint with read (binary.Uvarint or binary.Varint).
func readVarint[T uint64 | int64](d *decoder, read func([]byte) (T, int)) T {
	if d.err != nil {
		return 0
	}
	v, n := read(d.b)
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
