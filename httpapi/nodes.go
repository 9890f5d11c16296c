package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/gorilla/mux"
	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/store"
)

// Membership routes. All of them are admin routes (route.admin): they change
// or reveal the cluster's shape rather than its data.

type nodeData struct {
	ID            string  `json:"id"`
	PeerAddr      string  `json:"peerAddr"`
	HTTPAddr      *string `json:"httpAddr"`      // null: never registered
	Suffrage      string  `json:"suffrage"`      // "voter" or "nonvoter"
	Leader        bool    `json:"leader"`        // this node leads, as the answering node sees it
	LastContactMs *int64  `json:"lastContactMs"` // the leader's view; null when unknown
	AppliedIndex  *uint64 `json:"appliedIndex"`  // best effort; null when unknown
	Healthy       bool    `json:"healthy"`
	// Clock: the node's clock as the answering node measures it; null
	// before the first measurement.
	Clock *clockData `json:"clock"`
	// Version and Formats: the node's software as it last reported it to the
	// leader; null when unknown (not yet probed, or a build that predates
	// them). Mixed values show a rolling upgrade in progress.
	Version *string      `json:"version"`
	Formats *fsm.Formats `json:"formats"`
}

type clockData struct {
	OffsetMs    float64 `json:"offsetMs"`    // its clock minus the answering node's
	ErrorMs     float64 `json:"errorMs"`     // the measurement's error bound (half the round trip)
	AgeMs       int64   `json:"ageMs"`       // time since the measurement
	WithinBound bool    `json:"withinBound"` // agrees with a majority of the voters within --max-clock-offset
}

// listNodes serves GET /cluster/nodes.
func (a *api) listNodes(r *http.Request) (reply, error) {
	nodes, err := a.st.Nodes(r.Context())
	if err != nil {
		return reply{}, err
	}
	out := make([]nodeData, 0, len(nodes))
	for _, n := range nodes {
		d := nodeData{ID: n.ID, PeerAddr: n.PeerAddr, Suffrage: "nonvoter", Leader: n.Leader, Healthy: n.Probed && n.Healthy}
		if n.Voter {
			d.Suffrage = "voter"
		}
		if n.HTTPAddr != "" {
			d.HTTPAddr = &n.HTTPAddr
		}
		if n.Probed {
			ms, applied := n.LastContact.Milliseconds(), n.AppliedIndex
			d.LastContactMs, d.AppliedIndex = &ms, &applied
		}
		if c := n.Clock; c.Measured {
			d.Clock = &clockData{
				OffsetMs:    float64(c.Offset.Microseconds()) / 1e3,
				ErrorMs:     float64(c.Error.Microseconds()) / 1e3,
				AgeMs:       c.Age.Milliseconds(),
				WithinBound: c.WithinBound,
			}
		}
		if n.Build.Version != "" {
			b := n.Build
			d.Version, d.Formats = &b.Version, &b.Formats
		}
		out = append(out, d)
	}
	return dataReply(http.StatusOK, struct {
		Nodes []nodeData `json:"nodes"`
	}{out})
}

// joinNode serves POST /cluster/nodes with {"id", "peerAddr", "httpAddr"}:
// 201 when the node was added (as a non-voter, promoted once caught up), 200
// when it was already a member (unchanged, or an address replaced).
func (a *api) joinNode(r *http.Request) (reply, error) {
	body, err := readBody(r, a.maxBodyBytes())
	if err != nil {
		return reply{}, err
	}
	fields, err := parseObject(body, false, "id", "peerAddr", "httpAddr")
	if err != nil {
		return reply{}, err
	}
	var req store.JoinRequest
	for name, dst := range map[string]*string{"id": &req.ID, "peerAddr": &req.PeerAddr, "httpAddr": &req.HTTPAddr} {
		raw, ok := fields[name]
		if !ok || string(raw) == "null" {
			continue
		}
		if err := json.Unmarshal(raw, dst); err != nil {
			return reply{}, errInvalidJSON(fmt.Sprintf("%q must be a string.", name))
		}
	}
	action, err := a.st.Join(r.Context(), req)
	if err != nil {
		return reply{}, err
	}
	status := http.StatusOK
	if action == store.JoinAdded {
		status = http.StatusCreated
	}
	return dataReply(status, struct {
		ID     string `json:"id"`
		Action string `json:"action"` // added, updated or unchanged
	}{req.ID, action.String()})
}

// removeNode serves DELETE /cluster/nodes/{id}.
func (a *api) removeNode(r *http.Request) (reply, error) {
	id := mux.Vars(r)["id"]
	if err := a.st.RemoveNode(r.Context(), id); err != nil {
		return reply{}, err
	}
	return dataReply(http.StatusOK, struct {
		ID      string `json:"id"`
		Removed bool   `json:"removed"`
	}{id, true})
}

// transferLeader serves POST /cluster/leader/transfer with an optional
// {"id": "n2"} (no body or no id: any other up-to-date voter).
func (a *api) transferLeader(r *http.Request) (reply, error) {
	body, err := readBody(r, a.maxBodyBytes())
	if err != nil {
		return reply{}, err
	}
	fields, err := parseObject(body, true, "id")
	if err != nil {
		return reply{}, err
	}
	var id string
	if raw, ok := fields["id"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &id); err != nil || id == "" {
			return reply{}, errInvalidJSON(`"id" must be a non-empty string naming a voter.`)
		}
	}
	leader, err := a.st.TransferLeader(r.Context(), id)
	if err != nil {
		return reply{}, err
	}
	return dataReply(http.StatusOK, struct {
		LeaderID *string `json:"leaderId"` // null: no leader seen yet
	}{nullable(leader)})
}

func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
