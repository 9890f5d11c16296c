package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Node reports: what the dashboard shows about every node at once.
//
// A browser page can only call the node that served it (same origin, and
// its Content-Security-Policy allows nothing else), yet it shows every
// node's role, term, indexes, readiness and traffic. So the node it calls
// asks each server in the configuration for a report over the peer port
// (methodNodeReport, member-authenticated like the data path) and answers
// with all of them; a server that does not answer within reportTimeout is
// reported with the error, which is how the page shows a node dead or cut
// off within seconds.

const (
	reportFormat = 1
	// reportTimeout bounds one node's answer; the whole fan-out runs in
	// parallel, so NodeReports takes at most about this long.
	reportTimeout = time.Second
	// reportReadyTimeout bounds the readiness check inside a report.
	reportReadyTimeout = 500 * time.Millisecond
	// maxReportRoutes bounds the request counters a report carries (route
	// templates x methods x statuses is small; this only guards the wire).
	maxReportRoutes = 256
)

// NodeReport is one node's description of itself, as GET /cluster/overview
// serves it. Counters are cumulative since the node started: a reader gets
// rates by differencing two reports.
type NodeReport struct {
	ID       string `json:"id"`
	PeerAddr string `json:"peerAddr"`
	// Error is set when the node could not be asked (unreachable, timed
	// out, refused); every field below is then zero.
	Error string `json:"error,omitempty"`
	// RTTMs is the report's round trip from the answering node.
	RTTMs float64 `json:"rttMs"`

	State        string `json:"state"`
	LeaderID     string `json:"leaderId"`
	Term         uint64 `json:"term"`
	CommitIndex  uint64 `json:"commitIndex"`
	AppliedIndex uint64 `json:"appliedIndex"`
	// LastContactMs is the time since this node last heard from a leader
	// (-1: it leads, or never heard from one).
	LastContactMs int64 `json:"lastContactMs"`
	// Ready is "" when the node can serve linearizable reads, else the
	// short reason code /readyz gives (ReadyReason).
	Ready     string  `json:"ready"`
	Keys      int64   `json:"keys"`
	DataBytes int64   `json:"dataBytes"`
	Traffic   Traffic `json:"traffic"`
}

// Traffic is a node's request and write counters, summarised from its
// metrics registry (Config.ReportMetrics).
type Traffic struct {
	// Requests counts answered HTTP requests by "METHOD route" and status.
	Requests []RequestCount `json:"requests"`
	// LatencyBounds are the request-latency histogram's upper bounds in
	// seconds; LatencyCounts the cumulative count at or below each (all
	// routes together), then the total.
	LatencyBounds []float64 `json:"latencyBounds"`
	LatencyCounts []uint64  `json:"latencyCounts"`
	// WriteBatches and WriteBatchWrites: raft entries proposed as leader and
	// the client writes they carried.
	WriteBatches     uint64  `json:"writeBatches"`
	WriteBatchWrites float64 `json:"writeBatchWrites"`
	// Expirations counts expired entries this node's state machine removed.
	Expirations float64 `json:"expirations"`
}

// RequestCount is one request counter.
type RequestCount struct {
	Route  string `json:"route"`
	Status string `json:"status"`
	Count  uint64 `json:"count"`
}

// ReadyReason is the short, fixed code for why a node is not ready (err from
// Ready): disk, clock_offset, shutting_down, no_leader, catching_up or
// leader_unconfirmed.
func ReadyReason(err error) string {
	switch {
	case errors.Is(err, ErrDiskFailed):
		return "disk"
	case errors.Is(err, ErrClockOffset):
		return "clock_offset"
	case errors.Is(err, ErrShuttingDown):
		return "shutting_down"
	case errors.Is(err, ErrNoLeader):
		return "no_leader"
	case errors.Is(err, ErrCatchingUp):
		return "catching_up"
	}
	return "leader_unconfirmed"
}

// NodeReports asks every server in the configuration for its report, in
// parallel, each bounded by reportTimeout, and returns them in configuration
// order (this node answers for itself without the network). A node that
// does not answer is in the list with Error set.
func (s *Store) NodeReports(ctx context.Context) ([]NodeReport, error) {
	cfg, err := s.configuration(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]NodeReport, len(cfg.Servers))
	var wg sync.WaitGroup
	for i, srv := range cfg.Servers {
		id, addr := string(srv.ID), string(srv.Address)
		if id == s.cfg.NodeID {
			out[i] = s.localReport(ctx)
			out[i].PeerAddr = addr
			continue
		}
		wg.Go(func() {
			out[i] = s.remoteReport(ctx, id, addr)
		})
	}
	wg.Wait()
	return out, nil
}

func (s *Store) remoteReport(ctx context.Context, id, addr string) NodeReport {
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	start := time.Now()
	resp, err := s.rpc.Call(ctx, addr, methodNodeReport, []byte{reportFormat})
	var r NodeReport
	if err == nil {
		r, err = decodeNodeReport(resp)
	}
	if err == nil && r.ID != id {
		err = fmt.Errorf("the node at %s answered as %q", addr, r.ID)
	}
	if err != nil {
		return NodeReport{ID: id, PeerAddr: addr, Error: err.Error()}
	}
	r.PeerAddr = addr
	r.RTTMs = float64(time.Since(start).Microseconds()) / 1e3
	return r
}

