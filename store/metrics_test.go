package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// sample sums the series of metric name whose labels include want: counter
// and gauge values, histogram sample counts. found is false when no series
// matched.
func sample(t *testing.T, g prometheus.Gatherer, name string, want ...string) (v float64, found bool) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(want); i += 2 {
				if labelValue(m, want[i]) != want[i+1] {
					continue series
				}
			}
			found = true
			switch {
			case m.Counter != nil:
				v += m.GetCounter().GetValue()
			case m.Gauge != nil:
				v += m.GetGauge().GetValue()
			case m.Histogram != nil:
				v += float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return v, found
}

func labelValue(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// TestMetricsMoveWithTraffic runs a 3-node cluster with a registry per node,
// writes and reads through a follower, lets keys expire and takes a
// snapshot, and checks that every store metric is exported and moved.
func TestMetricsMoveWithTraffic(t *testing.T) {
	c, regs := newMeteredCluster(t)
	leader := c.leader()
	f := c.followers(leader)[0]
	lreg, freg := regs[leader.id], regs[f.id]
	appliedBefore, _ := sample(t, freg, "quorumkv_fsm_applied_index")

	for i := range 20 {
		mustSet(t, f, fmt.Sprintf("k%02d", i), `{"n":1234}`, 0)
	}
	for i := range 5 {
		mustSet(t, leader, fmt.Sprintf("short%d", i), `"x"`, 50*time.Millisecond)
	}
	mustGet(t, f, "k00") // a read index asked of the leader

	// The expiry loop removes the short keys on every replica.
	waitFor(t, 10*time.Second, "expirations applied everywhere", func() bool {
		for _, reg := range regs {
			if v, _ := sample(t, reg, "quorumkv_expirations_applied_total"); v != 5 {
				return false
			}
		}
		return true
	})
	if v, _ := sample(t, lreg, "quorumkv_expirations_proposed_total"); v < 5 {
		t.Errorf("leader proposed %v expirations, want >= 5", v)
	}

	waitFor(t, 10*time.Second, "the follower to apply everything", func() bool {
		return f.store.AppliedIndex() == leader.store.AppliedIndex()
	})
	for id, reg := range regs {
		nd := c.nodes[0]
		for _, n := range c.nodes {
			if n.id == id {
				nd = n
			}
		}
		if v, _ := sample(t, reg, "quorumkv_fsm_keys"); int(v) != nd.store.fsm.Len() || v != 20 {
			t.Errorf("%s: quorumkv_fsm_keys = %v, FSM has %d, want 20", id, v, nd.store.fsm.Len())
		}
		if v, _ := sample(t, reg, "quorumkv_fsm_value_bytes"); v != 20*float64(len(`{"n":1234}`)) {
			t.Errorf("%s: quorumkv_fsm_value_bytes = %v, want %d", id, v, 20*len(`{"n":1234}`))
		}
		if v, _ := sample(t, reg, "quorumkv_raft_apply_batch_size"); v == 0 {
			t.Errorf("%s: no apply batches observed", id)
		}
		if v, _ := sample(t, reg, "quorumkv_raft_term"); v < 1 {
			t.Errorf("%s: term %v", id, v)
		}
		if v, _ := sample(t, reg, "quorumkv_raft_has_leader"); v != 1 {
			t.Errorf("%s: has_leader %v", id, v)
		}
	}
	if v, _ := sample(t, freg, "quorumkv_fsm_applied_index"); v <= appliedBefore+25 {
		t.Errorf("follower applied index %v, was %v before 25 writes", v, appliedBefore)
	}
	if v, _ := sample(t, lreg, "quorumkv_raft_commit_index"); v < float64(leader.store.AppliedIndex()) {
		t.Errorf("leader commit index %v below its applied index %d", v, leader.store.AppliedIndex())
	}
	for reg, state := range map[*prometheus.Registry]string{lreg: "leader", freg: "follower"} {
		if v, _ := sample(t, reg, "quorumkv_raft_state", "state", state); v != 1 {
			t.Errorf("quorumkv_raft_state{state=%q} = %v, want 1", state, v)
		}
		if v, _ := sample(t, reg, "quorumkv_raft_state"); v != 1 {
			t.Errorf("the state gauges sum to %v, want 1", v)
		}
	}
	if _, ok := sample(t, freg, "quorumkv_raft_last_contact_seconds"); !ok {
		t.Error("the follower exports no last contact")
	}

	// The leader proposed the forwarded writes, its own and its barrier; the
	// follower forwarded its writes and asked for a read index.
	if v, _ := sample(t, lreg, "quorumkv_raft_proposals_total", "op", "set"); v != 25 {
		t.Errorf("leader set proposals = %v, want 25", v)
	}
	if v, _ := sample(t, lreg, "quorumkv_raft_apply_duration_seconds", "op", "set"); v != 25 {
		t.Errorf("leader set apply latencies observed = %v, want 25", v)
	}
	if v, _ := sample(t, lreg, "quorumkv_raft_proposals_total", "op", "barrier"); v < 1 {
		t.Errorf("leader barrier proposals = %v", v)
	}
	if v, _ := sample(t, freg, "quorumkv_forwarded_requests_total", "kind", "write", "result", "ok"); v != 20 {
		t.Errorf("follower forwarded %v writes, want 20", v)
	}
	// A GET asks with the read_index_get kind (its key rides along).
	plain, _ := sample(t, freg, "quorumkv_forwarded_requests_total", "kind", "read_index", "result", "ok")
	gets, _ := sample(t, freg, "quorumkv_forwarded_requests_total", "kind", "read_index_get", "result", "ok")
	if plain+gets < 1 {
		t.Errorf("follower forwarded %v read index asks, want >= 1", plain+gets)
	}
	if v, _ := sample(t, freg, "quorumkv_forward_duration_seconds", "kind", "write"); v != 20 {
		t.Errorf("follower timed %v forwarded writes, want 20", v)
	}

	// A user snapshot goes through FSM.Persist.
	if err := leader.store.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	if v, _ := sample(t, lreg, "quorumkv_snapshots_total", "result", "ok"); v != 1 {
		t.Errorf("snapshots ok = %v, want 1", v)
	}
	if v, _ := sample(t, lreg, "quorumkv_snapshot_duration_seconds"); v != 1 {
		t.Errorf("snapshot durations observed = %v, want 1", v)
	}

	// Close unregisters everything, so the node could be reopened on the registry.
	f.stop()
	if families, err := freg.Gather(); err != nil || len(families) != 0 {
		t.Fatalf("after Close the registry still has %d families (%v)", len(families), err)
	}
}

// histogram returns a histogram's sample count and sum.
func histogram(t *testing.T, g prometheus.Gatherer, name string) (count, sum float64) {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				count += float64(m.GetHistogram().GetSampleCount())
				sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return count, sum
}

// newMeteredCluster is a three-node test cluster with a Prometheus registry
// per node, by node ID.
func newMeteredCluster(t *testing.T) (*testCluster, map[string]*prometheus.Registry) {
	t.Helper()
	regs := map[string]*prometheus.Registry{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		regs[cfg.NodeID] = prometheus.NewRegistry()
		cfg.Metrics = regs[cfg.NodeID]
	})
	return c, regs
}
