package store

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func est(off, err time.Duration) estimate { return estimate{offset: off, err: err, ok: true} }

var unknownEst = estimate{}

// view3 is n1's view of a three-voter cluster {n1, n2, n3}.
func view3() *clockView {
	return &clockView{selfVoter: true, voters: 3, peers: []clockPeer{{id: "n2", voter: true}, {id: "n3", voter: true}}}
}

func TestClockVerdictNeedsAMajority(t *testing.T) {
	const bound = 500 * time.Millisecond
	ms := time.Millisecond
	tests := []struct {
		name        string
		view        *clockView
		est         []estimate
		ok, certain bool
		within      []bool // peerWithin per peer
		worstID     string // expected in the verdict when not ok
	}{
		{"all close", view3(), []estimate{est(10*ms, ms), est(-20*ms, ms)}, true, false, []bool{true, true}, ""},
		{"one peer 20 minutes ahead", view3(), []estimate{est(10*ms, ms), est(20*time.Minute, ms)}, true, false, []bool{true, false}, ""},
		{"this node 20 minutes ahead", view3(), []estimate{est(-20*time.Minute, ms), est(-20*time.Minute+5*ms, ms)}, false, true, []bool{true, true}, "n2"},
		{"this node behind, one peer unmeasured", view3(), []estimate{est(20*time.Minute, ms), unknownEst}, false, false, []bool{false, false}, "n2"},
		{"the error counts against agreement", view3(), []estimate{est(495*ms, 10*ms), est(490*ms, 20*ms)}, false, true, []bool{true, true}, "n2"},
		{"exactly at the bound agrees", view3(), []estimate{est(490*ms, 10*ms), est(2*time.Second, ms)}, true, false, []bool{true, false}, ""},
		{"all three disagree", view3(), []estimate{est(2*time.Second, ms), est(-2*time.Second, ms)}, false, true, []bool{false, false}, "n2"},
		{"single voter", &clockView{selfVoter: true, voters: 1}, nil, true, false, nil, ""},
		{"a non-voter peer does not count", &clockView{selfVoter: true, voters: 2, peers: []clockPeer{{id: "n2", voter: true}, {id: "n4"}}},
			[]estimate{est(time.Hour, ms), est(0, ms)}, false, true, []bool{false, false}, "n2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.view.judge(tc.est, bound)
			if v.ok != tc.ok || v.certain() != tc.certain {
				t.Fatalf("verdict %+v (%s): ok %v certain %v, want %v %v", v, v, v.ok, v.certain(), tc.ok, tc.certain)
			}
			if !tc.ok && v.worstID != tc.worstID {
				t.Fatalf("worst %q, want %q", v.worstID, tc.worstID)
			}
			for i, want := range tc.within {
				if got := tc.view.peerWithin(i, tc.est, bound); got != want {
					t.Fatalf("peerWithin(%s) = %v, want %v", tc.view.peers[i].id, got, want)
				}
			}
		})
	}
}

// A sample is read back corrected for steps of this node's own wall clock,
// so a local step shows at once, before the next ping.
func TestClockSampleSeesLocalStepsAtOnce(t *testing.T) {
	mono := time.Now()
	wall := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := clockSample{offset: 3 * time.Millisecond, err: time.Millisecond, wallNs: wall.UnixNano(), mono: mono}
	later := mono.Add(time.Second)
	if got := s.at(wall.Add(time.Second).UnixNano(), later); got != 3*time.Millisecond {
		t.Fatalf("no step: offset %s", got)
	}
	if got := s.at(wall.Add(time.Second+20*time.Minute).UnixNano(), later); got != 3*time.Millisecond-20*time.Minute {
		t.Fatalf("this node stepped 20m forward: offset %s, want the peer 20m behind", got)
	}
	if got := s.at(wall.Add(time.Second-20*time.Minute).UnixNano(), later); got != 3*time.Millisecond+20*time.Minute {
		t.Fatalf("this node stepped 20m back: offset %s", got)
	}
	if !s.fresh(later) || s.fresh(mono.Add(clockSampleMaxAge+time.Millisecond)) {
		t.Fatal("freshness")
	}
}

// skewable returns a tweak giving each node a clock offset it can change.
func skewable(offsets map[string]*atomic.Int64, tweak func(*Config)) func(*Config) {
	var mu sync.Mutex
	return func(cfg *Config) {
		if tweak != nil {
			tweak(cfg)
		}
		mu.Lock()
		off := offsets[cfg.NodeID]
		if off == nil {
			off = new(atomic.Int64)
			offsets[cfg.NodeID] = off
		}
		mu.Unlock()
		cfg.Clock = func() time.Time { return time.Now().Add(time.Duration(off.Load())).Round(0) }
	}
}

