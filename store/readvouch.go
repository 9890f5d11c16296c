package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// A follower's read-index call confirmed by the follower's own term.
//
// A read index needs proof that, at some moment after the reads arrived, no
// leader of a later term could have acknowledged a write. The leader's own
// reads get it from a leadership check (VerifyLeader: a heartbeat to every
// follower, answered by a quorum). A follower's call can carry it instead:
// the follower reads its raft term after every read of its batch arrived and
// sends it with its id. If the leader, on receiving the call, is still
// leader in that same term and the two of them are a majority of the voters
// in its latest configuration, the proof is complete without a heartbeat:
//
//   - a leader of a later term T' must have been elected by a majority of
//     voters, each of which had already moved to term T' when it voted;
//   - the follower was still in term T when it sent the call (after the
//     reads arrived), and the leader still is in T after taking the commit
//     index, and terms never go back, so neither had voted in T' before the
//     reads arrived;
//   - every majority includes one of the two, so no later leader existed
//     then, and every write acknowledged before the reads is in term T or
//     earlier: at or below the leader's commit index (its barrier covers
//     earlier terms, as for every read index).
//
// That is the quorum argument VerifyLeader rests on, with the follower's call
// standing in for its heartbeat answer; like VerifyLeader it counts the
// voters of the latest configuration. It applies with three voters or fewer
// (two of them are then a majority); a larger cluster, a caller whose id the
// peer port did not authenticate, a term that differs, or a leader not yet
// ready all fall back to the leadership check. Measured effect in
// BENCHMARKS.md ("Follower reads confirmed by the follower's term").

// termVouch is what a follower's read-index call says about its sender: its
// node id and raft term, read after every read of the batch arrived. The zero
// value vouches for nothing (an older follower's call).
type termVouch struct {
	term uint64
	id   string
	// echo is the last answer mark the sender received from the leader,
	// read before term (zero: none).
	echo seqMark
}

// maxVouchIDBytes bounds the node id a vouch carries.
const maxVouchIDBytes = 256

// readIndexFor confirms a read index for a follower's call: by its vouch
// when that suffices, else by joining the leader's next leadership check.
func (s *Store) readIndexFor(ctx context.Context, v termVouch) (uint64, int64, error) {
	if idx, now, ok := s.vouchedReadIndex(ctx, v); ok {
		return idx, now, nil
	}
	return s.leaderReadIndex(ctx)
}

// vouchedReadIndex returns the commit index and the leader's clock when v
// proves this node's leadership for the caller's reads (see above); ok is
// false when it does not, and the caller must check leadership itself.
func (s *Store) vouchedReadIndex(ctx context.Context, v termVouch) (idx uint64, now int64, ok bool) {
	if v.term == 0 || v.id == "" || v.id == s.cfg.NodeID || !s.vouchSender(ctx, v.id) {
		return 0, 0, false
	}
	term := s.raft.CurrentTerm()
	if v.term != term || s.raft.State() != raft.Leader || s.readyTerm.Load() != term || !s.majorityWith(v.id) {
		return 0, 0, false
	}
	idx = s.raft.CommitIndex()
	now, err := s.commandNow()
	if err != nil {
		return 0, 0, false // the leadership check path reports the clock
	}
	if s.raft.CurrentTerm() != term || s.raft.State() != raft.Leader {
		return 0, 0, false
	}
	s.metrics.readConfirmed[confirmedByVouch].Inc()
	if v.echo.term == term && v.echo.seq > 0 {
		s.echo.hear(v.echo, v.id)
	}
	return idx, now, true
}

// vouchSender reports whether the call in ctx comes from member id: the
// identity the peer port authenticated, or, with unauthenticated peers
// allowed (no peer TLS), the id the caller names.
func (s *Store) vouchSender(ctx context.Context, id string) bool {
	if s.cfg.PeerAuth != nil {
		if peer, ok := s.cfg.PeerAuth(ctx); ok {
			return peer == id
		}
	}
	return s.cfg.AllowUnauthenticatedPeers
}

// majorityWith reports whether this node and member id are both voters of
// raft's latest configuration and together a majority of its voters.
func (s *Store) majorityWith(id string) bool {
	voters := 0
	self, peer := false, false
	for _, srv := range s.raft.GetConfiguration().Configuration().Servers {
		if srv.Suffrage != raft.Voter {
			continue
		}
		voters++
		switch string(srv.ID) {
		case s.cfg.NodeID:
			self = true
		case id:
			peer = true
		}
	}
	return self && peer && 2*2 > voters
}

// A follower's next call confirms the leader's reads.
//
// The leader's own reads cannot use a follower's term as it stands: a call
// received after such a read arrived may have been sent before. But a call
// sent after the follower received an answer the leader sent after the read
// arrived can. So every answer to a vouching call carries a mark (the
// leader's term and the next number of a counter it never resets), a
// follower's next call echoes the last mark it received (loaded before it
// reads its term), and a leader read records the counter when it queues. An
// accepted vouch echoing a mark of this term numbered above what a read
// recorded proves the follower was in this term after that read arrived:
// with the leader, a majority, as above. A leadership-check round therefore
// waits, when such calls have been arriving (within echoRecent), up to
// echoGrace for an echo covering all its reads, and checks leadership with
// heartbeats only when none comes. A leader that serves its clients alone
// never waits.

// seqMark names one answer a leader sent to a vouching call: the leader's
// term and the answer's number. A term has one leader, so the pair names
// one node's counter.
type seqMark struct{ term, seq uint64 }

const (
	// echoRecent: a round waits for an echo only if one was accepted this
	// recently, i.e. followers are calling.
	echoRecent = 10 * time.Millisecond
	// echoGrace bounds that wait; then the round checks leadership.
	echoGrace = 2 * time.Millisecond
)

