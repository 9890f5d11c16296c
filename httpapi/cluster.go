package httpapi

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// healthz serves GET /healthz: the process is up and serving HTTP. It says
// nothing about raft; /cluster/status does.
func (a *api) healthz(*http.Request) (reply, error) {
	return dataReply(http.StatusOK, struct {
		Status string `json:"status"`
	}{"ok"})
}

// readyTimeout bounds a readiness probe: a node that cannot confirm a
// linearizable read and catch up within it is not ready.
const readyTimeout = 2 * time.Second

// readyz serves GET /readyz (unauthenticated, no data in the body): 200 when
// this node knows a leader, has caught up with it and can serve linearizable
// reads; otherwise 503 not_ready with the reason.
func (a *api) readyz(r *http.Request) (reply, error) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := a.st.Ready(ctx); err != nil {
		if errors.Is(err, store.ErrClockOffset) {
			return reply{}, &apiError{
				status: http.StatusServiceUnavailable, code: "clock_offset", retryable: true, retryAfter: true,
				message: "This node is not ready: its clock is outside --max-clock-offset of a majority of the voters (GET /cluster/nodes shows the offsets). Fix its clock synchronisation; send traffic to another node meanwhile.",
			}
		}
		return reply{}, &apiError{
			status: http.StatusServiceUnavailable, code: "not_ready", retryable: true, retryAfter: true,
			message: "This node cannot serve linearizable reads yet: " + err.Error() + ". Send traffic to another node until it is ready.",
		}
	}
	return dataReply(http.StatusOK, struct {
		Status string `json:"status"`
	}{"ready"})
}

type statusData struct {
	NodeID       string      `json:"nodeId"`
	State        string      `json:"state"`
	LeaderID     string      `json:"leaderId"`
	LeaderAddr   string      `json:"leaderAddr"`
	Term         uint64      `json:"term"`
	CommitIndex  uint64      `json:"commitIndex"`
	AppliedIndex uint64      `json:"appliedIndex"`
	Voters       []voterData `json:"voters"`
	Keys         int         `json:"keys"`
	AuthDisabled bool        `json:"authDisabled"`
	InsecurePeer bool        `json:"insecurePeer"`
	PeerWarning  string      `json:"peerWarning,omitempty"`
}

// insecurePeerWarning is what GET /cluster/status says about a peer port
// without mutual TLS.
const insecurePeerWarning = "the peer port runs WITHOUT authentication (--insecure-peer): anyone who can reach it can join the cluster and rewrite its data"

type voterData struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

// clusterStatus serves GET /cluster/status from Store.Status.
func (a *api) clusterStatus(r *http.Request) (reply, error) {
	st, err := a.st.Status(r.Context())
	if err != nil {
		return reply{}, err
	}
	voters := make([]voterData, 0, len(st.Voters)) // [] rather than null when empty
	for _, p := range st.Voters {
		voters = append(voters, voterData{ID: p.ID, Addr: p.Addr})
	}
	return dataReply(http.StatusOK, statusData{
		NodeID:       st.NodeID,
		State:        st.State,
		LeaderID:     st.LeaderID,
		LeaderAddr:   st.LeaderAddr,
		Term:         st.Term,
		CommitIndex:  st.CommitIndex,
		AppliedIndex: st.AppliedIndex,
		Voters:       voters,
		Keys:         st.Keys,
		AuthDisabled: a.cfg.InsecureNoAuth,
		InsecurePeer: a.cfg.InsecurePeer,
		PeerWarning:  peerWarning(a.cfg.InsecurePeer),
	})
}

func peerWarning(insecure bool) string {
	if insecure {
		return insecurePeerWarning
	}
	return ""
}
