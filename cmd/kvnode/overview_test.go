package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestOverviewOfAWiredNode checks that kvnode wires its metrics registry
// into the node reports: GET /cluster/overview carries the HTTP request
// counters and latency histogram that /metrics shows, and the dashboard's
// page is served from the binary.
func TestOverviewOfAWiredNode(t *testing.T) {
	base, _ := startLogged(t)
	if code, body := do(t, "PUT", base+"/kv/items/a", `{"value": "12345"}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}
	resp, body := get(t, base+"/cluster/overview", "Bearer secret")
	if resp.StatusCode != 200 {
		t.Fatalf("GET /cluster/overview: %d %s", resp.StatusCode, body)
	}
	var got struct {
		Data struct {
			Nodes []struct {
				ID, State string
				Keys      int64
				Traffic   struct {
					Requests []struct {
						Route, Status string
						Count         uint64
					}
					LatencyCounts []uint64
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	if len(got.Data.Nodes) != 1 {
		t.Fatalf("overview of a one-node cluster: %s", body)
	}
	n := got.Data.Nodes[0]
	if n.State != "Leader" || n.Keys != 1 {
		t.Errorf("report %+v", n)
	}
	found := false
	for _, r := range n.Traffic.Requests {
		found = found || (r.Route == "PUT /kv/items/{key}" && r.Status == "201" && r.Count == 1)
	}
	if !found || len(n.Traffic.LatencyCounts) == 0 || n.Traffic.LatencyCounts[len(n.Traffic.LatencyCounts)-1] == 0 {
		t.Errorf("the report lacks the node's request metrics: %+v", n.Traffic)
	}
	if resp, page := get(t, base+"/ui/", ""); resp.StatusCode != 200 || !strings.Contains(page, "quorumkv dashboard") {
		t.Fatalf("GET /ui/: %d", resp.StatusCode)
	}
}
