package store

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestNodeReportsFromEveryNode asks a follower for every node's report: the
// leader's own and each follower's over the peer port, with the traffic
// counters read from the node's registry; a stopped node is reported with
// an error within the report deadline, and the rest still answer.
func TestNodeReportsFromEveryNode(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		reg := prometheus.NewRegistry()
		requests := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "quorumkv_http_requests_total"}, []string{"route", "method", "status"})
		requests.WithLabelValues("/kv/items/{key}", "PUT", "201").Add(7)
		reg.MustRegister(requests)
		cfg.Metrics, cfg.ReportMetrics = reg, reg
		regs[cfg.NodeID] = reg
	})
	leader := c.leader()
	if _, err := leader.store.Put(ctxTimeout(t, 5*time.Second), "k", []byte(`1`), 0, false, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	follower := c.followers(leader)[0]
	var reports []NodeReport
	waitFor(t, 10*time.Second, "three ready reports", func() bool {
		var err error
		reports, err = follower.store.NodeReports(ctxTimeout(t, 5*time.Second))
		if err != nil || len(reports) != 3 {
			return false
		}
		for _, r := range reports {
			if r.Error != "" || r.Ready != "" || r.AppliedIndex < 2 || r.Keys != 1 {
				return false
			}
		}
		return true
	})
	leaders := 0
	for _, r := range reports {
		if r.State == "Leader" {
			leaders++
			if r.ID != leader.id || r.LastContactMs != -1 {
				t.Errorf("leader report %+v", r)
			}
		}
		if r.Term == 0 || r.CommitIndex == 0 || r.LeaderID != leader.id || r.PeerAddr == "" {
			t.Errorf("report %+v lacks its raft state", r)
		}
		if len(r.Traffic.Requests) != 1 || r.Traffic.Requests[0] != (RequestCount{Route: "PUT /kv/items/{key}", Status: "201", Count: 7}) {
			t.Errorf("%s traffic %+v, want its registry's counter", r.ID, r.Traffic.Requests)
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders in %+v", leaders, reports)
	}

	var other *testNode
	for _, nd := range c.followers(leader) {
		if nd != follower {
			other = nd
		}
	}
	other.stop()
	start := time.Now()
	reports, err := follower.store.NodeReports(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > reportTimeout+time.Second {
		t.Errorf("NodeReports took %v with a node down (bound %v)", took, reportTimeout)
	}
	for _, r := range reports {
		if (r.ID == other.id) != (r.Error != "") {
			t.Errorf("report %+v: only the stopped node %s must have an error", r, other.id)
		}
	}
}

func TestTrafficLatencyHistogramSumsRoutes(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "quorumkv_http_request_duration_seconds", Buckets: []float64{.001, .01}}, []string{"route", "method"})
	h.WithLabelValues("a", "GET").Observe(.0005)
	h.WithLabelValues("b", "PUT").Observe(.005)
	h.WithLabelValues("b", "PUT").Observe(1)
	wb := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "quorumkv_write_batch_size", Buckets: []float64{1, 2}})
	wb.Observe(1)
	wb.Observe(3)
	reg.MustRegister(h, wb)
	s := &Store{cfg: Config{ReportMetrics: reg}}
	tr := s.traffic()
	if len(tr.LatencyBounds) != 2 || tr.LatencyCounts[0] != 1 || tr.LatencyCounts[1] != 2 || tr.LatencyCounts[2] != 3 {
		t.Fatalf("latency %v %v, want cumulative 1, 2 and total 3", tr.LatencyBounds, tr.LatencyCounts)
	}
	if tr.WriteBatches != 2 || tr.WriteBatchWrites != 4 {
		t.Fatalf("write batches %d carrying %v, want 2 carrying 4", tr.WriteBatches, tr.WriteBatchWrites)
	}
}
