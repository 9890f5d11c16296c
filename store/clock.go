package store

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// Clock offset (store/DESIGN.md, "Clock offset"). Every node measures the
// offset of its clock to every other server's over the peer port's RPC
// protocol, NTP-style: it sends an empty clock ping, the peer answers its
// wall clock, and with the round trip rtt measured on the monotonic clock,
//
//	offset = remote - (local at send + rtt/2),  error <= rtt/2.
//
// Only the latest sample per peer is kept. A sample is read back corrected
// for any step of this node's own wall clock since it was taken (the wall
// clock's progress compared with the monotonic clock's), so a local step (an
// NTP step, a VM resumed after a pause) is seen at once, not at the next ping.
//
// A node is within bound when its clock agrees, to within MaxClockOffset
// with each sample's error counted against agreement, with a majority of the
// voters (itself counted). Outside it the node decides no time: it refuses to stamp any
// command (writes, expirations, barriers, membership and restore commands),
// to hand out its clock for linearizable reads, and to stay leader.

// ErrClockOffset lives with the other sentinels (errors.go).

const (
	// clockPingTimeout bounds one ping's round trip. A slower answer is
	// dropped: its error (rtt/2) would be too coarse to prove anything.
	clockPingTimeout = time.Second
	// clockSampleMaxAge: a sample older than this no longer counts; a peer
	// that has not answered for that long neither agrees nor disagrees.
	clockSampleMaxAge = 5 * time.Second
	// clockGuardInterval: how often a leader re-checks its clock between
	// proposals (every time-dependent proposal checks it too).
	clockGuardInterval = 100 * time.Millisecond
)

// clockSample is one measurement of a peer's clock against this node's.
type clockSample struct {
	offset time.Duration // peer's wall clock minus this node's, at the midpoint
	err    time.Duration // half the round trip: the offset is exact to within it
	wallNs int64         // this node's wall clock (Config.Clock) at the midpoint
	mono   time.Time     // time.Now at the midpoint, for its monotonic reading
	sent   time.Time     // time.Now when the ping was sent: a later ping's answer wins
}

// at returns the sample's offset as it stands at this node's wall clock
// wallNs and monotonic instant mono: if this node's wall clock moved more or
// less than real time since the sample, the offset moved the other way.
func (c clockSample) at(wallNs int64, mono time.Time) time.Duration {
	step := time.Duration(wallNs-c.wallNs) - mono.Sub(c.mono)
	return c.offset - step
}

func (c clockSample) fresh(mono time.Time) bool { return mono.Sub(c.mono) <= clockSampleMaxAge }

// clockPeer is the immutable view of one other server in a clockView.
type clockPeer struct {
	id, addr string
	voter    bool
	has      bool // sample is set
	sample   clockSample
}

// clockView is an immutable snapshot of what this node knows of the other
// servers' clocks, swapped atomically so the write path reads it lock-free.
type clockView struct {
	selfVoter bool
	voters    int // voters in the configuration, this node included when it is one
	peers     []clockPeer
}

func (v *clockView) quorum() int { return v.voters/2 + 1 }

// estimate is a peer's offset now, and whether it is fresh enough to count.
type estimate struct {
	offset, err time.Duration
	ok          bool
}

func (v *clockView) estimates(wallNs int64, mono time.Time) []estimate {
	out := make([]estimate, len(v.peers))
	for i, p := range v.peers {
		if p.has && p.sample.fresh(mono) {
			out[i] = estimate{offset: p.sample.at(wallNs, mono), err: p.sample.err, ok: true}
		}
	}
	return out
}

// agrees reports whether two clocks whose offsets (to this node) are a and
// b agree within bound, counting both errors against them.
func agrees(a, b estimate, bound time.Duration) bool {
	d := a.offset - b.offset
	if d < 0 {
		d = -d
	}
	return a.ok && b.ok && d+a.err+b.err <= bound
}

// clockVerdict is this node's standing.
type clockVerdict struct {
	ok      bool // within bound: agrees with a majority of the voters
	agree   int  // voters that agree with this node, itself included
	unknown int  // voters with no fresh sample
	need    int  // a majority of the voters
	// worst is the largest measured offset of a voter this node disagrees
	// with, for messages; worstID names it.
	worst   time.Duration
	worstID string
}

// certain reports whether the node is out of bound whatever the voters it
// has no fresh sample of would answer.
func (v clockVerdict) certain() bool { return !v.ok && v.agree+v.unknown < v.need }

