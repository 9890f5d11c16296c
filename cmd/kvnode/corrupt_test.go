package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// TestCorruptNodeRefusesThenWipeAndRejoin runs the runbook of
// docs/disk-faults.md on a three-node cluster: one node's raft log gets a
// flipped byte while it is stopped; it refuses to start (non-nil error from
// start, so kvnode exits 1) naming the file, the check and the recovery;
// the other two keep serving; the node is removed, its data dir wiped, and
// it joins again under its id and catches up with every acknowledged write.
func TestCorruptNodeRefusesThenWipeAndRejoin(t *testing.T) {
	n1, _ := startTestNode(t, nil, "--api-key", "secret", "--id", "n1", "--data-dir", t.TempDir())
	base1 := "http://" + n1.httpAddr
	waitUntil(t, 15*time.Second, "n1 leads", n1.store.IsLeader)
	dir3 := t.TempDir()
	n2, _ := startTestNode(t, nil, "--api-key", "secret", "--id", "n2", "--data-dir", t.TempDir(), "--join", base1)
	// n3 on bolt, whose file the test edits (the wal store is damaged in
	// the store's tests).
	n3, stop3 := startTestNode(t, nil, "--api-key", "secret", "--id", "n3", "--data-dir", dir3, "--join", base1, "--raft-log", "bolt")
	waitVoters(t, base1, 3)

	acked := map[string]string{}
	put := func(base, key, val string) {
		t.Helper()
		if code, body := do(t, "PUT", base+"/kv/items/"+key, `{"value": `+val+`}`); code != 200 && code != 201 {
			t.Fatalf("PUT %s: %d %s", key, code, body)
		}
		acked[key] = val
	}
	for i := range 30 {
		put([]string{base1, "http://" + n2.httpAddr, "http://" + n3.httpAddr}[i%3], fmt.Sprintf("k%d", i), fmt.Sprintf(`"corruptible-%04d"`, i))
	}
	waitUntil(t, 10*time.Second, "n3 to apply every write", func() bool { return n3.store.AppliedIndex() >= n1.store.AppliedIndex() })

	peer3, http3 := n3.mux.Addr(), n3.httpAddr
	stop3()
	// One flipped bit in the value of k7's log entry, in every copy bbolt kept.
	path := filepath.Join(dir3, "raft", "raft.db")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	marker := []byte("corruptible-0007")
	if bytes.Count(b, marker) == 0 {
		t.Fatal("k7's value is not in n3's raft.db")
	}
	b = bytes.ReplaceAll(b, marker, []byte("corruptiblf-0007"))
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	args := []string{"--http-addr", http3, "--peer-addr", peer3, "--heartbeat-timeout", "300ms", "--election-timeout", "300ms",
		"--insecure-peer", "--api-key", "secret", "--id", "n3", "--data-dir", dir3}
	o, err := parseFlags(args, func(string) string { return "" }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	logger, _ := newLogger(o, io.Discard)
	if n, err := start(o, logger, io.Discard); err == nil {
		n.stop(t.Context())
		t.Fatal("n3 started on a raft log with a flipped byte")
	} else if msg := err.Error(); !errors.Is(err, store.ErrCorrupt) || !strings.Contains(msg, path) ||
		!strings.Contains(msg, "CRC-32C") || !strings.Contains(msg, "wipe its data dir") {
		t.Fatalf("refusal: %v", err)
	} else {
		t.Logf("n3 refused: %v", err)
	}

	// The other two keep serving, and take writes.
	for i := 30; i < 40; i++ {
		put("http://"+n2.httpAddr, fmt.Sprintf("k%d", i), fmt.Sprintf(`"after-%d"`, i))
	}

	// The runbook: remove n3, wipe its data dir, join it again.
	if code, body := do(t, "DELETE", base1+"/cluster/nodes/n3", ""); code != 200 {
		t.Fatalf("remove n3: %d %s", code, body)
	}
	if err := os.RemoveAll(dir3); err != nil {
		t.Fatal(err)
	}
	n3, _ = startTestNode(t, nil, "--api-key", "secret", "--id", "n3", "--data-dir", dir3, "--join", base1)
	waitVoters(t, base1, 3)
	waitUntil(t, 15*time.Second, "n3 to catch up", func() bool { return n3.store.AppliedIndex() >= n1.store.AppliedIndex() })
	base3 := "http://" + n3.httpAddr
	for k, v := range acked {
		// Stale: what n3 itself holds, not what the leader answers for it.
		code, body := do(t, "GET", base3+"/kv/items/"+k+"?consistency=stale", "")
		var got struct {
			Data struct {
				Value json.RawMessage `json:"value"`
			} `json:"data"`
		}
		if code != 200 || json.Unmarshal(body, &got) != nil || string(got.Data.Value) != v {
			t.Fatalf("n3 after rejoining: %s = %d %s, want %s", k, code, body, v)
		}
	}
	if code, body := do(t, "GET", base3+"/readyz", ""); code != 200 {
		t.Fatalf("n3 /readyz: %d %s", code, body)
	}
}

// waitVoters waits until the cluster behind base lists n healthy voters.
func waitVoters(t *testing.T, base string, n int) {
	t.Helper()
	waitUntil(t, 30*time.Second, fmt.Sprintf("%d healthy voters", n), func() bool {
		var nodes nodesReply
		code, body := do(t, "GET", base+"/cluster/nodes", "")
		if code != 200 || json.Unmarshal(body, &nodes) != nil || len(nodes.Data.Nodes) != n {
			return false
		}
		for _, nd := range nodes.Data.Nodes {
			if nd.Suffrage != "voter" || !nd.Healthy {
				return false
			}
		}
		return true
	})
}
