package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

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

// Wire: a methodReadIndex request is empty (no vouch; what older followers
// send, and what older leaders ignore) or rpcFormat, term, id. A
// methodReadIndexGet request of format rpcFormatV2 appends term and id after
// format 1's fields.

// encodeReadIndexRequest encodes a methodReadIndex request carrying v.
func encodeReadIndexRequest(v termVouch) []byte {
	return appendTermVouch(append(make([]byte, 0, 16+len(v.id)), rpcFormat), v)
}

// appendTermVouch appends v's fields to b.
func appendTermVouch(b []byte, v termVouch) []byte {
	b = binary.AppendUvarint(b, v.term)
	b = binary.AppendUvarint(b, uint64(len(v.id)))
	return append(b, v.id...)
}

// termVouch reads what appendTermVouch appended.
func (d *decoder) termVouch() termVouch {
	term := d.uvarint()
	id := d.bytes()
	if d.err == nil && len(id) > maxVouchIDBytes {
		d.err = fmt.Errorf("node id over %d bytes", maxVouchIDBytes)
	}
	return termVouch{term: term, id: string(id)}
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
