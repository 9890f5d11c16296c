package store

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The leader's membership monitor. While a node leads (and only then) it
// probes every other server's node-info RPC each MonitorInterval and
// remembers the applied index each one reported and when, for
// GET /cluster/nodes; and it promotes a non-voter to voter once the leader's
// own replication view (replication.go) shows its log within PromoteLag
// entries of the leader's last index. A node's report about itself is shown
// to operators, never used to decide: it is only what the node says.
//
// A non-voter cannot weaken the quorum: it neither votes nor counts towards
// commit. Promoting it only once it has caught up means that, from the moment
// it counts, it can acknowledge new entries at once instead of stalling
// commits while it copies the log. A promotion is decided and made under
// lockChanges on a fresh configuration, so it cannot re-add a node that a
// concurrent removal took out, nor undo an address change.

// peerProbe is what the monitor knows about one server.
type peerProbe struct {
	addr     string // the peer address the last successful probe reached
	applied  uint64
	build    Build
	at       time.Time // last successful probe; zero if none this term
	inflight bool
}

// memberMonitor holds the monitor's probes; owned by the leader's loop,
// read by Nodes.
type memberMonitor struct {
	mu     sync.Mutex
	probes map[string]*peerProbe
	// changes is a one-slot semaphore held across a membership change
	// (Store.lockChanges). Created by Open.
	changes chan struct{}
}

func (m *memberMonitor) reset() {
	m.mu.Lock()
	m.probes = map[string]*peerProbe{}
	m.mu.Unlock()
}

// start marks a probe of id in flight; false if one already is.
func (m *memberMonitor) start(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.probes == nil {
		m.probes = map[string]*peerProbe{}
	}
	p := m.probes[id]
	if p == nil {
		p = &peerProbe{}
		m.probes[id] = p
	}
	if p.inflight {
		return false
	}
	p.inflight = true
	return true
}

func (m *memberMonitor) finish(id, addr string, info nodeInfo, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.probes[id]
	if p == nil {
		return
	}
	p.inflight = false
	if ok {
		p.addr, p.applied, p.build, p.at = addr, info.applied, info.build, time.Now()
	}
}

