package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// Reads served by the leader at a follower's read point.
//
// methodReadIndexGet is the common case: a follower's batch of reads asks for
// the read index and names its GETs' keys and its own applied index; if the
// confirmed index is past the follower's applied index, the answer carries the
// items, read by the leader at the read point. methodReadAt covers the rest (a
// list page, or a GET whose item did not fit in the answer) after a short
// grace. Why:
//
// A follower that has confirmed a read index with the leader can only apply
// it once raft tells it the commit index, and hashicorp/raft sends the commit
// index to a follower only in an AppendEntries that carries entries or on the
// replication loop's CommitTimeout tick (heartbeats do not carry it). A read
// issued right after an acknowledged write therefore used to wait for the next
// write or for CommitTimeout (50-100 ms). The leader serves such reads from its
// own state machine once that has applied the index. No further leadership
// check is needed for that: any state applied at or past a confirmed read
// index reflects every write acknowledged before the read began, and expiry is
// judged at the read point's clock as a local read would.
//
// Unlike methodReadIndex, both methods return data, so they run only for a
// caller the peer port authenticated as a member (authorizePeer); a refused
// caller falls back to confirming the index alone and reading its own state.

// followerReadGrace is how long a follower waits for its own state machine to
// reach a confirmed read index before it asks the leader to serve the read.
// Under a steady stream of writes the commit index arrives with the next
// AppendEntries, usually within this; without writes it would take
// CommitTimeout. Measured in BENCHMARKS.md ("Follower reads").
const followerReadGrace = 2 * time.Millisecond

// Bounds on a forwarded read. Keys are at most 512 bytes at the HTTP API; a
// list page at most 1000 items. A page whose answer would exceed
// readAtMaxAnswerBytes is refused, and the follower serves it from its own
// state once applied.
const (
	readAtMaxKeyBytes    = 1024
	readAtMaxLimit       = 1000
	readAtMaxAnswerBytes = 16 << 20
	// readAtTimeout bounds both the call and the server's wait for its own
	// state machine to reach the index.
	readAtTimeout = time.Second
)

// readAtRequest is one read to serve at a read point: a GET of key, or when
// list is set a page of up to limit keys with prefix key after after.
type readAtRequest struct {
	readPoint
	list  bool
	key   string
	after string
	limit int
}

// readAtResult is the answer: the live items found (at most one for a GET)
// and, for a page, whether more follow.
type readAtResult struct {
	items []Item
	more  bool
}

// readAt asks the node that confirmed at to serve r at that read point.
func (s *Store) readAt(ctx context.Context, at readPoint, r readAtRequest) (readAtResult, error) {
	r.readPoint = at
	ctx, cancel := context.WithTimeout(ctx, readAtTimeout)
	defer cancel()
	payload, err := s.callLeader(ctx, at.from, methodReadAt, encodeReadAtRequest(r))
	if err != nil {
		return readAtResult{}, err
	}
	res, st, msg, err := decodeReadAtResponse(payload)
	if err != nil {
		return readAtResult{}, fmt.Errorf("store: malformed read answer: %w", err)
	}
	if st != statusOK {
		return readAtResult{}, fmt.Errorf("store: read at index %d refused: %s", at.index, msg)
	}
	if !r.list && len(res.items) > 1 {
		return readAtResult{}, errors.New("store: read answer has more than one item")
	}
	return res, nil
}

// handleReadAtRPC serves a forwarded read once this node's state machine has
// applied the request's index (waiting at most readAtTimeout).
func (s *Store) handleReadAtRPC(ctx context.Context, req []byte) ([]byte, error) {
	r, err := decodeReadAtRequest(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad read request: %w", err)
	}
	if err := s.authorizePeer(ctx, methodReadAt); err != nil {
		return encodeReadAtResponse(readAtResult{}, statusOf(err), errString(err)), nil
	}
	wctx, cancel := context.WithTimeout(ctx, readAtTimeout)
	defer cancel()
	if err := s.fsm.WaitApplied(wctx, r.index); err != nil {
		return encodeReadAtResponse(readAtResult{}, statusFailed,
			fmt.Sprintf("index %d not applied here in time (applied %d)", r.index, s.fsm.AppliedIndex())), nil
	}
	var res readAtResult
	if r.list {
		entries, more := s.fsm.List(r.key, r.after, r.limit, r.nowMs)
		res.more = more
		res.items = make([]Item, len(entries))
		for i, e := range entries {
			res.items[i] = Item{Key: e.Key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}
		}
	} else if e, ok := s.fsm.Get(r.key, r.nowMs); ok {
		res.items = []Item{{Key: r.key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}}
	}
	if size := res.size(); size > readAtMaxAnswerBytes {
		return encodeReadAtResponse(readAtResult{}, statusFailed,
			fmt.Sprintf("answer of %d bytes is over the %d-byte limit for a forwarded read", size, readAtMaxAnswerBytes)), nil
	}
	return encodeReadAtResponse(res, statusOK, ""), nil
}

