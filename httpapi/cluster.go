package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/internal/version"
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

// readyz serves GET /readyz: 200 when this node knows a leader, has caught up
// with it and can serve linearizable reads; otherwise 503 not_ready (or
// clock_offset, when its clock is out of bounds) with a short reason code
// (readyReason). It is unauthenticated, so its answer says
// nothing about the cluster's internals: no indexes, ids, addresses or error
// text. GET /readyz?verbose with a read-scope key adds the detail to the 503
// message (and answers 401/403 without one).
func (a *api) readyz(r *http.Request) (reply, error) {
	_, verbose := r.URL.Query()["verbose"]
	if verbose {
		key, err := a.authenticate(r)
		if err != nil {
			return reply{}, err
		}
		if err := authorize(key, http.MethodGet, "/cluster/status"); err != nil {
			return reply{}, err
		}
	}
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := a.st.Ready(ctx); err != nil {
		reason := readyReason(err)
		code := "not_ready"
		msg := "This node cannot serve linearizable reads yet (" + reason + "). Send traffic to another node until it is ready."
		switch reason {
		case "disk":
			code, msg = "disk_error", diskErrorMessage
		case "clock_offset":
			// Its own code too: the operator must fix the clock, not wait.
			code = "clock_offset"
			msg = "This node is not ready: its clock is outside --max-clock-offset of a majority of the voters (GET /cluster/nodes shows the offsets). Fix its clock synchronisation; send traffic to another node meanwhile."
		}
		if verbose {
			msg += " Detail: " + err.Error() + "."
		}
		return reply{}, &apiError{
			status: http.StatusServiceUnavailable, code: code, retryable: true, retryAfter: true,
			reason: reason, message: msg,
		}
	}
	// A node whose storage quota is reached still serves reads, deletes and
	// TTL changes, so it stays ready; the detail tells operators why writes
	// that add data are refused.
	var detail string
	if a.st.Quota().Full() {
		detail = "storage quota reached: writes that add data are refused with 507 insufficient_storage until keys are deleted or --max-keys/--max-data-bytes is raised"
	}
	return dataReply(http.StatusOK, struct {
		Status string `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"ready", detail})
}

// diskErrorMessage answers every request to a node whose disk failed
// (store.ErrDiskFailed): /readyz and every read and write.
const diskErrorMessage = "This node's disk failed (its raft log or stable store returned an I/O error or a checksum mismatch), " +
	"so it stopped taking part in the cluster and serves nothing; the request was not processed. Send it to another node. " +
	"Operators: GET /cluster/status shows the error; check the disk, then restart the node, and if it refuses to start " +
	"because its files are damaged, wipe its data dir and rejoin it (docs/disk-faults.md)."

// readyReason is the short, fixed code /readyz gives for why a node is not
// ready.
func readyReason(err error) string { return store.ReadyReason(err) }

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
	ClusterID    *string     `json:"clusterId"` // null until the first leader recorded one
	RaftLog      string      `json:"raftLog"`   // bolt or wal: the raft log store this node runs
	Build        buildData   `json:"build"`
	// DiskFailure is null while this node's raft storage works; once it
	// failed (the node stopped, 503 disk_error), what failed and when.
	DiskFailure *diskFailureData `json:"diskFailure"`
}

type diskFailureData struct {
	Op    string    `json:"op"`
	Error string    `json:"error"`
	At    time.Time `json:"at"`
}

// buildData is the answering node's software: its version and toolchain
// (internal/version) and the formats of replicated state it supports.
type buildData struct {
	Version   string      `json:"version"`
	GoVersion string      `json:"goVersion"`
	Revision  *string     `json:"revision"` // null when the binary does not know it
	Modified  bool        `json:"modified"`
	Formats   fsm.Formats `json:"formats"`
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
	var clusterID *string
	if st.ClusterID != "" {
		clusterID = &st.ClusterID
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
		ClusterID:    clusterID,
		RaftLog:      st.RaftLog,
		Build:        localBuild(st.Build),
		DiskFailure:  diskFailure(st.DiskFailure),
	})
}

func diskFailure(f *store.DiskFailure) *diskFailureData {
	if f == nil {
		return nil
	}
	return &diskFailureData{Op: f.Op, Error: f.Err, At: f.At.UTC()}
}

func localBuild(b store.Build) buildData {
	v := version.Get()
	return buildData{Version: b.Version, GoVersion: v.GoVersion, Revision: nullable(v.Revision), Modified: v.Modified, Formats: b.Formats}
}

func peerWarning(insecure bool) string {
	if insecure {
		return insecurePeerWarning
	}
	return ""
}
