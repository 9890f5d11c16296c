package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
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
// after subtracting each sample's error, with a majority of the voters (itself
// counted). Outside it the node decides no time: it refuses to stamp any
// command (writes, expirations, barriers, membership and restore commands),
// to hand out its clock for linearizable reads, and to stay leader.

// methodClockPing: any node answers its wall clock (request: empty; answer:
// format byte, varint Unix nanoseconds).
const methodClockPing uint8 = 24

// ErrClockOffset lives with the other sentinels (types.go).

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

// handleClockPing answers a clock ping with this node's wall clock.
func (s *Store) handleClockPing(req []byte) ([]byte, error) {
	if len(req) != 0 {
		return nil, errors.New("store: clock ping carries no payload")
	}
	return binary.AppendVarint([]byte{rpcFormat}, s.cfg.Clock().UnixNano()), nil
}

func decodeClockPong(b []byte) (int64, error) {
	d := decoder{b: b}
	if v := d.byte(); v != rpcFormat && d.err == nil {
		return 0, fmt.Errorf("unsupported format %d", v)
	}
	ns := d.varint()
	if d.err == nil && len(d.b) != 0 {
		return 0, errors.New("trailing bytes")
	}
	return ns, d.err
}

// clockLoop measures every other server's clock every ClockPingInterval and
// publishes the view; one ping per peer is in flight at most, so a peer that
// does not answer delays nobody else's samples.
func (s *Store) clockLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.ClockPingInterval)
	defer t.Stop()
	var pings sync.WaitGroup
	defer pings.Wait()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel() // runs before pings.Wait: no ping outlives the store
	for {
		f := s.raft.GetConfiguration()
		if err := f.Error(); err == nil {
			s.clock.mu.Lock()
			s.clock.config = f.Configuration().Servers
			for id := range s.clock.samples {
				if !inConfig(s.clock.config, id) {
					delete(s.clock.samples, id)
					delete(s.clock.outside, id)
				}
			}
			s.clock.publish(s.cfg.NodeID)
			for _, srv := range s.clock.config {
				id := string(srv.ID)
				if id == s.cfg.NodeID || s.clock.inflight[id] {
					continue
				}
				s.clock.inflight[id] = true
				pings.Add(1)
				go func() {
					defer pings.Done()
					s.pingClock(ctx, id, string(srv.Address))
				}()
			}
			s.clock.mu.Unlock()
		}
		s.logClockCrossings()
		select {
		case <-s.closing:
			return
		case <-t.C:
		}
	}
}

func inConfig(servers []raft.Server, id string) bool {
	for _, srv := range servers {
		if string(srv.ID) == id {
			return true
		}
	}
	return false
}

// pingClock takes one sample of peer id and publishes it.
func (s *Store) pingClock(ctx context.Context, id, addr string) {
	ctx, cancel := context.WithTimeout(ctx, clockPingTimeout)
	defer cancel()
	sendWall, sendMono := s.cfg.Clock(), time.Now()
	resp, err := s.rpc.Call(ctx, addr, methodClockPing, nil)
	rtt := time.Since(sendMono)
	var remote int64
	if err == nil {
		remote, err = decodeClockPong(resp)
	}
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	s.clock.inflight[id] = false
	if err != nil || rtt > clockPingTimeout {
		s.log.Debug("clock ping failed", "peer", id, "err", err)
		return
	}
	if prev, ok := s.clock.samples[id]; ok && prev.sent.After(sendMono) {
		return // a ping sent later has already answered
	}
	half := rtt / 2
	mid := sendWall.UnixNano() + int64(half)
	s.clock.samples[id] = clockSample{
		offset: time.Duration(remote - mid),
		err:    half,
		wallNs: mid,
		mono:   sendMono.Add(half),
		sent:   sendMono,
	}
	s.clock.publish(s.cfg.NodeID)
}

// measureClocks pings every other voter now and waits for the answers (at
// most clockPingTimeout), so that a decision about who may lead rests on
// samples taken after it was asked for, not up to a ping interval earlier.
func (s *Store) measureClocks(ctx context.Context) {
	v := s.clock.view.Load()
	if v == nil {
		return
	}
	var wg sync.WaitGroup
	for _, p := range v.peers {
		if p.voter {
			wg.Go(func() { s.pingClock(ctx, p.id, p.addr) })
		}
	}
	wg.Wait()
}

