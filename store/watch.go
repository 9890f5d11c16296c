package store

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/quorumkv/quorumkv/watch"
)

// WatchRequest selects the changes a watch delivers.
type WatchRequest struct {
	// Prefix selects keys ("" for all).
	Prefix string
	// From: deliver every change with a log index above it. Without HasFrom
	// the watch starts at its linearization point (or, for a stale watch, at
	// the node's applied index): only changes after it.
	From    uint64
	HasFrom bool
	// Level: Linearizable (the default) first waits until this node has
	// applied the leader's commit index at subscription time, so the watch
	// reflects every write acknowledged before it; Stale starts at once from
	// what this node has applied.
	Level ReadLevel
}

// Watch subscribes to this node's changes. For a linearizable watch it uses
// the read path's read index (the leader confirms its commit index; a
// follower asks the leader), then waits for the local state machine to apply
// it. The caller must Close the watcher. Errors: those of a linearizable read
// (ErrNoLeader, ErrTimeout, ErrShuttingDown), watch.ErrOverloaded, or a
// *watch.CompactedError.
func (s *Store) Watch(ctx context.Context, req WatchRequest) (*watch.Watcher, error) {
	if err := s.diskErr(); err != nil {
		return nil, err
	}
	start := s.hub.AppliedIndex()
	if req.Level != Stale && !brokenReads {
		at, err := s.readIndex(ctx, nil)
		if err != nil {
			return nil, err
		}
		if err := s.fsm.WaitApplied(ctx, at.index); err != nil {
			return nil, fmt.Errorf("%w: waiting to apply index %d (applied %d)", ErrTimeout, at.index, s.fsm.AppliedIndex())
		}
		start = at.index
	}
	from := start
	if req.HasFrom {
		from = req.From
	}
	return s.hub.Subscribe(req.Prefix, from)
}

// CloseWatches ends every watch stream and blocking read on this node (they
// resume elsewhere); later watches fail with ErrShuttingDown. The node calls
// it before shutting its HTTP server down, which waits for open streams.
func (s *Store) CloseWatches() { s.hub.Close() }

// WatchStats are this node's watch totals (for metrics and status).
func (s *Store) WatchStats() watch.Stats { return s.hub.Stats() }

// watchCollector exports the hub's totals when Prometheus scrapes.
type watchCollector struct {
	s                                          *Store
	watchers, sent, lagged, refused, ring, age *prometheus.Desc
}

func newWatchCollector(s *Store) *watchCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &watchCollector{
		s:        s,
		watchers: d("quorumkv_watchers", "Watch streams open on this node."),
		sent:     d("quorumkv_watch_events_sent_total", "Change events handed to this node's watchers."),
		lagged:   d("quorumkv_watch_closed_lagging_total", "Watchers closed because they fell behind their buffer."),
		refused:  d("quorumkv_watch_refused_total", "Watch requests refused because the node had its limit of watchers."),
		ring:     d("quorumkv_watch_history_changes", "Changes held in this node's watch history."),
		age:      d("quorumkv_watch_history_oldest_index", "Oldest log index a watch may resume from on this node."),
	}
}

func (c *watchCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.watchers, c.sent, c.lagged, c.refused, c.ring, c.age} {
		ch <- d
	}
}

func (c *watchCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.hub.Stats()
	ch <- prometheus.MustNewConstMetric(c.watchers, prometheus.GaugeValue, float64(st.Watchers))
	ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(st.EventsSent))
	ch <- prometheus.MustNewConstMetric(c.lagged, prometheus.CounterValue, float64(st.ClosedForLag))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(st.Refused))
	ch <- prometheus.MustNewConstMetric(c.ring, prometheus.GaugeValue, float64(st.RingEntries))
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, float64(st.OldestIndex))
}
