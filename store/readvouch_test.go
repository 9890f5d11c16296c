package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestFollowerTermConfirmsReadIndex: in a three-voter cluster a follower's
// read-index calls are confirmed by its term, without a leadership check per
// call, and its concurrent reads still see every write acknowledged before
// they began (TestConcurrentFollowerReadsSeeAcknowledgedWrites checks the
// same under writes on every node).
func TestFollowerTermConfirmsReadIndex(t *testing.T) {
	c, regs := newMeteredCluster(t)
	leader := c.leader()
	f := c.followers(leader)[0]
	checks := func() float64 {
		v, _ := sample(t, regs[leader.id], "quorumkv_read_index_confirmations_total", "by", "leadership_check")
		return v
	}
	vouched := func() float64 {
		v, _ := sample(t, regs[leader.id], "quorumkv_read_index_confirmations_total", "by", "follower_term")
		return v
	}
	checks0, vouched0 := checks(), vouched()

	const readers, rounds = 16, 5
	for round := range rounds {
		want := fmt.Sprintf(`{"round":%d}`, round)
		mustSet(t, c.followers(leader)[1], "vouched", want, 0)
		var wg sync.WaitGroup
		errs := make(chan error, readers)
		for range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				it, err := f.store.Get(ctxTimeout(t, 10*time.Second), "vouched", Linearizable)
				switch {
				case err != nil:
					errs <- err
				case string(it.Value) != want:
					errs <- fmt.Errorf("read %s after %s was acknowledged", it.Value, want)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	calls, checked := vouched()-vouched0, checks()-checks0
	t.Logf("%d follower reads: %v calls confirmed by the follower's term, %v leadership checks", readers*rounds, calls, checked)
	if calls < rounds {
		t.Fatalf("%v follower calls confirmed by term for %d rounds of reads: the vouch is not used", calls, rounds)
	}
	if checked >= calls {
		t.Fatalf("%v leadership checks for %v vouched follower calls: calls still wait for checks", checked, calls)
	}
}

// peerKeyForTest carries the identity a test's PeerAuth reports.
type peerKeyForTest struct{}

// TestVouchNeedsSameTermAuthenticatedVoterMajority: the leader accepts a
// vouch only from the authenticated member it names, in its own current
// term, when that member and the leader are a majority of the voters.
func TestVouchNeedsSameTermAuthenticatedVoterMajority(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.AllowUnauthenticatedPeers = false
		cfg.PeerAuth = func(ctx context.Context) (string, bool) {
			id, ok := ctx.Value(peerKeyForTest{}).(string)
			return id, ok
		}
	})
	leader := c.leader()
	f := c.followers(leader)[0]
	s := leader.store
	term := s.raft.CurrentTerm()
	as := func(id string) context.Context {
		return context.WithValue(context.Background(), peerKeyForTest{}, id)
	}
	if idx, _, ok := s.vouchedReadIndex(as(f.id), termVouch{term: term, id: f.id}); !ok || idx < s.fsm.AppliedIndex() {
		t.Fatalf("vouch of %s in term %d refused (index %d, applied %d)", f.id, term, idx, s.fsm.AppliedIndex())
	}
	for name, tc := range map[string]struct {
		ctx context.Context
		v   termVouch
	}{
		"earlier term":          {as(f.id), termVouch{term: term - 1, id: f.id}},
		"later term":            {as(f.id), termVouch{term: term + 1, id: f.id}},
		"no term":               {as(f.id), termVouch{id: f.id}},
		"other member's name":   {as(f.id), termVouch{term: term, id: c.followers(leader)[1].id}},
		"unauthenticated":       {context.Background(), termVouch{term: term, id: f.id}},
		"the leader itself":     {as(leader.id), termVouch{term: term, id: leader.id}},
		"not in the membership": {as("n9"), termVouch{term: term, id: "n9"}},
	} {
		if _, _, ok := s.vouchedReadIndex(tc.ctx, tc.v); ok {
			t.Errorf("%s: vouch accepted", name)
		}
	}
}

// TestVouchNotEnoughInFiveVoters: with five voters a follower and the leader
// are not a majority, so a vouch is refused and the leadership check runs.
func TestVouchNotEnoughInFiveVoters(t *testing.T) {
	c := newTestCluster(t, 5, nil)
	leader := c.leader()
	f := c.followers(leader)[0]
	term := leader.store.raft.CurrentTerm()
	if _, _, ok := leader.store.vouchedReadIndex(context.Background(), termVouch{term: term, id: f.id}); ok {
		t.Fatal("a single follower's vouch confirmed a read index among five voters")
	}
	if _, err := f.store.Get(ctxTimeout(t, 10*time.Second), "absent", Linearizable); err != ErrNotFound {
		t.Fatalf("follower read among five voters: %v, want ErrNotFound", err)
	}
}
