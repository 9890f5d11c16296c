package main

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/store"
)

// TestLargestValueThroughFollowerNode: with nodes wired as main wires them,
// a PUT of the largest legal value (longest key too) sent to a follower is
// forwarded to the leader and stored; one byte more is 413 too_large, never
// a transport failure or no_leader.
func TestLargestValueThroughFollowerNode(t *testing.T) {
	const limit = 200_000
	flags := []string{"--api-key", "secret", "--max-value-bytes", strconv.Itoa(limit)}
	n1, _ := startTestNode(t, nil, append(flags, "--id", "n1", "--data-dir", t.TempDir())...)
	waitUntil(t, 15*time.Second, "n1 leads", n1.store.IsLeader)
	n2, _ := startTestNode(t, nil, append(flags, "--id", "n2", "--data-dir", t.TempDir(), "--join", "http://"+n1.httpAddr)...)
	waitUntil(t, 20*time.Second, "n2 a member that knows the leader", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		st, err := n2.store.Status(ctx)
		return err == nil && st.LeaderID == "n1" && !n2.store.IsLeader()
	})

	key := strings.Repeat("k", store.MaxKeyBytes)
	url := "http://" + n2.httpAddr + "/kv/items/" + key
	value := `"` + strings.Repeat("v", limit-2) + `"`
	if code, body := do(t, "PUT", url, `{"value":`+value+`}`); code != 201 {
		t.Fatalf("PUT of the largest value through the follower: %d %s", code, clipBody(body))
	}
	code, body := do(t, "GET", url, "")
	if code != 200 || !bytes.Contains(body, []byte(value)) {
		t.Fatalf("GET: %d %s", code, clipBody(body))
	}
	over := `"` + strings.Repeat("v", limit-1) + `"`
	if code, body := do(t, "PUT", url, `{"value":`+over+`}`); code != 413 || !bytes.Contains(body, []byte(`"too_large"`)) {
		t.Fatalf("PUT one byte over the limit through the follower: %d %s", code, clipBody(body))
	}
}

// TestFrameLimitFollowsValueLimit: a value limit above the 64 MiB default
// frame raises the peer port's frame limit with it (store.Open would refuse
// the node otherwise).
func TestFrameLimitFollowsValueLimit(t *testing.T) {
	const limit = 100 << 20
	n, _ := startTestNode(t, nil, "--api-key", "secret", "--data-dir", t.TempDir(), "--max-value-bytes", strconv.Itoa(limit))
	if got, need := n.mux.MaxFrameBytes(), store.FrameBytesFor(limit); got < need {
		t.Fatalf("frame limit %d, a write of the largest value needs %d", got, need)
	}
}

func clipBody(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}
