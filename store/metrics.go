package store

import (
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/fsm"
)

// Prometheus metrics of one node's store.
//
// Event metrics (proposals, forwarding, apply batches, snapshots, expirations
// proposed) are atomic-backed counters and histograms updated where the event
// happens; no lock is taken on the request path. State metrics (raft state,
// term, indexes, last contact, keys, value bytes, expirations applied) are
// read when Prometheus scrapes, by storeCollector, so they cost nothing
// between scrapes. Everything is registered on Config.Metrics in Open and
// unregistered by Close, so a node can be reopened on the same registry.

// latencyBuckets (seconds) cover an in-memory apply (sub-millisecond) up to
// the default request deadline (10 s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// maxOp bounds the ops whose proposal metrics are resolved in advance
// (fsm.Op values are small and stable; see fsm/command.go).
const maxOp = 16

type metrics struct {
	proposals     *prometheus.CounterVec
	applyDuration *prometheus.HistogramVec
	// byOp holds proposals' and applyDuration's children for each known op,
	// resolved once so that a proposal does no label lookup.
	byOp [maxOp]struct {
		proposals prometheus.Counter
		duration  prometheus.Observer
	}
	applyBatch prometheus.Histogram
	writeBatch prometheus.Histogram

	forwarded       *prometheus.CounterVec
	forwardDuration *prometheus.HistogramVec

	expirationsProposed prometheus.Counter

	// readConfirmed counts read indexes confirmed on the leader, by how
	// (confirmedByCheck, confirmedByVouch); readBatch observes the requests
	// each read-index round carried, by loop (readBatchLeader: one leadership
	// check; readBatchFollower: one call to the leader).
	readConfirmed [3]prometheus.Counter
	readBatch     [2]prometheus.Observer
	readVecs      []prometheus.Collector // the vectors behind both, to register

	// quotaExceeded counts writes refused by a storage quota, by limit.
	quotaExceeded *prometheus.CounterVec

	snapshots        *prometheus.CounterVec
	snapshotDuration prometheus.Histogram

	// registered is what Open registered, for Close to unregister.
	reg        prometheus.Registerer
	registered []prometheus.Collector
}

// Indexes of metrics.readConfirmed and metrics.readBatch.
const (
	confirmedByCheck  = 0
	confirmedByVouch  = 1
	confirmedByEcho   = 2
	readBatchLeader   = 0
	readBatchFollower = 1
)