// retain forgets servers that left the configuration.
func (m *memberMonitor) retain(cfg raft.Configuration) {
	keep := map[string]bool{}
	for _, srv := range cfg.Servers {
		keep[string(srv.ID)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for id, p := range m.probes {
		if !keep[id] && !p.inflight {
			delete(m.probes, id)
		}
	}
}

func (m *memberMonitor) get(id string) (peerProbe, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.probes[id]
	if !ok || p.at.IsZero() {
		return peerProbe{}, false
	}
	return *p, true
}

// healthWindow: a node that answered the leader's probe within it is healthy.
func (s *Store) healthWindow() time.Duration {
	return max(3*s.cfg.MonitorInterval, 2*s.cfg.HeartbeatTimeout)
}

// probeTimeout bounds one node-info probe.
func (s *Store) probeTimeout() time.Duration {
	return max(s.cfg.MonitorInterval, time.Second)
}

// monitorLoop runs on the leader until ctx ends (leadership lost or close).
func (s *Store) monitorLoop(ctx context.Context) {
	s.mon.reset()
	var wg sync.WaitGroup
	defer wg.Wait()
	t := time.NewTicker(s.cfg.MonitorInterval)
	defer t.Stop()
	for {
		s.monitorRound(ctx, &wg)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// monitorRound starts a probe of every server that has none in flight, then
// promotes at most one caught-up non-voter.
func (s *Store) monitorRound(ctx context.Context, wg *sync.WaitGroup) {
	cfg, err := s.configuration(ctx)
	if err != nil {
		return
	}
	s.mon.retain(cfg)
	for _, srv := range cfg.Servers {
		if string(srv.ID) == s.cfg.NodeID || !s.mon.start(string(srv.ID)) {
			continue
		}
		wg.Add(1)
		go func(srv raft.Server) {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, s.probeTimeout())
			defer cancel()
			resp, err := s.rpc.Call(pctx, string(srv.Address), methodNodeInfo, nil)
			var info nodeInfo
			if err == nil {
				info, err = decodeNodeInfo(resp)
			}
			// An answer from another ID at that address is not this server.
			s.mon.finish(string(srv.ID), string(srv.Address), info, err == nil && info.id == string(srv.ID))
		}(srv)
	}
	s.promote(ctx)
}

// promote makes the first caught-up non-voter a voter, deciding on the
// configuration read under lockChanges.
func (s *Store) promote(ctx context.Context) {
	unlock, err := s.lockChanges(ctx)
	if err != nil {
		return
	}
	defer unlock()
	cfg, err := s.configuration(ctx)
	if err != nil {
		return
	}
	for _, srv := range cfg.Servers {
		if srv.Suffrage != raft.Nonvoter {
			continue
		}
		// The leader's own view (replication.go): what raft on this node
		// established on the node's log, in this term, at the address in the
		// configuration (a node that moved must be replicated to again where
		// it now is), recently. Nothing the node says about itself counts.
		r, ok := s.repl.get(srv.ID)
		if !ok || r.addr != srv.Address || r.term != s.raft.CurrentTerm() || time.Since(r.at) > s.healthWindow() || r.match == 0 {
			continue
		}
		last := s.raft.LastIndex()
		if last > r.match && last-r.match > s.cfg.PromoteLag {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.changeConfig(cctx, s.raft.AddVoter(srv.ID, srv.Address, 0, enqueueTimeout(cctx)))
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("promotion failed; will retry", "id", string(srv.ID), "err", err)
			}
			return
		}
		s.log.Info("promoted non-voter to voter", "id", string(srv.ID), "match", r.match, "leader_last", last)
		return
	}
}

// localLeaderView is the monitor's view of every server; the leader itself
// is always healthy with lag 0.
func (s *Store) localLeaderView() map[string]nodeStat {
	out := map[string]nodeStat{s.cfg.NodeID: {applied: s.fsm.AppliedIndex(), healthy: true, build: s.localBuild()}}
	s.mon.mu.Lock()
	defer s.mon.mu.Unlock()
	for id, p := range s.mon.probes {
		if p.at.IsZero() {
			continue
		}
		since := time.Since(p.at)
		out[id] = nodeStat{applied: p.applied, lastContact: since, healthy: since <= s.healthWindow(), build: p.build}
	}
	return out
}

// leaderView returns the leader's view of every node: local on the leader,
// asked over the peer port otherwise; nil when no leader answers quickly.
func (s *Store) leaderView(ctx context.Context) map[string]nodeStat {
	if s.IsLeader() {
		return s.localLeaderView()
	}
	addr, _ := s.raft.LeaderWithID()
	if addr == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.probeTimeout())
	defer cancel()
	resp, err := s.rpc.Call(ctx, string(addr), methodNodeStats, nil)
	if err != nil {
		return nil
	}
	body, err := decodeAdminResponse(resp)
	if err != nil {
		return nil
	}
	stats, err := decodeNodeStats(body)
	if err != nil {
		return nil
	}
	return stats
}

// registerLoop makes sure the replicated node table holds this node's HTTP
// address (Config.HTTPAddr): once this node is a member and a leader is
// known, it asks the leader to record it (register mode never adds a server,
// so a removed node cannot bring itself back). It retries with backoff until
// the address is recorded or the store closes.
func (s *Store) registerLoop() {
	defer s.wg.Done()
	if s.cfg.HTTPAddr == "" {
		return
	}
	req := JoinRequest{ID: s.cfg.NodeID, PeerAddr: s.PeerAddr(), HTTPAddr: s.cfg.HTTPAddr}
	backoff := 100 * time.Millisecond
	for {
		if cur, _ := s.fsm.NodeAddr(s.cfg.NodeID); cur == s.cfg.HTTPAddr {
			return
		}
		if addr, _ := s.raft.LeaderWithID(); addr != "" {
			ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
			_, err := s.viaLeader(ctx, methodJoin, encodeJoinRequest(req, true), func(ctx context.Context) ([]byte, error) {
				a, err := s.joinAsLeader(ctx, req, true)
				return []byte{byte(a)}, err
			})
			cancel()
			if err == nil {
				s.log.Info("registered HTTP address", "http", s.cfg.HTTPAddr)
				return
			}
			s.log.Debug("registering HTTP address failed; retrying", "err", err)
		}
		select {
		case <-s.closing:
			return
		case <-s.changed(): // a new leader: try at once
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