// size bounds the encoded answer's length.
func (r readAtResult) size() int {
	n := 16
	for _, it := range r.items {
		n += len(it.Key) + len(it.Value) + 4*binary.MaxVarintLen64
	}
	return n
}

// Wire format (rpcFormat, then uvarint/varint fields): request = kind (0 get,
// 1 list), index, nowMs, key, after, limit; answer = status, message, more,
// item count, then per item key, value, version, expiresAt (Unix ms, 0 =
// never). The decoder accepts nothing else: bounded lengths, no trailing bytes.

func encodeReadAtRequest(r readAtRequest) []byte {
	b := make([]byte, 0, 32+len(r.key)+len(r.after))
	b = append(b, rpcFormat, flag(r.list))
	b = binary.AppendUvarint(b, r.index)
	b = binary.AppendVarint(b, r.nowMs)
	b = binary.AppendUvarint(b, uint64(len(r.key)))
	b = append(b, r.key...)
	b = binary.AppendUvarint(b, uint64(len(r.after)))
	b = append(b, r.after...)
	return binary.AppendUvarint(b, uint64(r.limit))
}

func decodeReadAtRequest(b []byte) (readAtRequest, error) {
	d := decoder{b: b}
	var r readAtRequest
	if v := d.byte(); v != rpcFormat && d.err == nil {
		return r, fmt.Errorf("unsupported format %d", v)
	}
	kind := d.byte()
	r.index = d.uvarint()
	r.nowMs = d.varint()
	r.key = string(d.bytes())
	r.after = string(d.bytes())
	limit := d.uvarint()
	switch {
	case d.err != nil:
		return readAtRequest{}, d.err
	case len(d.b) != 0:
		return readAtRequest{}, errors.New("trailing bytes")
	case kind > 1:
		return readAtRequest{}, fmt.Errorf("unknown read kind %d", kind)
	case r.index == 0:
		return readAtRequest{}, errors.New("no read index")
	case len(r.key) > readAtMaxKeyBytes || len(r.after) > readAtMaxKeyBytes:
		return readAtRequest{}, fmt.Errorf("key over %d bytes", readAtMaxKeyBytes)
	}
	r.list = kind == 1
	if r.list {
		if limit < 1 || limit > readAtMaxLimit {
			return readAtRequest{}, fmt.Errorf("list limit %d: want 1..%d", limit, readAtMaxLimit)
		}
		r.limit = int(limit)
	} else if limit != 0 || r.after != "" {
		return readAtRequest{}, errors.New("a get carries no page fields")
	}
	return r, nil
}

func encodeReadAtResponse(r readAtResult, st rpcStatus, msg string) []byte {
	b := make([]byte, 0, r.size()+len(msg))
	b = append(b, rpcFormat, byte(st))
	b = binary.AppendUvarint(b, uint64(len(msg)))
	b = append(b, msg...)
	b = append(b, flag(r.more))
	b = binary.AppendUvarint(b, uint64(len(r.items)))
	for _, it := range r.items {
		b = binary.AppendUvarint(b, uint64(len(it.Key)))
		b = append(b, it.Key...)
		b = appendItemBody(b, it)
	}
	return b
}

