package chaos

import (
	"context"
	"sync"
	"time"
)

// sample is one observation of one node's /cluster/status.
type sample struct {
	At     int64 // ns since the scenario start
	Node   string
	OK     bool
	State  string
	Term   uint64
	Leader string
}

// monitor polls every node's status a few times a second for the whole
// scenario: the guard (terms rose, leaders changed) and the report use it.
type monitor struct {
	api   *apiClient
	nodes []*node
	start time.Time
	mu    sync.Mutex
	log   []sample
	stopC chan struct{}
	wg    sync.WaitGroup
}

func startMonitor(nodes []*node, apiKey string, start time.Time) *monitor {
	m := &monitor{api: newAPIClient(apiKey, 400*time.Millisecond), nodes: nodes, start: start, stopC: make(chan struct{})}
	for _, n := range nodes {
		m.wg.Add(1)
		go m.poll(n)
	}
	return m
}

func (m *monitor) poll(n *node) {
	defer m.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
		st, err := m.api.status(ctx, n.httpBase())
		cancel()
		s := sample{At: int64(time.Since(m.start)), Node: n.id, OK: err == nil}
		if err == nil {
			s.State, s.Term, s.Leader = st.State, st.Term, st.LeaderID
		}
		m.mu.Lock()
		m.log = append(m.log, s)
		m.mu.Unlock()
		select {
		case <-m.stopC:
			return
		case <-t.C:
		}
	}
}

func (m *monitor) stop() {
	close(m.stopC)
	m.wg.Wait()
	m.api.close()
}

func (m *monitor) samples() []sample {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]sample(nil), m.log...)
}

// maxTerm is the highest term any node reported in [from, to].
func maxTerm(ss []sample, from, to int64) uint64 {
	var t uint64
	for _, s := range ss {
		if s.OK && s.At >= from && s.At <= to && s.Term > t {
			t = s.Term
		}
	}
	return t
}

// leaderTerms lists, in order of first sight, each (term, leader) a node
// reported itself leader in; len-1 is the number of leader changes seen.
type leaderTerm struct {
	Term   uint64
	Leader string
	At     int64
}

func leaderTerms(ss []sample) []leaderTerm {
	seen := map[uint64]bool{}
	var out []leaderTerm
	for _, s := range ss {
		if s.OK && s.State == "Leader" && !seen[s.Term] {
			seen[s.Term] = true
			out = append(out, leaderTerm{Term: s.Term, Leader: s.Node, At: s.At})
		}
	}
	return out
}

// ledBy reports whether node was seen leading at any time in [from, to].
func ledBy(ss []sample, node string, from, to int64) bool {
	for _, s := range ss {
		if s.OK && s.Node == node && s.State == "Leader" && s.At >= from && s.At <= to {
			return true
		}
	}
	return false
}