func newMetrics() *metrics {
	readConfirmed := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "quorumkv_read_index_confirmations_total",
		Help: "Read-index confirmations on this node as leader, by how: leadership_check (one VerifyLeader heartbeat round, shared by every read queued before it) follower_term (a follower's call confirmed by its own term, no heartbeat) or follower_echo (a round of the leader's own reads confirmed by a follower's later call, no heartbeat).",
	}, []string{"by"})
	readBatch := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "quorumkv_read_index_batch_size",
		Help:    "Read-index requests served together, by loop: leader (requests per leadership-check round, a follower's call counting as one) or follower (reads per call to the leader).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 9), // 1 .. 256 (a round's batch bound)
	}, []string{"loop"})
	m := &metrics{
		proposals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_raft_proposals_total",
			Help: "Commands this node proposed to raft as leader (client writes, forwarded writes, expiry, barrier, restore), by op.",
		}, []string{"op"}),
		applyDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quorumkv_raft_apply_duration_seconds",
			Help:    "Time from proposing a command to raft until this node's state machine applied it, as seen by the proposer, by op. Successful proposals only.",
			Buckets: latencyBuckets,
		}, []string{"op"}),
		applyBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumkv_raft_apply_batch_size",
			Help:    "Committed log entries handed to this node's state machine in one ApplyBatch call.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024 (MaxAppendEntries' bound)
		}),
		writeBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumkv_write_batch_size",
			Help:    "Client writes this node, as leader, proposed together in one raft log entry (1: proposed alone).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 11), // 1 .. 1024 (maxBatchWrites)
		}),
		forwarded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_forwarded_requests_total",
			Help: "Requests this node sent to the leader over the peer port, by kind (write, read_index, restore) and result (ok; not_sent: certainly not delivered; error: sent, no valid answer).",
		}, []string{"kind", "result"}),
		forwardDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "quorumkv_forward_duration_seconds",
			Help:    "Round trip of a request forwarded to the leader (a forwarded write includes the leader's commit and apply), by kind.",
			Buckets: latencyBuckets,
		}, []string{"kind"}),
		expirationsProposed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "quorumkv_expirations_proposed_total",
			Help: "Expired entries this node, as leader, proposed to remove (expire commands; an entry re-written meanwhile is not removed).",
		}),
		quotaExceeded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_quota_exceeded_total",
			Help: "Writes this node, as leader, refused with 507 insufficient_storage because they would pass a storage quota, by limit (keys: --max-keys, data_bytes: --max-data-bytes).",
		}, []string{"limit"}),
		snapshots: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "quorumkv_snapshots_total",
			Help: "Raft snapshots of the state machine this node persisted, by result (ok, error).",
		}, []string{"result"}),
		snapshotDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "quorumkv_snapshot_duration_seconds",
			Help:    "Time to persist one state machine snapshot (streaming the frozen state to the snapshot store).",
			Buckets: prometheus.ExponentialBuckets(.01, 2.5, 10), // 10 ms .. ~38 s
		}),
	}
	m.readConfirmed[confirmedByCheck] = readConfirmed.WithLabelValues("leadership_check")
	m.readConfirmed[confirmedByVouch] = readConfirmed.WithLabelValues("follower_term")
	m.readConfirmed[confirmedByEcho] = readConfirmed.WithLabelValues("follower_echo")
	m.readBatch[readBatchLeader] = readBatch.WithLabelValues("leader")
	m.readBatch[readBatchFollower] = readBatch.WithLabelValues("follower")
	m.readVecs = []prometheus.Collector{readConfirmed, readBatch}
	for op := range fsm.Op(maxOp) {
		m.byOp[op].proposals = m.proposals.WithLabelValues(op.String())
		m.byOp[op].duration = m.applyDuration.WithLabelValues(op.String())
	}
	// Let the kinds exist at 0 before the first event, so rate() works at once.
	for _, kind := range []string{"write", "read_index"} {
		m.forwardDuration.WithLabelValues(kind)
		for _, result := range []string{"ok", "not_sent", "error"} {
			m.forwarded.WithLabelValues(kind, result)
		}
	}
	m.quotaExceeded.WithLabelValues("keys")
	m.quotaExceeded.WithLabelValues("data_bytes")
	m.snapshots.WithLabelValues("ok")
	m.snapshots.WithLabelValues("error")
	return m
}

// register registers m and a scrape-time collector of s's state on reg (nil:
// nothing is registered; the event metrics still count, unobserved).
func (m *metrics) register(reg prometheus.Registerer, s *Store) error {
	if reg == nil {
		return nil
	}
	m.reg = reg
	for _, c := range append([]prometheus.Collector{
		m.proposals, m.applyDuration, m.applyBatch, m.writeBatch, m.forwarded, m.forwardDuration,
		m.expirationsProposed, m.quotaExceeded, m.snapshots, m.snapshotDuration, newStoreCollector(s), newClockCollector(s), newLogStoreCollector(s), newDiskCollector(s), newWatchCollector(s),
	}, m.readVecs...) {
		if err := reg.Register(c); err != nil {
			m.unregister()
			return err
		}
		m.registered = append(m.registered, c)
	}
	return nil
}

func (m *metrics) unregister() {
	for _, c := range m.registered {
		m.reg.Unregister(c)
	}
	m.registered = nil
}

// proposed records one proposal of op that took d and ended with err.
func (m *metrics) proposed(op fsm.Op, d time.Duration, err error) {
	if op >= maxOp {
		m.proposals.WithLabelValues(op.String()).Inc()
		return
	}
	m.byOp[op].proposals.Inc()
	if err == nil {
		m.byOp[op].duration.Observe(d.Seconds())
	}
}

// storeCollector reads the node's state when Prometheus scrapes: raft's
// accessors (each a lock-free or briefly locked read) and the FSM's running
// totals (one read lock). Nothing is kept between scrapes.
type storeCollector struct {
	s *Store

	state, term, commitIndex, lastIndex, applied, lastContact, hasLeader *prometheus.Desc
	keys, valueBytes, expired                                            *prometheus.Desc
	dataBytes, maxKeys, maxData                                          *prometheus.Desc
	idemEntries, idemBytes, idemOldestAge                                *prometheus.Desc
}

