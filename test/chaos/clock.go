package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Clock faults. Every node of every scenario runs with --max-clock-offset
// maxClockOffset: the bound the TTL checker tolerates between the clocks that
// stamp and judge expiry. The clock scenario runs the testclock build, whose
// clock offset is re-read from <data-dir>/test-clock-offset, so a clock can
// jump while the node serves load, by far more than the bound: the cluster
// must then keep that clock from deciding any time, and the checkers must
// find nothing beyond the bound.

const (
	// maxClockOffset is every node's --max-clock-offset.
	maxClockOffset = 500 * time.Millisecond
	// clockJump is how far a faulty clock jumps.
	clockJump = 20 * time.Minute
	// probePrefix marks the clock probe's keys (checked by the probe, not
	// by the listing check, which knows only the workload's writes).
	probePrefix = "clockprobe/"
)

// setClockOffset makes n's clock run off by d from now on (testclock build).
func setClockOffset(n *node, d time.Duration) error {
	return os.WriteFile(filepath.Join(n.dataDir, "test-clock-offset"), []byte(d.String()+"\n"), 0o644)
}

// clockProbe writes, before a clock fault, a key with a long TTL and a
// keyed increment, and checks after it, through every node, that the key is
// still readable and that retrying the increment with the same
// Idempotency-Key returns its original result: a clock that stamped time
// 20 minutes off would have expired the one and pruned the other.
type clockProbe struct {
	c        *cluster
	mu       sync.Mutex
	problems []string
	checked  int
}

func (p *clockProbe) fail(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.problems = append(p.problems, fmt.Sprintf(format, args...))
}

