package client_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/quorumkv/quorumkv/client"
	"github.com/quorumkv/quorumkv/client/kvfake"
)

func TestClusterCalls(t *testing.T) {
	ctx := context.Background()
	fake, c := healthy(t)

	st, err := c.Status(ctx)
	if err != nil || st.LeaderID != "n1" || len(st.Voters) != 3 || st.Endpoint == "" {
		t.Fatalf("status: %+v %v", st, err)
	}

	if err := c.Join(ctx, client.JoinRequest{ID: "n4", PeerAddr: "127.0.0.1:9084", HTTPAddr: "127.0.0.1:8084"}); err != nil {
		t.Fatal(err)
	}
	nodes, err := c.Nodes(ctx)
	if err != nil || len(nodes) != 4 {
		t.Fatalf("nodes: %+v %v", nodes, err)
	}
	n4 := nodes[3]
	if n4.ID != "n4" || n4.PeerAddr != "127.0.0.1:9084" || n4.Suffrage != "voter" || !n4.Healthy || len(n4.Raw) == 0 {
		t.Fatalf("joined node %+v", n4)
	}
	if !nodes[0].Leader || nodes[0].LastContactMs != nil || nodes[1].LastContactMs == nil {
		t.Fatalf("leader flags and last contact: %+v", nodes)
	}

	if leader, err := c.TransferLeader(ctx, "n3"); err != nil || leader != "n3" || fake.Leader() != "n3" {
		t.Fatalf("transfer: %q %v", leader, err)
	}
	if leader, err := c.TransferLeader(ctx, ""); err != nil || leader == "" || leader == "n3" {
		t.Fatalf("transfer to anyone: %q %v", leader, err)
	}
	if err := c.Remove(ctx, "n4"); err != nil || len(fake.Nodes()) != 3 {
		t.Fatalf("remove: %v (%d nodes)", err, len(fake.Nodes()))
	}
	if err := c.Remove(ctx, "n4"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
	if err := c.Join(ctx, client.JoinRequest{ID: "n5"}); !errors.Is(err, client.ErrInvalidOption) {
		t.Fatalf("join without address: %v", err)
	}
}

// TestNodesAcceptsABareArray: the membership route may answer
// {"data": [...]} rather than {"data": {"nodes": [...]}}; both decode.
func TestNodesAcceptsABareArray(t *testing.T) {
	srv := startRaw(t, `{"data":[{"id":"n1","peerAddr":"a:1","suffrage":"voter","leader":true,"healthy":true,"extra":1}]}`)
	nodes, err := newClient(t, []string{srv}).Nodes(context.Background())
	if err != nil || len(nodes) != 1 || nodes[0].ID != "n1" || !bytes.Contains(nodes[0].Raw, []byte(`"extra"`)) {
		t.Fatalf("nodes %+v %v", nodes, err)
	}
}

func TestSnapshotAndRestore(t *testing.T) {
	ctx := context.Background()
	fake := kvfake.New()
	// The first node is down: the snapshot and the restore move on to the next.
	nodes := startNodes(t, fake, always(kvfake.Unavailable), nil)
	c := newClient(t, urls(nodes))
	c.Put(ctx, "a", 1)
	c.Put(ctx, "b", map[string]int{"x": 2})

	var snap bytes.Buffer
	n, err := c.Snapshot(ctx, &snap)
	if err != nil || n == 0 || int64(snap.Len()) != n {
		t.Fatalf("snapshot: %d bytes, %v", n, err)
	}
	c.Delete(ctx, "a")
	c.Put(ctx, "c", 3)

	if _, err := c.Restore(ctx, bytes.NewReader(snap.Bytes())); err != nil {
		t.Fatal(err)
	}
	if it, err := c.Get(ctx, "a"); err != nil || string(it.Value) != "1" {
		t.Fatalf("a after restore: %s %v", it.Value, err)
	}
	if _, err := c.Get(ctx, "c"); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("c after restore: %v", err)
	}

	corrupt := bytes.Replace(snap.Bytes(), []byte(`"a"`), []byte(`"z"`), 1)
	if _, err := c.Restore(ctx, bytes.NewReader(corrupt)); !errors.Is(err, client.ErrInvalid) {
		t.Fatalf("corrupt restore: %v", err)
	}
	if _, err := c.Get(ctx, "a"); err != nil {
		t.Fatalf("a corrupt restore changed the data: %v", err)
	}

	// A body that cannot be rewound gets one attempt: the first node's 503.
	c2 := newClient(t, urls(nodes))
	if _, err := c2.Restore(ctx, io.MultiReader(bytes.NewReader(snap.Bytes()))); !errors.Is(err, client.ErrUnavailable) {
		t.Fatalf("restore from a pipe through a down node: %v", err)
	}
}

func TestSnapshotIsNotRetriedOnceStreaming(t *testing.T) {
	var hits int
	srv := startHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		w.Header().Set("Content-Length", "100")
		w.Write([]byte("partial"))
	}))
	var buf bytes.Buffer
	n, err := newClient(t, []string{srv, srv}).Snapshot(context.Background(), &buf)
	if err == nil || n != 7 || hits != 1 {
		t.Fatalf("snapshot cut short: %d bytes, %d attempts, %v", n, hits, err)
	}
}
