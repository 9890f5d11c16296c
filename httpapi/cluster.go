package httpapi

import (
	"net/http"
)

// healthz serves GET /healthz: the process is up and serving HTTP. It says
// nothing about raft; /cluster/status does.
func (a *api) healthz(*http.Request) (reply, error) {
	return dataReply(http.StatusOK, struct {
		Status string `json:"status"`
	}{"ok"})
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
}

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
	})
}