// writeBefore stores the probe keys of round i; false if the cluster did
// not accept them (the round is then not checked).
func (p *clockProbe) writeBefore(i int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	key := fmt.Sprintf("%sk600-%d", probePrefix, i)
	for ctx.Err() == nil {
		n := p.c.nodes[p.c.rng.Intn(len(p.c.nodes))]
		resp, err := p.c.api.do(ctx, http.MethodPut, itemURL(n.httpBase(), key), []byte(`{"value":"keep-me","ttlSeconds":600}`))
		if err == nil && resp.status < 300 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for ctx.Err() == nil {
		n := p.c.nodes[p.c.rng.Intn(len(p.c.nodes))]
		v, err := p.incr(ctx, n, i)
		if err == nil {
			if v != 1 {
				p.fail("round %d: first keyed incr through %s returned %d, want 1", i, n.id, v)
			}
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.c.logf("clock probe %d: could not write the probe keys before the fault", i)
	return false
}

func (p *clockProbe) incr(ctx context.Context, n *node, i int) (int64, error) {
	u := itemURL(n.httpBase(), fmt.Sprintf("%sctr-%d", probePrefix, i)) + "/incr"
	resp, err := p.c.api.doWith(ctx, http.MethodPost, u, nil, map[string]string{"Idempotency-Key": fmt.Sprintf("probe-%d", i)})
	if err != nil {
		return 0, err
	}
	if resp.status != http.StatusOK {
		return 0, fmt.Errorf("%d %s", resp.status, resp.body)
	}
	var env struct {
		Data struct {
			Value int64 `json:"value"`
		} `json:"data"`
	}
	return env.Data.Value, json.Unmarshal(resp.body, &env)
}

// checkAfter checks round i's keys through every node (retrying answers
// that prove nothing, such as a 503 while leadership settles).
func (p *clockProbe) checkAfter(i int) {
	key := fmt.Sprintf("%sk600-%d", probePrefix, i)
	for _, n := range p.c.nodes {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var last string
		ok := false
		for ctx.Err() == nil && !ok {
			resp, err := p.c.api.do(ctx, http.MethodGet, itemURL(n.httpBase(), key), nil)
			switch {
			case err != nil:
				last = err.Error()
			case resp.status == http.StatusOK && strings.Contains(string(resp.body), `"keep-me"`):
				ok = true
			case resp.status == http.StatusNotFound:
				p.fail("round %d: %s answers 404 for %s (ttl 600 s, written moments ago): a clock out of bound expired it", i, n.id, key)
				ok = true
			default:
				last = fmt.Sprintf("%d %s", resp.status, resp.body)
			}
			if !ok {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if !ok {
			p.c.logf("clock probe %d: %s did not answer for %s: %s", i, n.id, key, last)
		}
		ok = false
		for ctx.Err() == nil && !ok {
			v, err := p.incr(ctx, n, i)
			if err != nil {
				last = err.Error()
				time.Sleep(100 * time.Millisecond)
				continue
			}
			ok = true
			if v != 1 {
				p.fail("round %d: keyed incr retried through %s returned %d, want the original 1: applied twice", i, n.id, v)
			}
		}
		cancel()
		if !ok {
			p.c.logf("clock probe %d: keyed incr through %s never answered: %s", i, n.id, last)
		}
		p.mu.Lock()
		p.checked++
		p.mu.Unlock()
	}
}

// clockFaults is scenario 8's nemesis. It cycles through three faults under
// load: the leader's clock jumps 20 minutes ahead; the (new) leader's clock
// falls 20 minutes behind; a follower's clock jumps 20 minutes ahead, then
// it is offered leadership (POST /cluster/leader/transfer, which must be
// refused with clock_offset) and the leader is paused so that it may win an
// election anyway (it must hand leadership on at once). Each fault is
// healed by setting the clock right again. The probe checks a TTL key and a
// keyed increment across every fault.
func clockFaults(ctx context.Context, c *cluster) {
	adm := newAPIClient(c.api.apiKey, 5*time.Second)
	defer adm.close()
	probe := c.clockProbe()
	for round := 0; ctx.Err() == nil; round++ {
		l, term, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("clock: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		probed := probe.writeBefore(round)
		switch round % 3 {
		case 0, 1:
			jump := clockJump
			kind := "clock-jump-ahead"
			if round%3 == 1 {
				jump, kind = -clockJump, "clock-jump-behind"
			}
			f := c.begin(kind, l)
			f.needTermRise = true
			f.needLeaderMoved = true
			if err := setClockOffset(l, jump); err != nil {
				c.t.Errorf("set %s's clock: %v", l.id, err)
			}
			jumped := time.Now()
			moved := c.waitLeaderNot(l, term, 10*time.Second)
			if moved {
				f.leaderMovedAfter = time.Since(jumped)
				f.Detail = fmt.Sprintf("leader's clock %+v; leadership moved after %s", jump, f.leaderMovedAfter.Round(time.Millisecond))
			} else {
				f.Detail = fmt.Sprintf("leader's clock %+v; leadership did not move", jump)
			}
			c.logf("clock: %s", f.Detail)
			sleep(context.Background(), time.Second)
			if err := setClockOffset(l, 0); err != nil {
				c.t.Errorf("reset %s's clock: %v", l.id, err)
			}
			c.end(f)
		case 2:
			fs := c.others(l)
			fl := fs[c.rng.Intn(len(fs))]
			f := c.begin("clock-skewed-follower", fl)
			f.needTransferRefused = true
			if err := setClockOffset(fl, clockJump); err != nil {
				c.t.Errorf("set %s's clock: %v", fl.id, err)
			}
			// Offer it leadership once the leader has measured the new offset
			// (within a ping interval or two): an offer made before that
			// is rightly accepted, and the node hands leadership on itself.
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) && !c.measuredOutOfBound(adm, l, fl) {
				time.Sleep(50 * time.Millisecond)
			}
			for time.Now().Before(deadline) {
				rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				resp, err := adm.do(rctx, http.MethodPost, l.httpBase()+"/cluster/leader/transfer", []byte(fmt.Sprintf(`{"id":%q}`, fl.id)))
				cancel()
				if err == nil && resp.status == http.StatusServiceUnavailable && resp.code == "clock_offset" {
					f.transferRefused = true
					break
				}
				if err == nil && resp.status == http.StatusOK {
					f.Detail = fmt.Sprintf("transfer to the skewed %s was accepted", fl.id)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			// Now the leader disappears for a moment: the skewed follower may
			// win the election, and must hand leadership on.
			if err := l.pause(); err != nil {
				c.t.Errorf("pause %s: %v", l.id, err)
			}
			sleep(context.Background(), 2500*time.Millisecond)
			if err := l.resume(); err != nil {
				c.t.Errorf("resume %s: %v", l.id, err)
			}
			if f.Detail == "" {
				f.Detail = fmt.Sprintf("transfer to %s (clock %+v) refused: %v; leader %s paused 2.5 s", fl.id, clockJump, f.transferRefused, l.id)
			}
			if err := setClockOffset(fl, 0); err != nil {
				c.t.Errorf("reset %s's clock: %v", fl.id, err)
			}
			c.end(f)
		}
		if err := c.waitHealthy(15 * time.Second); err != nil {
			c.logf("clock: after round %d: %v", round, err)
		}
		if probed {
			probe.checkAfter(round)
		}
		sleep(ctx, time.Second)
	}
}

// measuredOutOfBound reports whether via's GET /cluster/nodes shows n's
// clock outside the bound.
func (c *cluster) measuredOutOfBound(adm *apiClient, via, n *node) bool {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var env struct {
		Data struct {
			Nodes []struct {
				ID    string `json:"id"`
				Clock *struct {
					WithinBound bool `json:"withinBound"`
				} `json:"clock"`
			} `json:"nodes"`
		} `json:"data"`
	}
	if err := adm.getJSON(ctx, via.httpBase()+"/cluster/nodes", &env); err != nil {
		return false
	}
	for _, m := range env.Data.Nodes {
		if m.ID == n.id {
			return m.Clock != nil && !m.Clock.WithinBound
		}
	}
	return false
}

// waitLeaderNot waits until a node other than l leads in a term above term.
func (c *cluster) waitLeaderNot(l *node, term uint64, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for id, st := range c.statuses() {
			if id != l.id && st.State == "Leader" && st.Term > term {
				return true
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
	return false
}

// clockProbe returns the cluster's probe, creating it on first use.
func (c *cluster) clockProbe() *clockProbe {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.probe == nil {
		c.probe = &clockProbe{c: c}
	}
	return c.probe
}
