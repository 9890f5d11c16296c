package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
	"github.com/quorumkv/quorumkv/store"
)

// The fake's membership follows the store's rules on a slice of servers,
// under f.mu.

func (f *fakeStore) Nodes(ctx context.Context) ([]store.NodeInfo, error) {
	if err := f.enter(ctx, ""); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]store.NodeInfo(nil), f.members...), nil
}

func (f *fakeStore) Join(ctx context.Context, req store.JoinRequest) (store.JoinAction, error) {
	if err := f.enter(ctx, req.ID); err != nil {
		return 0, err
	}
	if req.ID == "" || req.PeerAddr == "" {
		return 0, fmt.Errorf("%w: id and peerAddr are required", store.ErrInvalidNode)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, n := range f.members {
		switch {
		case n.ID == req.ID && n.PeerAddr == req.PeerAddr && n.HTTPAddr == req.HTTPAddr:
			return store.JoinUnchanged, nil
		case n.ID == req.ID:
			f.members[i].PeerAddr, f.members[i].HTTPAddr = req.PeerAddr, req.HTTPAddr
			return store.JoinUpdated, nil
		case n.PeerAddr == req.PeerAddr:
			return 0, store.ErrNodeConflict
		}
	}
	f.members = append(f.members, store.NodeInfo{ID: req.ID, PeerAddr: req.PeerAddr, HTTPAddr: req.HTTPAddr})
	return store.JoinAdded, nil
}

func (f *fakeStore) RemoveNode(ctx context.Context, id string) error {
	if err := f.enter(ctx, id); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	voters := 0
	for _, n := range f.members {
		if n.Voter {
			voters++
		}
	}
	for i, n := range f.members {
		if n.ID == id {
			if n.Voter && voters == 1 {
				return store.ErrLastVoter
			}
			f.members = append(f.members[:i], f.members[i+1:]...)
			return nil
		}
	}
	return store.ErrNodeNotFound
}

func (f *fakeStore) TransferLeader(ctx context.Context, id string) (string, error) {
	if err := f.enter(ctx, id); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	target := -1
	for i, n := range f.members {
		if (id == "" && n.Voter && !n.Leader) || (id != "" && n.ID == id) {
			target = i
			break
		}
	}
	switch {
	case target < 0 && id == "":
		return "", store.ErrTransferFailed
	case target < 0:
		return "", store.ErrNodeNotFound
	case !f.members[target].Voter:
		return "", store.ErrNotVoter
	}
	for i := range f.members {
		f.members[i].Leader = i == target
	}
	return f.members[target].ID, nil
}

func threeNodes() []store.NodeInfo {
	return []store.NodeInfo{
		{ID: "n1", PeerAddr: "127.0.0.1:9081", HTTPAddr: "http://127.0.0.1:8081", Voter: true, Leader: true, Probed: true, AppliedIndex: 42, Healthy: true,
			Clock: store.PeerClock{Measured: true, WithinBound: true},
			Build: store.Build{Version: "0.2.0", Formats: fsm.Formats{Codec: fsm.Range{Min: 1, Max: 2}, Ops: "1-9", Snapshot: fsm.Range{Min: 1, Max: 4}, Backup: fsm.Range{Min: 1, Max: 2}}}},
		{ID: "n2", PeerAddr: "127.0.0.1:9082", HTTPAddr: "http://127.0.0.1:8082", Voter: true, Probed: true, AppliedIndex: 41, LastContact: 35 * time.Millisecond, Healthy: true,
			Clock: store.PeerClock{Measured: true, Offset: -1200*time.Second - 1500*time.Microsecond, Error: 250 * time.Microsecond, Age: 120 * time.Millisecond}},
		{ID: "n3", PeerAddr: "127.0.0.1:9083", Voter: false},
	}
}

func TestMembershipRoutesRequireTheKey(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, rt := range []struct{ method, path, body string }{
		{"GET", "/cluster/nodes", ""},
		{"POST", "/cluster/nodes", `{"id": "n4", "peerAddr": "h:1"}`},
		{"DELETE", "/cluster/nodes/n2", ""},
		{"POST", "/cluster/leader/transfer", ""},
	} {
		for _, auth := range []string{"", "Bearer wrong"} {
			wantError(t, e.do(rt.method, rt.path, rt.body, auth), http.StatusUnauthorized, "unauthorized")
		}
	}
	if n := e.st.callCount(); n != 0 {
		t.Fatalf("store called %d times without the key", n)
	}
}

func TestListNodes(t *testing.T) {
	e := newTestEnv(t, nil)
	e.st.members = threeNodes()
	var got struct {
		Nodes []map[string]any `json:"nodes"`
	}
	wantData(t, e.do("GET", "/cluster/nodes", "", bearer), http.StatusOK, &got)
	if len(got.Nodes) != 3 {
		t.Fatalf("nodes: %v", got.Nodes)
	}
	want := []map[string]any{
		{"id": "n1", "peerAddr": "127.0.0.1:9081", "httpAddr": "http://127.0.0.1:8081", "suffrage": "voter", "leader": true, "lastContactMs": 0.0, "appliedIndex": 42.0, "healthy": true,
			"clock": map[string]any{"offsetMs": 0.0, "errorMs": 0.0, "ageMs": 0.0, "withinBound": true}, "version": "0.2.0",
			"formats": map[string]any{"codec": map[string]any{"min": 1.0, "max": 2.0}, "ops": "1-9", "snapshot": map[string]any{"min": 1.0, "max": 4.0}, "backup": map[string]any{"min": 1.0, "max": 2.0}}},
		{"id": "n2", "peerAddr": "127.0.0.1:9082", "httpAddr": "http://127.0.0.1:8082", "suffrage": "voter", "leader": false, "lastContactMs": 35.0, "appliedIndex": 41.0, "healthy": true,
			"clock": map[string]any{"offsetMs": -1200001.5, "errorMs": 0.25, "ageMs": 120.0, "withinBound": false}, "version": nil, "formats": nil},
		{"id": "n3", "peerAddr": "127.0.0.1:9083", "httpAddr": nil, "suffrage": "nonvoter", "leader": false, "lastContactMs": nil, "appliedIndex": nil, "healthy": false, "clock": nil, "version": nil, "formats": nil},
	}
	for i := range want {
		if fmt.Sprint(got.Nodes[i]) != fmt.Sprint(want[i]) {
			t.Errorf("node %d = %v\nwant %v", i, got.Nodes[i], want[i])
		}
	}
	e.st.members = nil
	wantData(t, e.do("GET", "/cluster/nodes", "", bearer), http.StatusOK, &got)
	if got.Nodes == nil || len(got.Nodes) != 0 {
		t.Fatalf("empty list must be [], got %v", got.Nodes)
	}
}

func TestMembershipRoutes(t *testing.T) {
	type data = map[string]any
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string // error code, or "" for success
		want                     data   // success data
	}{
		{"join adds", "POST", "/cluster/nodes", `{"id": "n4", "peerAddr": "127.0.0.1:9084", "httpAddr": "http://127.0.0.1:8084"}`, 201, "", data{"id": "n4", "action": "added"}},
		{"join again", "POST", "/cluster/nodes", `{"id": "n2", "peerAddr": "127.0.0.1:9082", "httpAddr": "http://127.0.0.1:8082"}`, 200, "", data{"id": "n2", "action": "unchanged"}},
		{"join new address", "POST", "/cluster/nodes", `{"id": "n2", "peerAddr": "10.0.0.2:9082", "httpAddr": "http://127.0.0.1:8082"}`, 200, "", data{"id": "n2", "action": "updated"}},
		{"join without httpAddr", "POST", "/cluster/nodes", `{"id": "n5", "peerAddr": "127.0.0.1:9085"}`, 201, "", data{"id": "n5", "action": "added"}},
		{"join address taken", "POST", "/cluster/nodes", `{"id": "n9", "peerAddr": "127.0.0.1:9081"}`, 409, "node_conflict", nil},
		{"join missing id", "POST", "/cluster/nodes", `{"peerAddr": "127.0.0.1:9089"}`, 400, "invalid_node", nil},
		{"join id not a string", "POST", "/cluster/nodes", `{"id": 4, "peerAddr": "h:1"}`, 400, "invalid_json", nil},
		{"join unknown field", "POST", "/cluster/nodes", `{"id": "n4", "peerAddr": "h:1", "voter": true}`, 400, "invalid_json", nil},
		{"join no body", "POST", "/cluster/nodes", ``, 400, "invalid_json", nil},
		{"remove", "DELETE", "/cluster/nodes/n3", "", 200, "", data{"id": "n3", "removed": true}},
		{"remove unknown", "DELETE", "/cluster/nodes/n7", "", 404, "node_not_found", nil},
		{"transfer to n2", "POST", "/cluster/leader/transfer", `{"id": "n2"}`, 200, "", data{"leaderId": "n2"}},
		{"transfer to anyone", "POST", "/cluster/leader/transfer", ``, 200, "", data{"leaderId": "n1"}},
		{"transfer null id", "POST", "/cluster/leader/transfer", `{"id": null}`, 200, "", data{"leaderId": "n1"}},
		{"transfer to non-voter", "POST", "/cluster/leader/transfer", `{"id": "n3"}`, 409, "not_voter", nil},
		{"transfer to unknown", "POST", "/cluster/leader/transfer", `{"id": "zz"}`, 404, "node_not_found", nil},
		{"transfer empty id", "POST", "/cluster/leader/transfer", `{"id": ""}`, 400, "invalid_json", nil},
		{"nodes wrong method", "PUT", "/cluster/nodes", ``, 405, "method_not_allowed", nil},
		{"node wrong method", "GET", "/cluster/nodes/n1", ``, 405, "method_not_allowed", nil},
		{"transfer wrong method", "GET", "/cluster/leader/transfer", ``, 405, "method_not_allowed", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEnv(t, nil)
			e.st.members = threeNodes()
			if tc.name == "transfer to anyone" || tc.name == "transfer null id" {
				e.st.members[0].Leader, e.st.members[1].Leader = false, true
			}
			res := e.do(tc.method, tc.path, tc.body, bearer)
			if tc.code != "" {
				wantError(t, res, tc.status, tc.code)
				return
			}
			var got data
			wantData(t, res, tc.status, &got)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("data = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMembershipStoreErrors(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{store.ErrLastVoter, 409, "last_voter"},
		{store.ErrTransferFailed, 503, "transfer_failed"},
		{store.ErrNoLeader, 503, "no_leader"},
		{fmt.Errorf("x: %w", store.ErrOutcomeUnknown), 503, "outcome_unknown"},
	}
	for _, tc := range tests {
		e := newTestEnv(t, nil)
		e.st.err = tc.err
		for _, rt := range []struct{ method, path, body string }{
			{"GET", "/cluster/nodes", ""},
			{"POST", "/cluster/nodes", `{"id": "n4", "peerAddr": "h:1"}`},
			{"DELETE", "/cluster/nodes/n1", ""},
			{"POST", "/cluster/leader/transfer", ""},
		} {
			eb := wantError(t, e.do(rt.method, rt.path, rt.body, bearer), tc.status, tc.code)
			// A removal or transfer whose outcome is unknown is not safe to repeat.
			unsafe := tc.code == "outcome_unknown" && (rt.method == "DELETE" || rt.path == "/cluster/leader/transfer")
			if retry := tc.status == 503 && !unsafe; eb.Retryable != retry {
				t.Errorf("%s %s with %v: retryable = %v", rt.method, rt.path, tc.err, eb.Retryable)
			}
		}
	}
}