// echoState is a node's share of the echo protocol.
type echoState struct {
	// Leader side: seq numbers answers; heard is the highest echo accepted,
	// with the id of the member that sent it; heardAt (Unix ns) when;
	// wake tells a waiting round that heard moved.
	seq     atomic.Uint64
	mu      sync.Mutex
	heard   seqMark
	heardBy string
	heardAt atomic.Int64
	wake    chan struct{}
	// Follower side: the last mark received from the leader.
	got atomic.Pointer[seqMark]
}

// hear records an echo of mark by member id and wakes a waiting round.
func (e *echoState) hear(mark seqMark, id string) {
	e.mu.Lock()
	if mark.term > e.heard.term || mark.term == e.heard.term && mark.seq > e.heard.seq {
		e.heard, e.heardBy = mark, id
	}
	e.mu.Unlock()
	e.heardAt.Store(time.Now().UnixNano())
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// heardAfter returns the member whose accepted echo in term is numbered
// above seen, if any.
func (e *echoState) heardAfter(term, seen uint64) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.heardBy, e.heard.term == term && e.heard.seq > seen
}

// answerMark numbers an answer to a vouching call (zero when this node is
// not a ready leader, so the echo would prove nothing).
func (s *Store) answerMark() seqMark {
	term := s.raft.CurrentTerm()
	if s.raft.State() != raft.Leader || s.readyTerm.Load() != term {
		return seqMark{}
	}
	return seqMark{term: term, seq: s.echo.seq.Add(1)}
}

// gotMark keeps the mark of the leader's answer for the next call's echo.
func (s *Store) gotMark(m seqMark) {
	if m.seq > 0 {
		s.echo.got.Store(&m)
	}
}

// echoConfirms waits, when followers' vouching calls have been arriving,
// at most echoGrace for an accepted echo of term numbered above seen (the
// counter's highest value the round's reads recorded), and reports whether
// one came from a member that, with this node, is still a majority of the
// voters.
func (s *Store) echoConfirms(term, seen uint64) bool {
	check := func() bool {
		id, ok := s.echo.heardAfter(term, seen)
		return ok && s.majorityWith(id)
	}
	if check() {
		return true
	}
	if time.Since(time.Unix(0, s.echo.heardAt.Load())) > echoRecent {
		return false
	}
	t := time.NewTimer(echoGrace)
	defer t.Stop()
	for {
		select {
		case <-s.echo.wake:
			if check() {
				return true
			}
		case <-t.C:
			return check()
		case <-s.closing:
			return false
		}
	}
}

// Wire: a methodReadIndex request is empty (no vouch; what older followers
// send, and what older leaders ignore) or rpcFormat, term, id, echo term,
// echo number; the answer to one with a vouch appends the answer's mark
// (term, number; 0, 0 for none) to the older answer's fields, which older
// followers never ask for. A methodReadIndexGet request of format rpcFormatV2
// appends the same vouch fields after format 1's, and its answer the mark
// after format 1's.

// encodeReadIndexRequest encodes a methodReadIndex request carrying v.
func encodeReadIndexRequest(v termVouch) []byte {
	return appendTermVouch(append(make([]byte, 0, 16+len(v.id)), rpcFormat), v)
}

// appendTermVouch appends v's fields to b.
func appendTermVouch(b []byte, v termVouch) []byte {
	b = binary.AppendUvarint(b, v.term)
	b = binary.AppendUvarint(b, uint64(len(v.id)))
	b = append(b, v.id...)
	return appendSeqMark(b, v.echo)
}

// appendSeqMark appends m's term and number to b.
func appendSeqMark(b []byte, m seqMark) []byte {
	b = binary.AppendUvarint(b, m.term)
	return binary.AppendUvarint(b, m.seq)
}

// seqMark reads what appendSeqMark appended.
func (d *decoder) seqMark() seqMark {
	return seqMark{term: d.uvarint(), seq: d.uvarint()}
}

// encodeReadIndexAnswer is methodReadIndex's answer to a vouching call.
func encodeReadIndexAnswer(idx uint64, nowMs int64, w wireError, m seqMark) []byte {
	return appendSeqMark(encodeReadIndexResponse(idx, nowMs, w), m)
}

// decodeReadIndexAnswer decodes either answer to methodReadIndex: an older
// leader's (no mark) or encodeReadIndexAnswer's.
func decodeReadIndexAnswer(b []byte) (uint64, int64, seqMark, wireError, error) {
	d := decoder{b: b}
	d.format(rpcFormat)
	w := wireError{status: rpcStatus(d.byte())}
	idx := d.uvarint()
	now := d.varint()
	w.msg = d.string()
	var m seqMark
	if d.err == nil && len(d.b) > 0 {
		m = d.seqMark()
	}
	return idx, now, m, w, d.done()
}

// termVouch reads what appendTermVouch appended.
func (d *decoder) termVouch() termVouch {
	term := d.uvarint()
	id := d.bytes()
	if d.err == nil && len(id) > maxVouchIDBytes {
		d.err = fmt.Errorf("node id over %d bytes", maxVouchIDBytes)
	}
	return termVouch{term: term, id: string(id), echo: d.seqMark()}
}

// decodeReadIndexRequest decodes a methodReadIndex request.
func decodeReadIndexRequest(b []byte) (termVouch, error) {
	if len(b) == 0 {
		return termVouch{}, nil
	}
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat && d.err == nil {
		return termVouch{}, fmt.Errorf("unsupported format %d", v)
	}
	v := d.termVouch()
	switch {
	case d.err != nil:
		return termVouch{}, d.err
	case len(d.b) != 0:
		return termVouch{}, errors.New("trailing bytes")
	}
	return v, nil
}
