package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// TestFollowerEchoesConfirmLeaderReads: while both followers serve reads,
// rounds of the leader's own reads are confirmed by the followers' later
// calls (no heartbeat), and every read, on any node, sees each write
// acknowledged before it began.
func TestFollowerEchoesConfirmLeaderReads(t *testing.T) {
	c, regs := newMeteredCluster(t)
	leader := c.leader()
	confirmed := func(by string) float64 {
		v, _ := sample(t, regs[leader.id], "quorumkv_read_index_confirmations_total", "by", by)
		return v
	}
	echoed0, checks0 := confirmed("follower_echo"), confirmed("leadership_check")

	var acked atomic.Int64
	mustSet(t, leader, "echo", "0", 0)
	deadline := time.Now().Add(1500 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	wg.Add(1)
	go func() { // writes through a follower
		defer wg.Done()
		w := c.followers(leader)[1]
		for n := int64(1); time.Now().Before(deadline); n++ {
			if _, err := w.store.Set(ctxTimeout(t, 10*time.Second), "echo", []byte(strconv.FormatInt(n, 10)), 0); err != nil {
				errs <- fmt.Errorf("write %d: %w", n, err)
				return
			}
			acked.Store(n)
		}
	}()
	var reads atomic.Int64
	for r := range 12 {
		nd := c.running()[r%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				floor := acked.Load()
				it, err := nd.store.Get(ctxTimeout(t, 10*time.Second), "echo", Linearizable)
				if err != nil {
					errs <- fmt.Errorf("read on %s: %w", nd.id, err)
					return
				}
				if got, _ := strconv.ParseInt(string(it.Value), 10, 64); got < floor {
					errs <- fmt.Errorf("read on %s = %d after %d was acknowledged", nd.id, got, floor)
					return
				}
				reads.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	echoed, checks := confirmed("follower_echo")-echoed0, confirmed("leadership_check")-checks0
	t.Logf("%d reads on three nodes, %d writes: %v leader rounds confirmed by an echo, %v by a leadership check", reads.Load(), acked.Load(), echoed, checks)
	if echoed == 0 {
		t.Fatal("no leader round was confirmed by a follower's echo while both followers read")
	}
}

// TestEchoOfAnotherTermConfirmsNothing: an echo counts only in the term its
// mark was issued in, above the number a read recorded, from a member that
// makes a majority with the leader.
func TestEchoOfAnotherTermConfirmsNothing(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	f := c.followers(leader)[0]
	s := leader.store
	term := s.raft.CurrentTerm()
	mark := s.answerMark()
	if mark.term != term || mark.seq == 0 {
		t.Fatalf("answer mark %+v in term %d", mark, term)
	}
	// A vouch echoing a mark of an earlier term is accepted as a vouch, but
	// its echo is not heard.
	if _, _, ok := s.vouchedReadIndex(context.Background(), termVouch{term: term, id: f.id, echo: seqMark{term: term - 1, seq: mark.seq + 100}}); !ok {
		t.Fatal("vouch refused")
	}
	if _, ok := s.echo.heardAfter(term, mark.seq-1); ok {
		t.Fatal("an echo of an earlier term's mark was heard")
	}
	if s.echoConfirms(term, mark.seq-1) {
		t.Fatal("an echo of an earlier term's mark confirmed a round")
	}
	if _, _, ok := s.vouchedReadIndex(context.Background(), termVouch{term: term, id: f.id, echo: mark}); !ok {
		t.Fatal("vouch refused")
	}
	if !s.echoConfirms(term, mark.seq-1) {
		t.Fatal("an echo of a mark issued after a read recorded its number did not confirm it")
	}
	if s.echoConfirms(term, mark.seq) {
		t.Fatal("an echo confirmed a read that recorded the echoed mark's own number (the answer may have left before the read arrived)")
	}
	if s.echoConfirms(term+1, mark.seq-1) {
		t.Fatal("an echo heard in one term confirmed a round of another")
	}
}

func TestReadIndexVouchWireFormat(t *testing.T) {
	v := termVouch{term: 7, id: "n2", echo: seqMark{term: 7, seq: 123456}}
	got, err := decodeReadIndexRequest(encodeReadIndexRequest(v))
	if err != nil || got != v {
		t.Fatalf("request round trip: %+v %v", got, err)
	}
	if got, err := decodeReadIndexRequest(nil); err != nil || got != (termVouch{}) {
		t.Fatalf("an older follower's empty request: %+v %v", got, err)
	}
	for name, b := range map[string][]byte{
		"format":    append([]byte{9}, encodeReadIndexRequest(v)[1:]...),
		"truncated": encodeReadIndexRequest(v)[:4],
		"trailing":  append(encodeReadIndexRequest(v), 0),
		"long id":   encodeReadIndexRequest(termVouch{term: 1, id: strings.Repeat("n", maxVouchIDBytes+1)}),
	} {
		if _, err := decodeReadIndexRequest(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}

	mark := seqMark{term: 7, seq: 99}
	idx, now, m, w, err := decodeReadIndexAnswer(encodeReadIndexAnswer(42, 1_700_000_000_123, wireError{}, mark))
	if err != nil || idx != 42 || now != 1_700_000_000_123 || m != mark || w.status != statusOK {
		t.Fatalf("answer round trip: %d %d %+v %+v %v", idx, now, m, w, err)
	}
	// An older leader's answer (no mark) still decodes, with no mark.
	idx, _, m, _, err = decodeReadIndexAnswer(encodeReadIndexResponse(42, 1, wireError{}))
	if err != nil || idx != 42 || m != (seqMark{}) {
		t.Fatalf("older answer: %d %+v %v", idx, m, err)
	}
	if _, _, _, _, err := decodeReadIndexAnswer(append(encodeReadIndexAnswer(42, 1, wireError{}, mark), 0)); err == nil {
		t.Fatal("answer with trailing bytes decoded")
	}
}