// logClockCrossings logs every peer, and this node, that crossed the bound
// since the last call, in either direction.
func (s *Store) logClockCrossings() {
	v := s.clock.view.Load()
	if v == nil {
		return
	}
	wall, mono := s.cfg.Clock(), time.Now()
	est := v.estimates(wall.UnixNano(), mono)
	bound := s.cfg.MaxClockOffset
	s.clock.mu.Lock()
	defer s.clock.mu.Unlock()
	for i, p := range v.peers {
		if !est[i].ok {
			continue
		}
		out := !agrees(estimate{ok: true}, est[i], bound)
		if out == s.clock.outside[p.id] {
			continue
		}
		s.clock.outside[p.id] = out
		attrs := []any{"peer", p.id, "offset_ms", ms(est[i].offset), "error_ms", ms(est[i].err), "bound", bound.String()}
		if out {
			s.log.Warn("peer clock offset beyond bound", attrs...)
		} else {
			s.log.Info("peer clock offset back within bound", attrs...)
		}
	}
	verdict := v.judge(est, bound)
	out := verdict.certain()
	if out != s.clock.outside[""] {
		s.clock.outside[""] = out
		if out {
			s.log.Error("this node's clock is outside the bound of a majority: it will not lead, stamp time or serve as a clock for reads until it agrees again",
				"reason", verdict.String(), "bound", bound.String())
		} else {
			s.log.Info("this node's clock is within bound of a majority again", "reason", verdict.String())
		}
	}
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e3) / 1e3 }

// clockGuardLoop keeps a leader whose clock is out of bound from staying
// leader: it hands leadership to a voter whose clock is within bound, as soon
// as a proposal or its own periodic check finds the clock out, and again
// each time raft elects this node while it still is. With no such voter it
// keeps leadership (every time-dependent proposal is refused meanwhile).
func (s *Store) clockGuardLoop() {
	defer s.wg.Done()
	t := time.NewTicker(clockGuardInterval)
	defer t.Stop()
	var lastNoTarget time.Time
	for {
		select {
		case <-s.closing:
			return
		case <-t.C:
		case <-s.clock.kick:
		}
		if s.raft.State() != raft.Leader {
			continue
		}
		v := s.clockWithinBound()
		if v.ok {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*s.cfg.ElectionTimeout+clockPingTimeout+time.Second)
		s.measureClocks(ctx)
		target, ok := s.clockTransferTarget("")
		if !ok {
			if time.Since(lastNoTarget) > 10*time.Second {
				lastNoTarget = time.Now()
				s.log.Error("leader's clock is outside the bound and no voter's clock is known to be within it: keeping leadership but refusing every time-dependent proposal",
					"reason", v.String())
			}
			cancel()
			continue
		}
		s.log.Warn("leader's clock is outside the bound: transferring leadership", "to", string(target.ID), "reason", v.String())
		_, err := waitFuture(ctx, s.raft.LeadershipTransferToServer(target.ID, target.Address))
		cancel()
		if err != nil {
			s.log.Warn("clock-driven leadership transfer failed; will retry", "to", string(target.ID), "err", err)
		}
	}
}

// clockTransferTarget picks the voter to hand leadership to: want when it
// is not empty (ok only if its clock is within bound as this node measures
// it), otherwise the voter within bound that the leader's monitor last saw
// most caught up.
func (s *Store) clockTransferTarget(want string) (raft.Server, bool) {
	v := s.clock.view.Load()
	if v == nil {
		return raft.Server{}, false
	}
	est := v.estimates(s.cfg.Clock().UnixNano(), time.Now())
	type cand struct {
		srv     raft.Server
		applied uint64
	}
	var cands []cand
	for i, p := range v.peers {
		if !p.voter || (want != "" && p.id != want) || !v.peerWithin(i, est, s.cfg.MaxClockOffset) {
			continue
		}
		c := cand{srv: raft.Server{ID: raft.ServerID(p.id), Address: raft.ServerAddress(p.addr), Suffrage: raft.Voter}}
		if st, ok := s.mon.get(p.id); ok {
			c.applied = st.applied
		}
		cands = append(cands, c)
	}
	if len(cands) == 0 {
		return raft.Server{}, false
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].applied > cands[j].applied })
	return cands[0].srv, true
}

// leadershipTransfer starts a transfer to a voter whose clock is within
// bound, or, with none known, to whichever voter raft picks: used where
// leadership must go regardless (removing or stopping the leader), where a
// node out of bound would hand it on again.
func (s *Store) leadershipTransfer() raft.Future {
	if t, ok := s.clockTransferTarget(""); ok {
		return s.raft.LeadershipTransferToServer(t.ID, t.Address)
	}
	return s.raft.LeadershipTransfer()
}

