package store

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

type stringerNode struct{}

func (*stringerNode) String() string { return "Node at 127.0.0.1:9 [Candidate]" }

// raft logs its own "node" attribute; it must not shadow the node id.
func TestRaftLoggerKeepsNodeAndComponent(t *testing.T) {
	var buf bytes.Buffer
	l := newRaftLogger(slog.New(slog.NewJSONHandler(&buf, nil)).With("node", "n1"))
	l.Info("entering candidate state", "node", &stringerNode{}, "term", 2)
	raw := buf.String()
	var line map[string]any
	if err := json.Unmarshal([]byte(raw), &line); err != nil {
		t.Fatal(err)
	}
	if line["node"] != "n1" || line["component"] != "raft" || line["raft_node"] != "Node at 127.0.0.1:9 [Candidate]" || line["term"] != 2.0 {
		t.Fatalf("line = %v", line)
	}
	if n := strings.Count(raw, `"node":`); n != 1 {
		t.Fatalf("%d node keys: %s", n, raw)
	}
}