func decodeReadAtResponse(b []byte) (readAtResult, rpcStatus, string, error) {
	d := decoder{b: b}
	var r readAtResult
	if v := d.byte(); v != rpcFormat && d.err == nil {
		return r, 0, "", fmt.Errorf("unsupported format %d", v)
	}
	st := rpcStatus(d.byte())
	msg := string(d.bytes())
	r.more = d.byte() != 0
	n := d.uvarint()
	if d.err == nil && n > readAtMaxLimit {
		return readAtResult{}, 0, "", fmt.Errorf("%d items in one answer", n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.items = append(r.items, d.itemBody(string(d.bytes())))
	}
	if d.err == nil && len(d.b) != 0 {
		return readAtResult{}, 0, "", errors.New("trailing bytes")
	}
	return r, st, msg, d.err
}

// remoteReadIndexGet confirms a read index with the leader at addr for a batch
// of reads that includes GETs of keys. got maps each key the leader read
// (because this node had not applied the index) to its answer; it is nil when
// the leader found this node caught up.
func (s *Store) remoteReadIndexGet(ctx context.Context, addr string, vouch termVouch, keys []string) (readPoint, map[string]*readAtResult, error) {
	payload, err := s.callLeader(ctx, addr, methodReadIndexGet, encodeReadIndexGetRequest(s.fsm.AppliedIndex(), keys, vouch))
	if err != nil {
		return readPoint{}, nil, err
	}
	if vouch != (termVouch{}) {
		d := decoder{b: payload}
		mark := d.seqMark()
		if d.err != nil {
			return readPoint{}, nil, fmt.Errorf("store: malformed read index answer: %w", d.err)
		}
		s.gotMark(mark)
		payload = d.b
	}
	at, items, st, msg, err := decodeReadIndexGetResponse(payload, keys)
	if err != nil {
		return readPoint{}, nil, fmt.Errorf("store: malformed read index answer: %w", err)
	}
	if st != statusOK {
		return readPoint{}, nil, fmt.Errorf("%w: leader: %s", errNotReadyLeader, msg)
	}
	at.from = addr
	return at, items, nil
}

// handleReadIndexGetRPC confirms a read index like methodReadIndex, and reads
// the request's keys at it when the caller has not applied it.
func (s *Store) handleReadIndexGetRPC(ctx context.Context, req []byte) ([]byte, error) {
	applied, keys, vouch, err := decodeReadIndexGetRequest(req)
	if err != nil {
		return nil, fmt.Errorf("store: bad read index request: %w", err)
	}
	answer := s.readIndexGetAnswer(ctx, applied, keys, vouch)
	if req[0] != rpcFormatV2 {
		return answer, nil
	}
	// Format 2's answer: the answer's mark (readvouch.go), then format 1's.
	b := appendSeqMark(make([]byte, 0, 2*binary.MaxVarintLen64+len(answer)), s.answerMark())
	return append(b, answer...), nil
}

// readIndexGetAnswer is handleReadIndexGetRPC's answer in format 1.
func (s *Store) readIndexGetAnswer(ctx context.Context, applied uint64, keys []string, vouch termVouch) []byte {
	if err := s.authorizePeer(ctx, methodReadIndexGet); err != nil {
		// The caller falls back to methodReadIndex, which reveals no data.
		return encodeReadIndexGetResponse(readPoint{}, nil, statusOf(err), errString(err))
	}
	idx, now, err := s.readIndexFor(ctx, vouch)
	if err != nil {
		return encodeReadIndexGetResponse(readPoint{}, nil, statusOf(err), errString(err))
	}
	at := readPoint{index: idx, nowMs: now}
	if applied >= idx {
		return encodeReadIndexGetResponse(at, nil, statusOK, "")
	}
	wctx, cancel := context.WithTimeout(ctx, readAtTimeout)
	defer cancel()
	if s.fsm.WaitApplied(wctx, idx) != nil {
		// The caller will wait for its own state machine instead.
		return encodeReadIndexGetResponse(at, nil, statusOK, "")
	}
	items := make([]*Item, len(keys))
	budget := readAtMaxAnswerBytes
	for i, key := range keys {
		e, ok := s.fsm.Get(key, now)
		if !ok {
			items[i] = &Item{}
			continue
		}
		if budget -= len(key) + len(e.Value) + 4*binary.MaxVarintLen64; budget < 0 {
			break // the rest are left out: those GETs fall back to methodReadAt
		}
		items[i] = &Item{Key: key, Value: e.Value, Version: e.Revision, ExpiresAt: msTime(e.ExpiresAt)}
	}
	return encodeReadIndexGetResponse(at, items, statusOK, "")
}

// Request: rpcFormat, applied index, key count, keys; or rpcFormatV2, the
// same fields, then the sender's term and id (readvouch.go). Answer: rpcFormat,
// status, index, nowMs, message, then 0 (no items) or 1 and per requested key
// one byte (0 left out, 1 missing or expired, 2 found) and for a found key its
// value, version and expiresAt (Unix ms, 0 = never).

// encodeReadIndexGetRequest encodes format 1 when vouch is zero, else
// format 2 with it.
func encodeReadIndexGetRequest(applied uint64, keys []string, vouch termVouch) []byte {
	n := 32 + len(vouch.id)
	for _, k := range keys {
		n += len(k) + binary.MaxVarintLen64
	}
	b := make([]byte, 0, n)
	if vouch == (termVouch{}) {
		b = append(b, rpcFormat)
	} else {
		b = append(b, rpcFormatV2)
	}
	b = binary.AppendUvarint(b, applied)
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
	}
	if vouch != (termVouch{}) {
		b = appendTermVouch(b, vouch)
	}
	return b
}

