package main

import (
	"context"
	"math"
	"time"

	gometrics "github.com/hashicorp/go-metrics/compat"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/store"
)

// hashicorp/raft and raft-boltdb report their internals through go-metrics'
// process-wide sink (the compat package: armon/go-metrics or
// hashicorp/go-metrics, whichever the build selects; raft uses the same). The
// bridge below is that sink: it turns the handful of measurements operators
// look for into Prometheus histograms and counters on the node's registry and
// drops the rest, so no latency is measured twice or by hand. go-metrics
// reports timings in milliseconds (TimerGranularity); the histograms are in
// seconds. The sink is global: one node per process, as kvnode runs.

// diskBuckets spans 100 µs to ~6.5 s: an fsync on a fast SSD to a stalled disk.
var diskBuckets = prometheus.ExponentialBuckets(0.0001, 2, 17)

type raftMetricsSink struct {
	logStore    prometheus.Histogram
	commit      prometheus.Histogram
	replication *prometheus.HistogramVec
	snapshot    *prometheus.HistogramVec
	transitions *prometheus.CounterVec
}

func newRaftMetricsSink() *raftMetricsSink {
	s := &raftMetricsSink{
		logStore: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumkv_raft_log_store_seconds",
			Help:    "Time to append a batch of entries to this node's raft log, its fsync included (one bolt transaction, or one raft-wal append), leader and followers alike.",
			Buckets: diskBuckets,
		}),
		commit: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumkv_raft_commit_seconds",
			Help:    "On the leader: time from dispatching an entry to its commit (stored on a majority, fsyncs and one network round trip included).",
			Buckets: diskBuckets,
		}),
		replication: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quorumkv_raft_replication_rpc_seconds",
			Help:    "On the leader: round trip of one AppendEntries RPC to a follower, the follower's log fsync included, by peer.",
			Buckets: diskBuckets,
		}, []string{"peer"}),
		snapshot: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "quorumkv_raft_snapshot_phase_seconds",
			Help: "Raft snapshot work by phase: take (capture and persist a snapshot, then compact the log), " +
				"install (a follower receiving the leader's snapshot), restore (loading a snapshot into the state machine).",
			Buckets: prometheus.ExponentialBuckets(.001, 2.5, 12), // 1 ms .. ~60 s
		}, []string{"phase"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_raft_state_changes_total",
			Help: "Raft state changes of this node, by the state entered (leader: it won an election; candidate: it started one; follower). " +
				"The sum of the leader series over the nodes counts the cluster's leader changes.",
		}, []string{"state"}),
	}
	for _, st := range []string{"leader", "candidate", "follower"} {
		s.transitions.WithLabelValues(st)
	}
	for _, p := range []string{"take", "install", "restore"} {
		s.snapshot.WithLabelValues(p)
	}
	return s
}

func (s *raftMetricsSink) collectors() []prometheus.Collector {
	return []prometheus.Collector{s.logStore, s.commit, s.replication, s.snapshot, s.transitions}
}

// installRaftMetrics registers the bridge's metrics on reg and makes it the
// go-metrics global sink.
func installRaftMetrics(reg prometheus.Registerer) error {
	s := newRaftMetricsSink()
	for _, c := range s.collectors() {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	conf := gometrics.DefaultConfig("") // no service prefix on the keys
	conf.EnableHostname = false
	conf.EnableHostnameLabel = false
	conf.EnableRuntimeMetrics = false // the Go collector already exports them
	conf.EnableTypePrefix = false
	conf.TimerGranularity = time.Millisecond
	_, err := gometrics.NewGlobal(conf, s)
	return err
}

// key reports whether key is exactly want.
func key(k []string, want ...string) bool {
	if len(k) != len(want) {
		return false
	}
	for i := range k {
		if k[i] != want[i] {
			return false
		}
	}
	return true
}

// AddSample receives timings (MeasureSince), in milliseconds.
func (s *raftMetricsSink) AddSample(k []string, ms float32) {
	if len(k) < 2 || k[0] != "raft" {
		return
	}
	sec := float64(ms) / 1000
	switch {
	case key(k, "raft", "leader", "dispatchLog"), key(k, "raft", "rpc", "appendEntries", "storeLogs"):
		// raft's own timings around LogStore.StoreLogs, on the leader and
		// on a follower: the same on either log store (raft-boltdb's own
		// storeLogs timing would count a bolt append twice; raft-wal has
		// no timing).
		s.logStore.Observe(sec)
	case key(k, "raft", "commitTime"):
		s.commit.Observe(sec)
	case key(k, "raft", "snapshot", "takeSnapshot"):
		s.snapshot.WithLabelValues("take").Observe(sec)
	case key(k, "raft", "rpc", "installSnapshot"):
		s.snapshot.WithLabelValues("install").Observe(sec)
	case key(k, "raft", "fsm", "restore"):
		s.snapshot.WithLabelValues("restore").Observe(sec)
	}
}

func (s *raftMetricsSink) AddSampleWithLabels(k []string, ms float32, labels []gometrics.Label) {
	if !key(k, "raft", "replication", "appendEntries", "rpc") {
		s.AddSample(k, ms)
		return
	}
	for _, l := range labels {
		if l.Name == "peer_id" {
			s.replication.WithLabelValues(l.Value).Observe(float64(ms) / 1000)
		}
	}
}

func (s *raftMetricsSink) IncrCounter(k []string, val float32) {
	if len(k) == 3 && k[0] == "raft" && k[1] == "state" {
		switch k[2] {
		case "leader", "candidate", "follower":
			s.transitions.WithLabelValues(k[2]).Add(float64(val))
		}
	}
}

func (s *raftMetricsSink) IncrCounterWithLabels(k []string, val float32, _ []gometrics.Label) {
	s.IncrCounter(k, val)
}

// Gauges and keys are not bridged: the store's collector reads raft's state
// at scrape time instead.
func (s *raftMetricsSink) SetGauge([]string, float32)                              {}
func (s *raftMetricsSink) SetGaugeWithLabels([]string, float32, []gometrics.Label) {}
func (s *raftMetricsSink) EmitKey([]string, float32)                               {}

// applyLagGauge is the number of committed entries this node has not applied
// yet, read at scrape time: how far its reads (which wait for the applied
// index) are behind the cluster.
func applyLagGauge(st *store.Store) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "quorumkv_raft_apply_lag_entries",
		Help: "Committed raft entries this node's state machine has not applied yet (commit index minus applied index, as this node knows them).",
	}, func() float64 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s, err := st.Status(ctx)
		if err != nil {
			return math.NaN() // shutting down: no answer rather than a wrong one
		}
		if s.AppliedIndex >= s.CommitIndex {
			return 0
		}
		return float64(s.CommitIndex - s.AppliedIndex)
	})
}
