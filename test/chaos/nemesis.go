package chaos

import (
	"context"
	"fmt"
	"time"
)

// A nemesis injects faults into c until ctx ends, healing each one before the
// next; at least two injections per scenario. It reports problems with c.t.
type nemesis func(ctx context.Context, c *cluster)

// Fault durations are well above the 1 s election timeout, so a fault on the
// leader always forces an election; recovery gaps let the cluster settle.
const (
	faultHold = 4 * time.Second
	recovery  = 3 * time.Second
)

// killRandom SIGKILLs a random node and restarts it a few seconds later.
func killRandom(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		n := c.nodes[c.rng.Intn(len(c.nodes))]
		f := c.begin("kill", n)
		f.needKilled = []string{n.id}
		f.needFailedOn = []string{n.id}
		if err := n.kill(); err != nil {
			c.t.Errorf("kill %s: %v", n.id, err)
		}
		f.observeKilled(n)
		sleep(context.Background(), 2*time.Second+time.Duration(c.rng.Int63n(int64(2*time.Second))))
		if err := n.start(); err != nil {
			c.t.Errorf("restart %s: %v", n.id, err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// pauseLeader SIGSTOPs the leader for longer than the election timeout, then
// SIGCONTs it. Clients pinned to it keep sending it requests throughout.
func pauseLeader(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		l, term, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("pause: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		f := c.begin("pause-leader", l)
		f.needTermRise = true
		f.needFailedOn = []string{l.id}
		if err := l.pause(); err != nil {
			c.t.Errorf("pause %s: %v", l.id, err)
		}
		c.holdUntilNewLeader(l, term, faultHold, 12*time.Second)
		if err := l.resume(); err != nil {
			c.t.Errorf("resume %s: %v", l.id, err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// isolateLeader cuts the leader off from its peers (both ways) while clients
// still reach it over the bridge.
func isolateLeader(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		l, term, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("isolate: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		f := c.begin("isolate-leader", l)
		f.needTermRise = true
		f.needFailedOn = []string{l.id}
		if err := partition(hostsOf([]*node{l}), hostsOf(c.others(l))); err != nil {
			c.t.Errorf("isolate %s: %v", l.id, err)
		}
		c.holdUntilNewLeader(l, term, faultHold+time.Second, 12*time.Second)
		if err := c.nw.healAll(); err != nil {
			c.t.Errorf("heal: %v", err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// randomPartition splits the nodes into a random minority and majority.
func randomPartition(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		perm := c.rng.Perm(len(c.nodes))
		size := 1 + c.rng.Intn((len(c.nodes)-1)/2) // 1 .. floor((n-1)/2)
		var minority, majority []*node
		for i, p := range perm {
			if i < size {
				minority = append(minority, c.nodes[p])
			} else {
				majority = append(majority, c.nodes[p])
			}
		}
		l, term, _ := c.leader(3 * time.Second)
		f := c.begin("partition", minority...)
		f.Detail = "minority " + joinIDs(minority) + " | majority " + joinIDs(majority)
		f.needFailedOn = sortedIDs(minority)
		for _, m := range minority {
			if m == l {
				f.needTermRise = true // the majority must elect a new leader
			}
		}
		if err := partition(hostsOf(minority), hostsOf(majority)); err != nil {
			c.t.Errorf("partition: %v", err)
		}
		if f.needTermRise {
			c.holdUntilNewLeader(l, term, faultHold+time.Second, 12*time.Second)
		} else {
			sleep(context.Background(), faultHold+time.Second)
		}
		if err := c.nw.healAll(); err != nil {
			c.t.Errorf("heal: %v", err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// oneWayLeader drops only the leader's inbound peer traffic: its messages
// still reach the followers, their answers never reach it.
func oneWayLeader(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		l, term, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("one-way: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		f := c.begin("one-way-inbound", l)
		f.needTermRise = true
		f.needFailedOn = []string{l.id}
		if err := l.host.dropFrom(hostsOf(c.others(l))...); err != nil {
			c.t.Errorf("one-way %s: %v", l.id, err)
		}
		c.holdUntilNewLeader(l, term, faultHold+time.Second, 12*time.Second)
		if err := l.host.heal(); err != nil {
			c.t.Errorf("heal: %v", err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// rollingThenKillAll restarts every node gracefully, one at a time (waiting for
// the cluster to be whole again in between), then SIGKILLs all nodes at once
// and restarts them; it repeats while time remains.
func rollingThenKillAll(ctx context.Context, c *cluster) {
	for ctx.Err() == nil {
		for _, n := range c.nodes {
			f := c.begin("graceful-restart", n)
			f.needFailedOn = []string{n.id}
			if err := n.stop(15 * time.Second); err != nil {
				c.t.Errorf("graceful stop: %v", err)
			}
			sleep(context.Background(), time.Second)
			if err := n.start(); err != nil {
				c.t.Errorf("restart %s: %v", n.id, err)
			}
			if err := c.waitHealthy(20 * time.Second); err != nil {
				c.t.Errorf("after restarting %s: %v", n.id, err)
			}
			c.end(f)
			sleep(context.Background(), time.Second)
		}
		f := c.begin("kill-all", c.nodes...)
		f.needKilled = sortedIDs(c.nodes)
		f.needFailedOn = sortedIDs(c.nodes)
		for _, n := range c.nodes {
			if err := n.kill(); err != nil {
				c.t.Errorf("kill %s: %v", n.id, err)
			}
			f.observeKilled(n)
		}
		sleep(context.Background(), 2*time.Second)
		for _, n := range c.nodes {
			if err := n.start(); err != nil {
				c.t.Errorf("restart %s: %v", n.id, err)
			}
		}
		if err := c.waitHealthy(30 * time.Second); err != nil {
			c.t.Errorf("after kill-all: %v", err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

func joinIDs(ns []*node) string {
	s := ""
	for i, id := range sortedIDs(ns) {
		if i > 0 {
			s += ","
		}
		s += id
	}
	return s
}

// removeRejoin is scenario 7: under load, remove a node from the cluster
// (DELETE /cluster/nodes/{id} sent to another member), stop it, wipe its data
// dir, keep it away for 1-3 s, start it empty with --join pointing at the
// other members (so it cannot bootstrap), and wait until the cluster's leader
// lists it as a voter again.
// The first victim is a follower, the second the leader (whose removal moves
// leadership first), later ones random.
func removeRejoin(ctx context.Context, c *cluster) {
	adm := newAPIClient(c.api.apiKey, 20*time.Second)
	defer adm.close()
	for round := 0; ctx.Err() == nil; round++ {
		l, _, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("remove: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		var victim *node
		switch round {
		case 0:
			fs := c.others(l)
			victim = fs[c.rng.Intn(len(fs))]
		case 1:
			victim = l
		default:
			victim = c.nodes[c.rng.Intn(len(c.nodes))]
		}
		members := c.others(victim)
		via := members[c.rng.Intn(len(members))]
		f := c.begin("remove-rejoin", victim)
		f.Detail = "DELETE via " + via.id
		f.needFailedOn = []string{victim.id}
		f.needMembership = true
		if victim == l {
			f.Detail += "; the victim led"
			f.needTermRise = true // leadership moves before the leader is removed
			f.removedLeader = true
		}
		if err := removeWithRetry(adm, via, victim.id, 30*time.Second); err != nil {
			c.t.Errorf("remove %s via %s: %v", victim.id, via.id, err)
		}
		f.sawAbsent = c.waitMembership(adm, members, victim.id, "", 10*time.Second)
		if err := victim.stop(15 * time.Second); err != nil {
			c.t.Errorf("stop removed %s: %v", victim.id, err)
		}
		var urls []string
		for _, m := range members {
			urls = append(urls, m.httpBase())
		}
		if err := victim.wipe(urls); err != nil {
			c.t.Errorf("wipe %s: %v", victim.id, err)
		}
		// Away for a while: the two remaining voters commit on their own and
		// the log moves on (at this load, usually past a snapshot), so the
		// empty node is sent a snapshot when it comes back.
		sleep(context.Background(), time.Second+time.Duration(c.rng.Int63n(int64(2*time.Second))))
		restarted := time.Now()
		if err := victim.start(); err != nil {
			c.t.Errorf("start %s with --join: %v", victim.id, err)
		}
		f.sawVoter = c.waitMembership(adm, members, victim.id, "voter", 40*time.Second)
		f.Detail += fmt.Sprintf("; voter again %.1fs after the empty restart", time.Since(restarted).Seconds())
		c.end(f)
		sleep(ctx, recovery)
	}
}

// removeWithRetry sends the DELETE until it succeeds (or the node is already
// gone) or limit passes; 503s (no leader, transfer, outcome unknown) are retried.
func removeWithRetry(adm *apiClient, via *node, id string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := adm.removeMember(ctx, via.httpBase(), id)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// waitMembership polls GET /cluster/nodes on the current leader among members
// until id is absent from the configuration (suffrage "") or listed with the
// given suffrage; it reports whether that was seen within limit.
func (c *cluster) waitMembership(adm *apiClient, members []*node, id, suffrage string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		for _, m := range members {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			list, err := adm.members(ctx, m.httpBase())
			cancel()
			if err != nil {
				continue
			}
			leads, got := false, ""
			for _, e := range list {
				leads = leads || (e.ID == m.id && e.Leader)
				if e.ID == id {
					got = e.Suffrage
				}
			}
			if leads && got == suffrage {
				what := "absent from the configuration"
				if suffrage != "" {
					what = "a " + suffrage
				}
				c.logf("%s is %s (leader %s)", id, what, m.id)
				return true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.logf("%s not %q within %s", id, suffrage, limit)
	return false
}