// handleNodeReport serves methodNodeReport to a member's connection.
func (s *Store) handleNodeReport(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) < 1 || req[0] != reportFormat {
		return nil, fmt.Errorf("store: node report request in an unknown format")
	}
	if err := s.authorizePeer(ctx, methodNodeReport); err != nil {
		return nil, err
	}
	r := s.localReport(ctx)
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("store: encode node report: %w", err)
	}
	return append([]byte{reportFormat}, b...), nil
}

func decodeNodeReport(b []byte) (NodeReport, error) {
	var r NodeReport
	if len(b) < 1 || b[0] != reportFormat {
		return r, fmt.Errorf("store: node report in an unknown format")
	}
	if err := json.Unmarshal(b[1:], &r); err != nil {
		return r, fmt.Errorf("store: decode node report: %w", err)
	}
	return r, nil
}

// localReport describes this node. It reads local state, and the leader
// only for the readiness check (bounded by reportReadyTimeout).
func (s *Store) localReport(ctx context.Context) NodeReport {
	_, leaderID := s.raft.LeaderWithID()
	q := s.Quota()
	r := NodeReport{
		ID:            s.cfg.NodeID,
		State:         s.raft.State().String(),
		LeaderID:      string(leaderID),
		Term:          s.raft.CurrentTerm(),
		CommitIndex:   s.raft.CommitIndex(),
		AppliedIndex:  s.fsm.AppliedIndex(),
		LastContactMs: -1,
		Keys:          q.Keys,
		DataBytes:     q.DataBytes,
		Traffic:       s.traffic(),
	}
	if lc := s.raft.LastContact(); !lc.IsZero() && !s.IsLeader() {
		r.LastContactMs = time.Since(lc).Milliseconds()
	}
	rctx, cancel := context.WithTimeout(ctx, reportReadyTimeout)
	defer cancel()
	if err := s.Ready(rctx); err != nil {
		r.Ready = ReadyReason(err)
	}
	return r
}

// traffic summarises the metrics families the dashboard charts from
// Config.ReportMetrics (nil: an empty summary).
func (s *Store) traffic() Traffic {
	t := Traffic{Requests: []RequestCount{}, LatencyBounds: []float64{}, LatencyCounts: []uint64{}}
	if s.cfg.ReportMetrics == nil {
		return t
	}
	families, err := s.cfg.ReportMetrics.Gather()
	if err != nil {
		s.log.Debug("some metrics could not be gathered for a node report", "err", err)
	}
	requests := map[[2]string]uint64{}
	for _, mf := range families {
		switch mf.GetName() {
		case "quorumkv_http_requests_total":
			for _, m := range mf.GetMetric() {
				l := labels(m)
				requests[[2]string{l["method"] + " " + l["route"], l["status"]}] += uint64(m.GetCounter().GetValue())
			}
		case "quorumkv_http_request_duration_seconds":
			for _, m := range mf.GetMetric() {
				t.addLatency(m.GetHistogram())
			}
		case "quorumkv_write_batch_size":
			for _, m := range mf.GetMetric() {
				t.WriteBatches += m.GetHistogram().GetSampleCount()
				t.WriteBatchWrites += m.GetHistogram().GetSampleSum()
			}
		case "quorumkv_expirations_applied_total":
			for _, m := range mf.GetMetric() {
				t.Expirations += m.GetCounter().GetValue() + m.GetUntyped().GetValue()
			}
		}
	}
	for k, n := range requests {
		t.Requests = append(t.Requests, RequestCount{Route: k[0], Status: k[1], Count: n})
	}
	sort.Slice(t.Requests, func(i, j int) bool { return t.Requests[i].Count > t.Requests[j].Count })
	if len(t.Requests) > maxReportRoutes {
		t.Requests = t.Requests[:maxReportRoutes]
	}
	return t
}

// addLatency adds one histogram series to the all-routes latency histogram.
// Every series of the family shares its bucket bounds; a series whose
// bounds differ (never, today) is left out rather than misread.
func (t *Traffic) addLatency(h *dto.Histogram) {
	buckets := h.GetBucket()
	if len(t.LatencyBounds) == 0 {
		for _, b := range buckets {
			t.LatencyBounds = append(t.LatencyBounds, b.GetUpperBound())
		}
		t.LatencyCounts = make([]uint64, len(buckets)+1)
	}
	if len(buckets) != len(t.LatencyBounds) {
		return
	}
	for i, b := range buckets {
		if b.GetUpperBound() != t.LatencyBounds[i] {
			return
		}
	}
	for i, b := range buckets {
		t.LatencyCounts[i] += b.GetCumulativeCount()
	}
	t.LatencyCounts[len(buckets)] += h.GetSampleCount()
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}
