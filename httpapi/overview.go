package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// overviewTimeout bounds GET /cluster/overview. Every node is asked in
// parallel with a shorter deadline of its own (store.NodeReports), so a dead
// node costs the page one such wait, not a stalled dashboard.
const overviewTimeout = 3 * time.Second

// clusterOverview serves GET /cluster/overview (read scope): every server's
// own report of its role, term, indexes, readiness, keys and cumulative
// traffic counters, gathered by this node over the peer port. It exists for
// the dashboard, which may only call the node that served it, yet shows
// every node; /cluster/status describes the answering node only and
// /cluster/nodes gives the leader's view (progress, health, clocks), not
// each node's own state or traffic. A node that does not answer is listed
// with "error" saying why. The answer is bounded by the configuration's size
// (each report carries at most a few hundred counters).
func (a *api) clusterOverview(r *http.Request) (reply, error) {
	ctx, cancel := context.WithTimeout(r.Context(), overviewTimeout)
	defer cancel()
	reports, err := a.st.NodeReports(ctx)
	if err != nil {
		return reply{}, err
	}
	if reports == nil {
		reports = []store.NodeReport{}
	}
	return dataReply(http.StatusOK, struct {
		NodeID string             `json:"nodeId"` // the answering node
		TimeMs int64              `json:"timeMs"` // when it answered, Unix ms
		Nodes  []store.NodeReport `json:"nodes"`
	}{a.nodeID(ctx), a.cfg.Clock().UnixMilli(), reports})
}

// nodeID is this node's ID, from its status ("" if that fails).
func (a *api) nodeID(ctx context.Context) string {
	st, err := a.st.Status(ctx)
	if err != nil {
		return ""
	}
	return st.NodeID
}
