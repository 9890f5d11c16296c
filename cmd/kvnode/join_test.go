package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

type nodesReply struct {
	Data struct {
		Nodes []struct {
			ID       string  `json:"id"`
			PeerAddr string  `json:"peerAddr"`
			HTTPAddr *string `json:"httpAddr"`
			Suffrage string  `json:"suffrage"`
			Leader   bool    `json:"leader"`
			Healthy  bool    `json:"healthy"`
		} `json:"nodes"`
	} `json:"data"`
}

func TestJoinFlagAddsNodeToRunningCluster(t *testing.T) {
	n1, _ := startTestNode(t, nil, "--api-key", "secret", "--id", "n1", "--data-dir", t.TempDir())
	base1 := "http://" + n1.httpAddr
	waitUntil(t, 15*time.Second, "n1 leads", n1.store.IsLeader)
	if code, body := do(t, "PUT", base1+"/kv/items/before-join", `{"value": 1}`); code != 201 {
		t.Fatalf("PUT: %d %s", code, body)
	}

	start := time.Now()
	dir2 := t.TempDir()
	n2, _ := startTestNode(t, nil, "--api-key", "secret", "--id", "n2", "--data-dir", dir2, "--join", "http://127.0.0.1:1,"+base1)
	if !n2.store.Joining() {
		t.Fatal("n2 with an empty data dir and --join is not joining")
	}
	var nodes nodesReply
	waitUntil(t, 20*time.Second, "n2 a healthy voter with its HTTP address", func() bool {
		code, body := do(t, "GET", "http://"+n2.httpAddr+"/cluster/nodes", "")
		if code != 200 || json.Unmarshal(body, &nodes) != nil || len(nodes.Data.Nodes) != 2 {
			return false
		}
		for _, nd := range nodes.Data.Nodes {
			want := "http://" + n1.httpAddr
			if nd.ID == "n2" {
				want = "http://" + n2.httpAddr
			}
			if nd.Suffrage != "voter" || nd.HTTPAddr == nil || *nd.HTTPAddr != want || !nd.Healthy {
				return false
			}
		}
		return true
	})
	t.Logf("kvnode --join: started to healthy voter in %s", time.Since(start).Round(time.Millisecond))

	base2 := "http://" + n2.httpAddr
	if code, body := do(t, "GET", base2+"/kv/items/before-join", ""); code != 200 {
		t.Fatalf("GET on the joined node: %d %s", code, body)
	}
	if code, body := do(t, "POST", base2+"/cluster/leader/transfer", `{"id": "n2"}`); code != 200 {
		t.Fatalf("transfer to n2: %d %s", code, body)
	}
	waitUntil(t, 10*time.Second, "n2 leads", n2.store.IsLeader)
	// Removing the leader first hands leadership to a caught-up voter; right
	// after the transfer n1 may not be caught up yet, which the API answers
	// with a retryable 503 transfer_failed: retry as a client should.
	var code int
	var body []byte
	waitUntil(t, 10*time.Second, "the leader n2 removed", func() bool {
		code, body = do(t, "DELETE", base2+"/cluster/nodes/n2", "")
		if code == 503 && strings.Contains(string(body), `"transfer_failed"`) && strings.Contains(string(body), `"retryable":true`) {
			return false
		}
		return true
	})
	if code != 200 {
		t.Fatalf("remove the leader n2: %d %s", code, body)
	}
	waitUntil(t, 10*time.Second, "n1 leads alone", n1.store.IsLeader)
	if code, body := do(t, "DELETE", base1+"/cluster/nodes/n1", ""); code != 409 {
		t.Fatalf("remove the last voter: %d %s", code, body)
	}
}