// The leader's clock jumps 20 minutes: it stamps nothing with it, hands
// leadership to a node within bound, is refused as a transfer target, is
// not ready, and hands leadership back at once when raft elects it anyway.
// Keys with a TTL and idempotency keys survive, on every node.
func TestClockSkewedLeaderHandsOverAndStampsNothing(t *testing.T) {
	offsets := map[string]*atomic.Int64{}
	c := newTestCluster(t, 3, skewable(offsets, nil))
	l := c.leader()
	waitFor(t, 10*time.Second, "every clock measured", func() bool {
		for _, nd := range c.nodes {
			for _, pc := range nd.store.clockInfo() {
				if !pc.Measured || !pc.WithinBound {
					return false
				}
			}
		}
		return true
	})

	start := time.Now()
	k := mustSet(t, l, "k600", `"keep-me"`, 600*time.Second)
	fp := [32]byte{1}
	opts := WriteOptions{IdempotencyKey: "X1", Fingerprint: fp}
	incr := func(nd *testNode) IncrResult {
		t.Helper()
		r, err := nd.store.Incr(ctxTimeout(t, 10*time.Second), "ctr", 1, 0, opts)
		if err != nil {
			t.Fatalf("incr on %s: %v", nd.id, err)
		}
		return r
	}
	if r := incr(l); r.Value != 1 {
		t.Fatalf("first incr: %d", r.Value)
	}

	for _, jump := range []time.Duration{20 * time.Minute, -20 * time.Minute} {
		func() {
			l := c.leader()
			// Writers keep going through every node while the clock jumps;
			// no write may carry the skewed time.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var bad atomic.Value
			stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
			defer stopWriters()
			for i, nd := range c.nodes {
				wg.Go(func() {
					for n := 0; ; n++ {
						select {
						case <-stop:
							return
						default:
						}
						before := time.Now()
						r, err := nd.store.Set(ctxTimeout(t, 10*time.Second), fmt.Sprintf("w%d-%d", i, n), []byte("1"), time.Hour)
						if err != nil {
							if !errors.Is(err, ErrClockOffset) && !errors.Is(err, ErrOutcomeUnknown) && !errors.Is(err, ErrNoLeader) {
								bad.Store(fmt.Sprintf("write through %s: %v", nd.id, err))
							}
							continue
						}
						lo, hi := before.Add(time.Hour-time.Second), time.Now().Add(time.Hour+time.Second)
						if r.ExpiresAt.Before(lo) || r.ExpiresAt.After(hi) {
							bad.Store(fmt.Sprintf("write through %s stamped expiry %s, want within [%s, %s]", nd.id, r.ExpiresAt, lo, hi))
						}
					}
				})
			}
			jumped := time.Now()
			offsets[l.id].Store(int64(jump))
			var nl *testNode
			waitFor(t, 15*time.Second, "leadership to leave the skewed node", func() bool {
				nl = c.leader()
				return nl != l
			})
			t.Logf("clock of %s jumped %s: leadership moved to %s after %s", l.id, jump, nl.id, time.Since(jumped).Round(time.Millisecond))
			stopWriters()
			if b := bad.Load(); b != nil {
				t.Fatal(b)
			}

			// Refused as a target, through the leader and through itself.
			for _, via := range []*testNode{nl, l} {
				if _, err := via.store.TransferLeader(ctxTimeout(t, 5*time.Second), l.id); !errors.Is(err, ErrClockOffset) {
					t.Fatalf("transfer to the skewed %s via %s: %v, want ErrClockOffset", l.id, via.id, err)
				}
			}
			waitFor(t, 5*time.Second, "the skewed node not ready", func() bool {
				return errors.Is(l.store.Ready(ctxTimeout(t, 2*time.Second)), ErrClockOffset)
			})
			if err := nl.store.Ready(ctxTimeout(t, 5*time.Second)); err != nil {
				t.Fatalf("leader %s not ready: %v", nl.id, err)
			}
			nodes, err := nl.store.Nodes(ctxTimeout(t, 5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range nodes {
				if n.ID == l.id && (n.Clock.WithinBound || (n.Clock.Offset-jump).Abs() > time.Second) {
					t.Fatalf("%s's view of %s's clock: %+v, want %s out of bound", nl.id, l.id, n.Clock, jump)
				}
			}

			// raft cannot refuse an election: make the skewed node win one
			// (bypassing the store's checks), and it hands leadership away
			// again without stamping time.
			var elected time.Time
			waitFor(t, 15*time.Second, "the skewed node elected", func() bool {
				for _, nd := range c.nodes {
					if nd.store.IsLeader() && nd != l {
						err := nd.store.raft.LeadershipTransferToServer(raft.ServerID(l.id), raft.ServerAddress(l.addr)).Error()
						elected = time.Now()
						return err == nil
					}
				}
				return false
			})
			waitFor(t, 15*time.Second, "the skewed node to hand leadership away", func() bool {
				return !l.store.IsLeader() && c.leader() != l
			})
			t.Logf("%s elected with its clock %s off: handed leadership away after %s", l.id, jump, time.Since(elected).Round(time.Millisecond))

			for _, nd := range c.nodes {
				if it := mustGet(t, nd, "k600"); it.Version != k.Version || !it.ExpiresAt.Equal(k.ExpiresAt) {
					t.Fatalf("k600 on %s: %+v, want version %d expiring %s", nd.id, it, k.Version, k.ExpiresAt)
				}
				if r := incr(nd); r.Value != 1 {
					t.Fatalf("keyed incr retried through %s: %d, want the original 1", nd.id, r.Value)
				}
			}
			offsets[l.id].Store(0)
			waitFor(t, 10*time.Second, "the clock back within bound", func() bool {
				return l.store.clockWithinBound().ok && l.store.Ready(ctxTimeout(t, 2*time.Second)) == nil
			})
		}()
	}
	// Back within bound, it may lead again.
	l = c.leader()
	for _, nd := range c.followers(l) {
		if got, err := l.store.TransferLeader(ctxTimeout(t, 10*time.Second), nd.id); err != nil || got != nd.id {
			t.Fatalf("transfer to %s after its clock was fixed: %q %v", nd.id, got, err)
		}
		break
	}
	t.Logf("whole test %s", time.Since(start).Round(time.Millisecond))
}

// The clock ping is bounded: it takes no payload and its answer is one
// format byte and one varint; the refusal of a clock out of bound crosses
// the wire as its own status, so a follower's caller sees ErrClockOffset.
func TestClockPingWireFormat(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	s := c.nodes[0].store
	resp, err := s.handleRPC(ctxTimeout(t, time.Second), methodClockPing, nil)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := decodeClockPong(resp)
	if err != nil || time.Since(time.Unix(0, ns)).Abs() > time.Second {
		t.Fatalf("pong %v %v", time.Unix(0, ns), err)
	}
	if _, err := s.handleRPC(ctxTimeout(t, time.Second), methodClockPing, []byte{1}); err == nil {
		t.Fatal("a ping with a payload was answered")
	}
	for _, bad := range [][]byte{nil, {rpcFormat}, {2, 0}, append(append([]byte{}, resp...), 0)} {
		if _, err := decodeClockPong(bad); err == nil {
			t.Fatalf("decoded %v", bad)
		}
	}
	refused := fmt.Errorf("%w: %w: clock", errNotCommitted, ErrClockOffset)
	if st := statusOf(refused); st != statusClockOffset {
		t.Fatalf("status %d", st)
	}
	if err := (wireError{status: statusClockOffset, msg: "x"}).err(); !errors.Is(err, ErrClockOffset) || !errors.Is(err, errNotCommitted) {
		t.Fatalf("status error: %v", err)
	}
	// A single voter always agrees with itself.
	waitFor(t, 5*time.Second, "the view", func() bool { return s.clockWithinBound().ok })
	if _, err := s.stampNow(); err != nil {
		t.Fatal(err)
	}
}

// With no majority of agreeing clocks nobody may decide time: writes and
// linearizable reads are refused with ErrClockOffset (nothing written), the
// TTL key is neither expired nor extended, and the cluster resumes by itself
// once the clocks agree again.
func TestClockNoMajorityRefusesTimeAndRecovers(t *testing.T) {
	offsets := map[string]*atomic.Int64{}
	c := newTestCluster(t, 3, skewable(offsets, nil))
	l := c.leader()
	k := mustSet(t, l, "k600", `"keep-me"`, 600*time.Second)
	fs := c.followers(l)
	offsets[fs[0].id].Store(int64(20 * time.Minute))
	offsets[fs[1].id].Store(int64(-20 * time.Minute))
	waitFor(t, 10*time.Second, "every node out of bound", func() bool {
		for _, nd := range c.nodes {
			if nd.store.clockWithinBound().ok {
				return false
			}
		}
		return true
	})
	for _, nd := range c.nodes {
		if _, err := nd.store.Set(ctxTimeout(t, 2*time.Second), "refused", []byte("1"), time.Minute); !errors.Is(err, ErrClockOffset) {
			t.Fatalf("write through %s with no agreeing majority: %v, want ErrClockOffset", nd.id, err)
		}
		if _, err := nd.store.Get(ctxTimeout(t, 2*time.Second), "k600", Linearizable); !errors.Is(err, ErrClockOffset) {
			t.Fatalf("linearizable read through %s: %v, want ErrClockOffset", nd.id, err)
		}
	}
	for _, id := range []string{fs[0].id, fs[1].id} {
		offsets[id].Store(0)
	}
	waitFor(t, 10*time.Second, "the clocks to agree again", func() bool {
		for _, nd := range c.nodes {
			if !nd.store.clockWithinBound().ok {
				return false
			}
		}
		return true
	})
	l = c.leader()
	for _, nd := range c.nodes {
		if it := mustGet(t, nd, "k600"); it.Version != k.Version || !it.ExpiresAt.Equal(k.ExpiresAt) {
			t.Fatalf("k600 on %s: %+v", nd.id, it)
		}
		if _, err := nd.store.Get(ctxTimeout(t, 5*time.Second), "refused", Linearizable); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a refused write exists on %s: %v", nd.id, err)
		}
	}
	mustSet(t, l, "after", "1", time.Minute)
}