func newStoreCollector(s *Store) *storeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &storeCollector{
		s:           s,
		state:       d("quorumkv_raft_state", "This node's raft state: 1 for the state it is in (follower, candidate, leader, shutdown), 0 for the others.", "state"),
		term:        d("quorumkv_raft_term", "This node's current raft term."),
		commitIndex: d("quorumkv_raft_commit_index", "The highest log index this node knows to be committed."),
		lastIndex:   d("quorumkv_raft_last_log_index", "The last index in this node's raft log (or snapshot)."),
		applied:     d("quorumkv_fsm_applied_index", "The last log index this node's state machine applied; reads wait for it."),
		lastContact: d("quorumkv_raft_last_contact_seconds", "Seconds since this node last heard from the leader; 0 on the leader; absent until a follower first hears from one."),
		hasLeader:   d("quorumkv_raft_has_leader", "1 when this node knows a leader (itself included), else 0."),
		keys:        d("quorumkv_fsm_keys", "Entries in this node's state machine, including expired entries not yet removed."),
		valueBytes:  d("quorumkv_fsm_value_bytes", "Total size of the stored values in bytes, including expired entries not yet removed."),
		dataBytes:   d("quorumkv_fsm_data_bytes", "Total size of the stored keys and values in bytes, including expired entries not yet removed: what --max-data-bytes limits."),
		maxKeys:     d("quorumkv_quota_max_keys", "This node's --max-keys (0: no limit). Compare with quorumkv_fsm_keys."),
		maxData:     d("quorumkv_quota_max_data_bytes", "This node's --max-data-bytes (0: no limit). Compare with quorumkv_fsm_data_bytes."),
		expired:     d("quorumkv_expirations_applied_total", "Expired entries removed by expire commands this node's state machine applied since it started."),
		idemEntries: d("quorumkv_idempotency_entries", "Entries in the replicated Idempotency-Key table, including aged entries not yet pruned."),
		idemBytes:   d("quorumkv_idempotency_bytes", "Accounted size of the Idempotency-Key table in bytes; the leader refuses new keyed writes (503 idempotency_table_full) beyond its --idempotency-max-bytes."),
		idemOldestAge: d("quorumkv_idempotency_oldest_age_seconds",
			"Age in command time of the oldest Idempotency-Key table entry (0 when empty); entries are kept at least 600 s, so a value well past 600 s means pruning is behind."),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.state, c.term, c.commitIndex, c.lastIndex, c.applied, c.lastContact, c.hasLeader, c.keys, c.valueBytes, c.expired, c.dataBytes, c.maxKeys, c.maxData, c.idemEntries, c.idemBytes, c.idemOldestAge} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.raft
	state := r.State()
	for _, st := range []raft.RaftState{raft.Follower, raft.Candidate, raft.Leader, raft.Shutdown} {
		v := 0.0
		if st == state {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, v, strings.ToLower(st.String()))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	gauge(c.term, float64(r.CurrentTerm()))
	gauge(c.commitIndex, float64(r.CommitIndex()))
	gauge(c.lastIndex, float64(r.LastIndex()))
	gauge(c.applied, float64(c.s.fsm.AppliedIndex()))
	if state == raft.Leader {
		gauge(c.lastContact, 0)
	} else if lc := r.LastContact(); !lc.IsZero() {
		gauge(c.lastContact, max(time.Since(lc), 0).Seconds())
	}
	hasLeader := 0.0
	if addr, _ := r.LeaderWithID(); addr != "" {
		hasLeader = 1
	}
	gauge(c.hasLeader, hasLeader)
	st := c.s.fsm.Stats()
	gauge(c.keys, float64(st.Keys))
	gauge(c.valueBytes, float64(st.ValueBytes))
	gauge(c.dataBytes, float64(st.KeyBytes+st.ValueBytes))
	gauge(c.maxKeys, float64(c.s.cfg.MaxKeys))
	gauge(c.maxData, float64(c.s.cfg.MaxDataBytes))
	ch <- prometheus.MustNewConstMetric(c.expired, prometheus.CounterValue, float64(st.Expired))
	u := c.s.fsm.IdempotencyUsage()
	gauge(c.idemEntries, float64(u.Entries))
	gauge(c.idemBytes, float64(u.Bytes))
	age := 0.0
	if u.Entries > 0 {
		age = float64(max(c.s.commandClock()-u.Oldest, 0)) / 1000
	}
	gauge(c.idemOldestAge, age)
}