// checkTransferTarget refuses to hand leadership to voter id unless this
// node's measurements show its clock within bound of a majority.
func (s *Store) checkTransferTarget(id string) error {
	if _, ok := s.clockTransferTarget(id); ok {
		return nil
	}
	v := s.clock.view.Load()
	if v != nil {
		est := v.estimates(s.cfg.Clock().UnixNano(), time.Now())
		for i, p := range v.peers {
			if p.id != id {
				continue
			}
			if !est[i].ok {
				return fmt.Errorf("%w: %s's clock has not been measured in the last %s; not handing it leadership", ErrClockOffset, id, clockSampleMaxAge)
			}
			return fmt.Errorf("%w: %s's clock is %s %s (error %s), and does not agree with a majority within the bound of %s; not handing it leadership",
				ErrClockOffset, id, abs(est[i].offset).Round(time.Millisecond), aheadBehind(est[i].offset), est[i].err.Round(time.Microsecond), s.cfg.MaxClockOffset)
		}
	}
	return fmt.Errorf("%w: %s's clock has not been measured; not handing it leadership", ErrClockOffset, id)
}

// PeerClock is one server's clock as this node measures it.
type PeerClock struct {
	// Measured is false when no sample was ever taken (then the rest is zero).
	Measured bool
	// Offset is the server's clock minus this node's; Error bounds the
	// measurement (half its round trip); Age is the time since the sample.
	Offset, Error, Age time.Duration
	// WithinBound: the server's clock agrees with a majority of the voters
	// within MaxClockOffset, as far as this node's samples show (for this
	// node itself: the node's own verdict).
	WithinBound bool
}

// clockInfo returns this node's view of every server's clock, by ID.
func (s *Store) clockInfo() map[string]PeerClock {
	out := map[string]PeerClock{}
	v := s.clock.view.Load()
	if v == nil {
		return out
	}
	wall, mono := s.cfg.Clock(), time.Now()
	est := v.estimates(wall.UnixNano(), mono)
	out[s.cfg.NodeID] = PeerClock{Measured: true, WithinBound: v.judge(est, s.cfg.MaxClockOffset).ok}
	for i, p := range v.peers {
		if !p.has {
			out[p.id] = PeerClock{}
			continue
		}
		out[p.id] = PeerClock{
			Measured:    true,
			Offset:      p.sample.at(wall.UnixNano(), mono),
			Error:       p.sample.err,
			Age:         mono.Sub(p.sample.mono),
			WithinBound: v.peerWithin(i, est, s.cfg.MaxClockOffset),
		}
	}
	return out
}

// clockCollector exports this node's clock view when Prometheus scrapes.
type clockCollector struct {
	s                     *Store
	offset, errDesc, with *prometheus.Desc
}

func newClockCollector(s *Store) *clockCollector {
	return &clockCollector{
		s: s,
		offset: prometheus.NewDesc("quorumkv_clock_offset_seconds",
			"Measured offset of each other server's clock from this node's (positive: the peer is ahead), corrected for steps of this node's clock since the sample.",
			[]string{"peer"}, nil),
		errDesc: prometheus.NewDesc("quorumkv_clock_offset_error_seconds",
			"Error bound of quorumkv_clock_offset_seconds (half the measuring round trip).",
			[]string{"peer"}, nil),
		with: prometheus.NewDesc("quorumkv_clock_within_bound",
			"1 when this node's clock agrees with a majority of the voters within --max-clock-offset (it may lead and stamp time), else 0.",
			nil, nil),
	}
}

func (c *clockCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.offset
	ch <- c.errDesc
	ch <- c.with
}

func (c *clockCollector) Collect(ch chan<- prometheus.Metric) {
	within := 0.0
	for id, pc := range c.s.clockInfo() {
		if id == c.s.cfg.NodeID {
			if pc.WithinBound {
				within = 1
			}
			continue
		}
		if pc.Measured {
			ch <- prometheus.MustNewConstMetric(c.offset, prometheus.GaugeValue, pc.Offset.Seconds(), id)
			ch <- prometheus.MustNewConstMetric(c.errDesc, prometheus.GaugeValue, pc.Error.Seconds(), id)
		}
	}
	ch <- prometheus.MustNewConstMetric(c.with, prometheus.GaugeValue, within)
}