func (v clockVerdict) String() string {
	if v.ok {
		return fmt.Sprintf("clock agrees with %d of %d needed voters", v.agree, v.need)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "this node's clock agrees with %d voter(s) (itself included) where %d are needed", v.agree, v.need)
	if v.worstID != "" {
		fmt.Fprintf(&b, "; %s's clock is %s %s", v.worstID, abs(v.worst).Round(time.Millisecond), aheadBehind(v.worst))
	}
	if v.unknown > 0 {
		fmt.Fprintf(&b, "; %d voter(s) not measured in the last %s", v.unknown, clockSampleMaxAge)
	}
	return b.String()
}

func aheadBehind(peerOffset time.Duration) string {
	if peerOffset > 0 {
		return "ahead of this node's"
	}
	return "behind this node's"
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// judge evaluates this node against the voters. self is the zero estimate
// (this node agrees with itself exactly).
func (v *clockView) judge(est []estimate, bound time.Duration) clockVerdict {
	r := clockVerdict{need: v.quorum()}
	if v.selfVoter {
		r.agree++
	}
	self := estimate{ok: true}
	for i, p := range v.peers {
		if !p.voter {
			continue
		}
		switch {
		case !est[i].ok:
			r.unknown++
		case agrees(self, est[i], bound):
			r.agree++
		case abs(est[i].offset) > abs(r.worst):
			r.worst, r.worstID = est[i].offset, p.id
		}
	}
	r.ok = r.agree >= r.need
	return r
}

// peerWithin estimates, from this node's samples, whether peer i's clock
// agrees with a majority of the voters (itself, this node and the others,
// compared pairwise through their offsets to this node).
func (v *clockView) peerWithin(i int, est []estimate, bound time.Duration) bool {
	if !est[i].ok {
		return false
	}
	n := 0
	if v.peers[i].voter {
		n++
	}
	if v.selfVoter && agrees(estimate{ok: true}, est[i], bound) {
		n++
	}
	for j, q := range v.peers {
		if j != i && q.voter && agrees(est[i], est[j], bound) {
			n++
		}
	}
	return n >= v.quorum()
}

// clockState is a Store's clock bookkeeping.
type clockState struct {
	view atomic.Pointer[clockView]
	// kick wakes the guard when a proposal found the clock out of bound.
	kick chan struct{}

	mu       sync.Mutex
	samples  map[string]clockSample
	inflight map[string]bool
	// outside records, per peer and for this node (""), whether the last
	// evaluation found it beyond the bound, so crossings are logged once.
	outside map[string]bool
	// config is the latest raft configuration the pinger read.
	config []raft.Server
}

func newClockState() *clockState {
	return &clockState{
		kick:     make(chan struct{}, 1),
		samples:  map[string]clockSample{},
		inflight: map[string]bool{},
		outside:  map[string]bool{},
	}
}

// publish rebuilds the view from the configuration and samples; c.mu held.
func (c *clockState) publish(self string) {
	v := &clockView{}
	for _, srv := range c.config {
		voter := srv.Suffrage == raft.Voter
		if voter {
			v.voters++
		}
		if string(srv.ID) == self {
			v.selfVoter = voter
			continue
		}
		smp, has := c.samples[string(srv.ID)]
		v.peers = append(v.peers, clockPeer{id: string(srv.ID), addr: string(srv.Address), voter: voter, has: has, sample: smp})
	}
	c.view.Store(v)
}

// clockVerdictAt judges this node at the given readings of its wall clock
// and of the monotonic clock.
func (s *Store) clockVerdictAt(wall time.Time, mono time.Time) clockVerdict {
	v := s.clock.view.Load()
	if v == nil || v.voters == 0 {
		// Not measured yet, or not in a configuration (a node waiting to
		// join): nothing is known either way.
		return clockVerdict{need: 1, unknown: 1}
	}
	return v.judge(v.estimates(wall.UnixNano(), mono), s.cfg.MaxClockOffset)
}

// stampNow returns the time, in Unix milliseconds, that a time-dependent
// command proposed now may carry, or an error wrapping ErrClockOffset when
// this node's clock is not within bound of a majority. The verdict uses the
// same clock reading as the stamp, so a clock that steps between the check
// and the stamp cannot slip through.
func (s *Store) stampNow() (int64, error) {
	wall, mono := s.cfg.Clock(), time.Now()
	if v := s.clockVerdictAt(wall, mono); !v.ok {
		select {
		case s.clock.kick <- struct{}{}:
		default:
		}
		return 0, fmt.Errorf("%w: %s (bound %s)", ErrClockOffset, v, s.cfg.MaxClockOffset)
	}
	return wall.UnixMilli(), nil
}

// clockWithinBound judges this node's clock now (see clockVerdict).
func (s *Store) clockWithinBound() clockVerdict {
	return s.clockVerdictAt(s.cfg.Clock(), time.Now())
}
