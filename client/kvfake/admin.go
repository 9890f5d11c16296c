package kvfake

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/internal/version"
)

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := client.Status{NodeID: s.leader, State: "Leader", LeaderID: s.leader, Term: 2,
		CommitIndex: s.index, AppliedIndex: s.index, Voters: []client.Voter{}, Keys: len(s.items)}
	for _, n := range s.nodes {
		if n.Suffrage == "voter" {
			st.Voters = append(st.Voters, client.Voter{ID: n.ID, Addr: n.PeerAddr})
		}
		if n.ID == s.leader {
			st.LeaderAddr = n.PeerAddr
		}
	}
	// The status with the fake's own build, shaped as a node reports it
	// (a revision it does not know is null).
	dataResp(http.StatusOK, struct {
		client.Status
		Build map[string]any `json:"build"`
	}{st, fakeBuild()}).write(w)
}

// fakeBuild describes the fake's own binary as a node's status does.
func fakeBuild() map[string]any {
	v := version.Get()
	var rev any
	if v.Revision != "" {
		rev = v.Revision
	}
	return map[string]any{"version": v.Version, "goVersion": v.GoVersion, "revision": rev, "modified": v.Modified}
}

// nodesRoute serves GET and POST /cluster/nodes and DELETE /cluster/nodes/{id}.
func (s *Server) nodesRoute(w http.ResponseWriter, r *http.Request, escapedID string) {
	switch {
	case escapedID == "" && r.Method == http.MethodGet:
		s.mu.Lock()
		nodes := make([]Node, len(s.nodes))
		for i, n := range s.nodes {
			n.Leader = n.ID == s.leader
			n.AppliedIndex = s.index
			if !n.Leader {
				ms := int64(12)
				n.LastContactMs = &ms
			}
			nodes[i] = n
		}
		s.mu.Unlock()
		dataResp(http.StatusOK, map[string]any{"nodes": nodes}).write(w)
	case escapedID == "" && r.Method == http.MethodPost:
		var req client.JoinRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.ID == "" || req.PeerAddr == "" {
			errResp(http.StatusBadRequest, "invalid_json", "fake: send {\"id\", \"peerAddr\", \"httpAddr\"}", false).write(w)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, n := range s.nodes {
			if n.ID == req.ID {
				s.nodes[i].PeerAddr, s.nodes[i].HTTPAddr = req.PeerAddr, req.HTTPAddr
				dataResp(http.StatusOK, s.nodes[i]).write(w)
				return
			}
		}
		n := Node{ID: req.ID, PeerAddr: req.PeerAddr, HTTPAddr: req.HTTPAddr, Suffrage: "voter", Healthy: true}
		s.nodes = append(s.nodes, n)
		dataResp(http.StatusOK, n).write(w)
	case escapedID != "" && r.Method == http.MethodDelete:
		id, err := url.PathUnescape(escapedID)
		if err != nil {
			errResp(http.StatusBadRequest, "invalid_parameter", "fake: bad id", false).write(w)
			return
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, n := range s.nodes {
			if n.ID != id {
				continue
			}
			if len(s.nodes) == 1 {
				errResp(http.StatusConflict, "last_voter", "fake: cannot remove the last voter", false).write(w)
				return
			}
			s.nodes = append(s.nodes[:i], s.nodes[i+1:]...)
			if s.leader == id {
				s.leader = s.nodes[0].ID
			}
			dataResp(http.StatusOK, map[string]any{"id": id, "removed": true}).write(w)
			return
		}
		errResp(http.StatusNotFound, "not_found", "fake: no such node", false).write(w)
	case escapedID == "":
		methodNotAllowed(w, "GET, POST")
	default:
		methodNotAllowed(w, "DELETE")
	}
}

func (s *Server) transfer(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	var req struct {
		ID string `json:"id"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil && err != io.EOF {
		errResp(http.StatusBadRequest, "invalid_json", "fake: send {\"id\": ...} or nothing", false).write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	target := ""
	for _, n := range s.nodes {
		if (req.ID == "" && n.ID != s.leader && n.Suffrage == "voter") || (req.ID != "" && n.ID == req.ID) {
			target = n.ID
			break
		}
	}
	if target == "" {
		errResp(http.StatusNotFound, "not_found", "fake: no such voter", false).write(w)
		return
	}
	s.leader = target
	dataResp(http.StatusOK, map[string]any{"leaderId": target}).write(w)
}

// snapshotFile is the fake's snapshot format: the items and a SHA-256 of
// their JSON. The real format differs; clients must treat it as opaque.
type snapshotFile struct {
	Format   string          `json:"format"`
	Items    json.RawMessage `json:"items"`
	Checksum string          `json:"checksum"`
}

type snapshotItem struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value"`
	Version     uint64          `json:"version"`
	ExpiresAtMs int64           `json:"expiresAtMs,omitempty"`
}

func (s *Server) snapshot(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, "GET")
		return
	}
	s.mu.Lock()
	items := []snapshotItem{}
	for k, e := range s.items {
		it := snapshotItem{Key: k, Value: e.value, Version: e.version}
		if !e.expiresAt.IsZero() {
			it.ExpiresAtMs = e.expiresAt.UnixMilli()
		}
		items = append(items, it)
	}
	s.mu.Unlock()
	raw, _ := json.Marshal(items)
	sum := sha256.Sum256(raw)
	b, _ := json.Marshal(snapshotFile{Format: "kvfake-1", Items: raw, Checksum: hex.EncodeToString(sum[:])})
	w.Header().Set("Content-Type", "application/octet-stream")
	_, _ = w.Write(b)
}

func (s *Server) restore(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		methodNotAllowed(w, "POST")
		return
	}
	var f snapshotFile
	body, err := io.ReadAll(r.Body)
	if err == nil {
		err = json.Unmarshal(body, &f)
	}
	sum := sha256.Sum256(f.Items)
	var items []snapshotItem
	if err != nil || f.Format != "kvfake-1" || hex.EncodeToString(sum[:]) != f.Checksum || json.Unmarshal(f.Items, &items) != nil {
		errResp(http.StatusBadRequest, "invalid_snapshot", "fake: the snapshot is corrupt or truncated; nothing was changed", false).write(w)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items = map[string]*entry{}
	for _, it := range items {
		e := &entry{value: it.Value, version: it.Version}
		if it.ExpiresAtMs != 0 {
			e.expiresAt = time.UnixMilli(it.ExpiresAtMs)
		}
		s.items[it.Key] = e
		s.index = max(s.index, it.Version)
	}
	s.index++
	dataResp(http.StatusOK, map[string]any{"restored": len(items)}).write(w)
}
