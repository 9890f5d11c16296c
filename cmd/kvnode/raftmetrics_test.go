package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// The log-store histogram counts each append once, on either raft log
// store: raft's leader and follower timings around StoreLogs, not
// raft-boltdb's own (which a bolt node also emits for the same append).
func TestRaftLogStoreTimingIsStoreAgnostic(t *testing.T) {
	s := newRaftMetricsSink()
	s.AddSample([]string{"raft", "leader", "dispatchLog"}, 2)
	s.AddSample([]string{"raft", "rpc", "appendEntries", "storeLogs"}, 3)
	s.AddSample([]string{"raft", "boltdb", "storeLogs"}, 2)
	if got := sampleCount(t, s); got != 2 {
		t.Fatalf("log store appends observed: %d, want 2 (leader and follower, not raft-boltdb's own)", got)
	}
}

func sampleCount(t *testing.T, s *raftMetricsSink) uint64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	s.logStore.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