func decodeReadIndexGetRequest(b []byte) (uint64, []string, termVouch, error) {
	d := decoder{b: b}
	format := d.byte()
	if format != rpcFormat && format != rpcFormatV2 && d.err == nil {
		return 0, nil, termVouch{}, fmt.Errorf("unsupported format %d", format)
	}
	applied := d.uvarint()
	n := d.uvarint()
	if d.err == nil && (n < 1 || n > readAtMaxLimit) {
		return 0, nil, termVouch{}, fmt.Errorf("%d keys: want 1..%d", n, readAtMaxLimit)
	}
	keys := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.bytes()
		if len(k) > readAtMaxKeyBytes {
			return 0, nil, termVouch{}, fmt.Errorf("key over %d bytes", readAtMaxKeyBytes)
		}
		keys = append(keys, string(k))
	}
	var vouch termVouch
	if format == rpcFormatV2 {
		vouch = d.termVouch()
	}
	switch {
	case d.err != nil:
		return 0, nil, termVouch{}, d.err
	case len(d.b) != 0:
		return 0, nil, termVouch{}, errors.New("trailing bytes")
	}
	return applied, keys, vouch, nil
}

// encodeReadIndexGetResponse encodes items (nil: none) in the request's key
// order; a nil entry is a key left out, an Item with no Key a missing one.
func encodeReadIndexGetResponse(at readPoint, items []*Item, st rpcStatus, msg string) []byte {
	b := []byte{rpcFormat, byte(st)}
	b = binary.AppendUvarint(b, at.index)
	b = binary.AppendVarint(b, at.nowMs)
	b = binary.AppendUvarint(b, uint64(len(msg)))
	b = append(b, msg...)
	if items == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	for _, it := range items {
		switch {
		case it == nil:
			b = append(b, 0)
		case it.Key == "":
			b = append(b, 1)
		default:
			b = appendItemBody(append(b, 2), *it)
		}
	}
	return b
}

// decodeReadIndexGetResponse decodes an answer to a request for keys. items
// maps each key the leader read to its answer (nil: no items at all).
func decodeReadIndexGetResponse(b []byte, keys []string) (readPoint, map[string]*readAtResult, rpcStatus, string, error) {
	d := decoder{b: b}
	var at readPoint
	if v := d.byte(); v != rpcFormat && d.err == nil {
		return at, nil, 0, "", fmt.Errorf("unsupported format %d", v)
	}
	st := rpcStatus(d.byte())
	at.index = d.uvarint()
	at.nowMs = d.varint()
	msg := string(d.bytes())
	var items map[string]*readAtResult
	if d.byte() == 1 {
		items = make(map[string]*readAtResult, len(keys))
		for _, key := range keys {
			if d.err != nil {
				break
			}
			switch d.byte() {
			case 0:
			case 1:
				items[key] = &readAtResult{}
			case 2:
				items[key] = &readAtResult{items: []Item{d.itemBody(key)}}
			default:
				if d.err == nil {
					d.err = errors.New("bad item tag")
				}
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errors.New("trailing bytes")
	}
	if d.err != nil {
		return readPoint{}, nil, 0, "", d.err
	}
	return at, items, st, msg, nil
}

// appendItemBody appends what the read RPCs send of an item after its key:
// the value, the version and the absolute expiry in Unix ms (0: none).
func appendItemBody(b []byte, it Item) []byte {
	b = binary.AppendUvarint(b, uint64(len(it.Value)))
	b = append(b, it.Value...)
	b = binary.AppendUvarint(b, it.Version)
	var exp int64
	if !it.ExpiresAt.IsZero() {
		exp = it.ExpiresAt.UnixMilli()
	}
	return binary.AppendVarint(b, exp)
}

// itemBody reads what appendItemBody wrote, for the item named key.
func (d *decoder) itemBody(key string) Item {
	value := d.bytes()
	version := d.uvarint()
	return Item{Key: key, Value: value, Version: version, ExpiresAt: msTime(d.varint())}
}
