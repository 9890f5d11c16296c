package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/client"
)

// TestWatchResumesOnAnotherNode wires three nodes as main does (one
// bootstraps, two join), watches a prefix through a follower with the Go
// client, and stops that follower halfway through a run of writes: the
// watch resumes on the other follower from the last index it delivered, and
// the events seen are exactly the writes, in order, with no gap and no
// duplicate.
func TestWatchResumesOnAnotherNode(t *testing.T) {
	n1, n2, n3, stop2 := startThreeNodes(t)
	base1 := "http://" + n1.httpAddr

	writer, err := client.New(client.Config{Endpoints: []string{base1}, APIKey: "secret"})
	if err != nil {
		t.Fatal(err)
	}
	watcher, err := client.New(client.Config{Endpoints: []string{"http://" + n2.httpAddr, "http://" + n3.httpAddr}, APIKey: "secret",
		Timeout: 5 * time.Second, Retry: client.RetryPolicy{MaxAttempts: 20, BaseDelay: 20 * time.Millisecond, MaxDelay: 200 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	const writes = 60
	events := make(chan client.Event, writes)
	errc := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		defer close(events)
		n := 0
		for ev, err := range watcher.Watch(ctx, "w/", client.WatchOptions{Progress: true, IdleTimeout: 30 * time.Second}) {
			if err != nil {
				errc <- err
				return
			}
			if ev.Type == client.EventProgress {
				select {
				case <-started:
				default:
					close(started)
				}
				continue
			}
			events <- ev
			if n++; n == writes {
				return
			}
		}
	}()
	<-started
	var want []string
	for i := range writes {
		if i == writes/2 {
			stop2() // the node serving the watch goes away mid-run
		}
		res, err := writer.Put(ctx, fmt.Sprintf("w/%03d", i), i)
		if err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
		want = append(want, fmt.Sprintf("set w/%03d@%d", i, res.Version))
	}
	var got []string
	for ev := range events {
		got = append(got, fmt.Sprintf("%s %s@%d", ev.Type, ev.Key, ev.Index))
	}
	select {
	case err := <-errc:
		t.Fatalf("watch ended with %v after %d events", err, len(got))
	default:
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events across the failover:\n got  %v\n want %v", got, want)
	}
}

// startThreeNodes starts n1 (bootstrapping) and n2, n3 (joining it) as main
// does, and waits until all three are healthy voters.
func startThreeNodes(t *testing.T) (n1, n2, n3 *node, stop2 func()) {
	n1, _ = startTestNode(t, nil, "--api-key", "secret", "--id", "n1", "--data-dir", t.TempDir())
	waitUntil(t, 15*time.Second, "n1 leads", n1.store.IsLeader)
	base1 := "http://" + n1.httpAddr
	n2, stop2 = startTestNode(t, nil, "--api-key", "secret", "--id", "n2", "--data-dir", t.TempDir(), "--join", base1)
	n3, _ = startTestNode(t, nil, "--api-key", "secret", "--id", "n3", "--data-dir", t.TempDir(), "--join", base1)
	waitUntil(t, 30*time.Second, "three voters", func() bool {
		code, body := do(t, "GET", base1+"/cluster/nodes", "")
		return code == 200 && countVoters(body) == 3
	})
	return n1, n2, n3, stop2
}

// countVoters counts "voter" members in a GET /cluster/nodes body.
func countVoters(body []byte) int {
	var nodes nodesReply
	if err := json.Unmarshal(body, &nodes); err != nil {
		return 0
	}
	n := 0
	for _, nd := range nodes.Data.Nodes {
		if nd.Suffrage == "voter" && nd.Healthy {
			n++
		}
	}
	return n
}
