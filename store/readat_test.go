package store

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestFollowerReadAfterWriteIsPrompt: a linearizable read on a follower,
// issued right after a write acknowledged by the leader or by the other
// follower, returns that write, and does not wait for raft's CommitTimeout to
// bring the commit index (heartbeats do not carry it). With CommitTimeout at
// its 50 ms default, the median read must finish in well under that.
func TestFollowerReadAfterWriteIsPrompt(t *testing.T) {
	regs := map[string]*prometheus.Registry{}
	c := newTestCluster(t, 3, func(cfg *Config) {
		cfg.CommitTimeout = 50 * time.Millisecond
		regs[cfg.NodeID] = prometheus.NewRegistry()
		cfg.Metrics = regs[cfg.NodeID]
	})
	leader := c.leader()
	fs := c.followers(leader)
	f, other := fs[0], fs[1]
	mustSet(t, leader, "warm", `1`, 0)

	const rounds = 40
	var took []time.Duration
	for i := range rounds {
		writer := leader
		if i%2 == 1 {
			writer = other
		}
		want := fmt.Sprintf(`{"round":%d}`, i)
		mustSet(t, writer, "session", want, time.Hour)
		start := time.Now()
		it, err := f.store.Get(ctxTimeout(t, 10*time.Second), "session", Linearizable)
		took = append(took, time.Since(start))
		if err != nil {
			t.Fatalf("round %d: follower read: %v", i, err)
		}
		if string(it.Value) != want {
			t.Fatalf("round %d: follower read %s after %s was acknowledged by %s", i, it.Value, want, writer.id)
		}
		if it.ExpiresAt.IsZero() {
			t.Fatalf("round %d: item lost its expiry: %+v", i, it)
		}

		// A list page after a write must include it, too.
		page, _, err := f.store.List(ctxTimeout(t, 10*time.Second), ListRequest{Prefix: "page-", Limit: 100})
		if err != nil {
			t.Fatalf("round %d: follower list: %v", i, err)
		}
		if len(page.Items) != i {
			t.Fatalf("round %d: follower list has %d items, want %d", i, len(page.Items), i)
		}
		mustSet(t, writer, fmt.Sprintf("page-%03d", i), `true`, 0)
		time.Sleep(10 * time.Millisecond)
	}
	slices.Sort(took)
	median, p90 := took[len(took)/2], took[len(took)*9/10]
	forwarded, _ := sample(t, regs[f.id], "quorumkv_forwarded_requests_total", "kind", "read", "result", "ok")
	t.Logf("follower read after write: median %v, p90 %v, max %v; %v reads served at the leader", median, p90, took[len(took)-1], forwarded)
	if median > 25*time.Millisecond {
		t.Fatalf("follower reads after a write take %v (median of %d; p90 %v): they wait for the commit timeout", median, rounds, p90)
	}
}

// TestReadAtServesOnlyAtTheReadIndex: the read RPC answers from state at or
// past the requested index, judges expiry at the read point's clock, and
// refuses (so the follower waits for its own state) an index it has not
// applied in time.
func TestReadAtServesOnlyAtTheReadIndex(t *testing.T) {
	c := newTestCluster(t, 3, nil)
	leader := c.leader()
	res := mustSet(t, leader, "k", `"v"`, time.Minute)
	s := leader.store

	get := func(r readAtRequest) (readAtResult, rpcStatus, string) {
		t.Helper()
		payload, err := s.handleReadAtRPC(ctxTimeout(t, 5*time.Second), encodeReadAtRequest(r))
		if err != nil {
			t.Fatalf("handleReadAtRPC: %v", err)
		}
		out, st, msg, err := decodeReadAtResponse(payload)
		if err != nil {
			t.Fatalf("decode answer: %v", err)
		}
		return out, st, msg
	}
	now := time.Now().UnixMilli()
	out, st, _ := get(readAtRequest{readPoint: readPoint{index: res.Index, nowMs: now}, key: "k"})
	if st != statusOK || len(out.items) != 1 || string(out.items[0].Value) != `"v"` || out.items[0].Version != res.Version ||
		!out.items[0].ExpiresAt.Equal(res.ExpiresAt) {
		t.Fatalf("read at %d: %v %+v", res.Index, st, out)
	}
	// At a clock past the expiry the key is gone, as in a local read.
	out, st, _ = get(readAtRequest{readPoint: readPoint{index: res.Index, nowMs: now + 2*60_000}, key: "k"})
	if st != statusOK || len(out.items) != 0 {
		t.Fatalf("read past expiry: %v %+v", st, out)
	}
	// An index far beyond the log is refused after the bounded wait.
	_, st, msg := get(readAtRequest{readPoint: readPoint{index: res.Index + 1_000_000, nowMs: now}, key: "k"})
	if st == statusOK || !strings.Contains(msg, "not applied") {
		t.Fatalf("read at a future index: %v %q", st, msg)
	}
	out, st, _ = get(readAtRequest{readPoint: readPoint{index: res.Index, nowMs: now}, list: true, limit: 10})
	if st != statusOK || len(out.items) != 1 || out.items[0].Key != "k" || out.more {
		t.Fatalf("list at %d: %v %+v", res.Index, st, out)
	}
}

func TestReadAtWireFormat(t *testing.T) {
	at := readPoint{index: 42, nowMs: 1_700_000_000_000}
	for _, r := range []readAtRequest{
		{readPoint: at, key: "session-1"},
		{readPoint: at, list: true, key: "p/", after: "p/x", limit: 1000},
	} {
		got, err := decodeReadAtRequest(encodeReadAtRequest(r))
		if err != nil || got != r {
			t.Fatalf("round trip %+v: %+v %v", r, got, err)
		}
	}
	long := strings.Repeat("k", readAtMaxKeyBytes+1)
	for name, b := range map[string][]byte{
		"empty":          nil,
		"format":         append([]byte{9}, encodeReadAtRequest(readAtRequest{readPoint: at, key: "k"})[1:]...),
		"kind":           append([]byte{rpcFormat, 2}, encodeReadAtRequest(readAtRequest{readPoint: at, key: "k"})[2:]...),
		"no index":       encodeReadAtRequest(readAtRequest{readPoint: readPoint{nowMs: 1}, key: "k"}),
		"long key":       encodeReadAtRequest(readAtRequest{readPoint: at, key: long}),
		"long after":     encodeReadAtRequest(readAtRequest{readPoint: at, list: true, after: long, limit: 1}),
		"zero limit":     encodeReadAtRequest(readAtRequest{readPoint: at, list: true}),
		"big limit":      encodeReadAtRequest(readAtRequest{readPoint: at, list: true, limit: readAtMaxLimit + 1}),
		"get with page":  encodeReadAtRequest(readAtRequest{readPoint: at, key: "k", limit: 5}),
		"trailing bytes": append(encodeReadAtRequest(readAtRequest{readPoint: at, key: "k"}), 0),
		"truncated":      encodeReadAtRequest(readAtRequest{readPoint: at, key: "k"})[:5],
	} {
		if _, err := decodeReadAtRequest(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}

	exp := time.UnixMilli(1_700_000_360_000).UTC()
	res := readAtResult{more: true, items: []Item{{Key: "a", Value: []byte(`{"x":1}`), Version: 7, ExpiresAt: exp}, {Key: "b", Value: []byte(`null`), Version: 9}}}
	got, st, msg, err := decodeReadAtResponse(encodeReadAtResponse(res, statusOK, ""))
	if err != nil || st != statusOK || msg != "" || !got.more || len(got.items) != 2 ||
		got.items[0].Key != "a" || !bytes.Equal(got.items[0].Value, res.items[0].Value) || got.items[0].Version != 7 || !got.items[0].ExpiresAt.Equal(exp) ||
		got.items[1].Key != "b" || !got.items[1].ExpiresAt.IsZero() {
		t.Fatalf("answer round trip: %+v %v %q %v", got, st, msg, err)
	}
	if _, _, _, err := decodeReadAtResponse(append(encodeReadAtResponse(res, statusOK, ""), 1)); err == nil {
		t.Fatal("answer with trailing bytes decoded")
	}
	if _, st, msg, err := decodeReadAtResponse(encodeReadAtResponse(readAtResult{}, statusFailed, "no")); err != nil || st != statusFailed || msg != "no" {
		t.Fatalf("refusal round trip: %v %q %v", st, msg, err)
	}
}

func TestReadIndexGetWireFormat(t *testing.T) {
	keys := []string{"a", "b", "c"}
	applied, got, vouch, err := decodeReadIndexGetRequest(encodeReadIndexGetRequest(7, keys, termVouch{}))
	if err != nil || applied != 7 || !slices.Equal(got, keys) || vouch != (termVouch{}) {
		t.Fatalf("request round trip: %d %v %+v %v", applied, got, vouch, err)
	}
	v := termVouch{term: 12, id: "n2"}
	b := encodeReadIndexGetRequest(7, keys, v)
	if b[0] != rpcFormatV2 {
		t.Fatalf("a request with a vouch is format %d, want %d", b[0], rpcFormatV2)
	}
	applied, got, vouch, err = decodeReadIndexGetRequest(b)
	if err != nil || applied != 7 || !slices.Equal(got, keys) || vouch != v {
		t.Fatalf("request with vouch round trip: %d %v %+v %v", applied, got, vouch, err)
	}
	for name, b := range map[string][]byte{
		"empty":       nil,
		"no keys":     encodeReadIndexGetRequest(7, nil, termVouch{}),
		"long key":    encodeReadIndexGetRequest(7, []string{strings.Repeat("k", readAtMaxKeyBytes+1)}, termVouch{}),
		"trailing":    append(encodeReadIndexGetRequest(7, keys, termVouch{}), 0),
		"truncated":   encodeReadIndexGetRequest(7, keys, termVouch{})[:4],
		"format":      append([]byte{9}, encodeReadIndexGetRequest(7, keys, termVouch{})[1:]...),
		"no vouch":    append([]byte{rpcFormatV2}, encodeReadIndexGetRequest(7, keys, termVouch{})[1:]...),
		"long id":     encodeReadIndexGetRequest(7, keys, termVouch{term: 1, id: strings.Repeat("n", maxVouchIDBytes+1)}),
		"vouch trail": append(encodeReadIndexGetRequest(7, keys, v), 0),
	} {
		if _, _, _, err := decodeReadIndexGetRequest(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}

	at := readPoint{index: 42, nowMs: 1_700_000_000_000}
	exp := time.UnixMilli(1_700_000_360_000).UTC()
	// a found, b missing, c left out.
	items := []*Item{{Key: "a", Value: []byte(`{"x":1}`), Version: 40, ExpiresAt: exp}, {}, nil}
	gotAt, m, st, msg, err := decodeReadIndexGetResponse(encodeReadIndexGetResponse(at, items, statusOK, ""), keys)
	if err != nil || st != statusOK || msg != "" || gotAt != at || len(m) != 2 {
		t.Fatalf("answer round trip: %+v %v %v %q %v", gotAt, m, st, msg, err)
	}
	if a := m["a"]; a == nil || len(a.items) != 1 || string(a.items[0].Value) != `{"x":1}` || a.items[0].Version != 40 || !a.items[0].ExpiresAt.Equal(exp) {
		t.Fatalf("found item: %+v", m["a"])
	}
	if b := m["b"]; b == nil || len(b.items) != 0 {
		t.Fatalf("missing item: %+v", m["b"])
	}
	if _, ok := m["c"]; ok {
		t.Fatal("a key left out came back")
	}
	if _, m, _, _, err := decodeReadIndexGetResponse(encodeReadIndexGetResponse(at, nil, statusOK, ""), keys); err != nil || m != nil {
		t.Fatalf("answer without items: %v %v", m, err)
	}
	if _, _, st, msg, err := decodeReadIndexGetResponse(encodeReadIndexGetResponse(readPoint{}, nil, statusNotCommitted, "not leader"), keys); err != nil || st != statusNotCommitted || msg != "not leader" {
		t.Fatalf("refusal: %v %q %v", st, msg, err)
	}
	if _, _, _, _, err := decodeReadIndexGetResponse(append(encodeReadIndexGetResponse(at, items, statusOK, ""), 0), keys); err == nil {
		t.Fatal("answer with trailing bytes decoded")
	}
	if _, _, _, _, err := decodeReadIndexGetResponse(encodeReadIndexGetResponse(at, items, statusOK, ""), keys[:2]); err == nil {
		t.Fatal("answer with more items than keys decoded")
	}
}

// FuzzDecodeReadAt: the forwarded-read decoders never panic on hostile input,
// and a request they accept survives an encode/decode round trip unchanged.
func FuzzDecodeReadAt(f *testing.F) {
	at := readPoint{index: 9, nowMs: 1_700_000_000_000}
	f.Add(encodeReadAtRequest(readAtRequest{readPoint: at, key: "k"}))
	f.Add(encodeReadAtRequest(readAtRequest{readPoint: at, list: true, key: "p/", after: "p/a", limit: 10}))
	f.Add(encodeReadIndexGetRequest(3, []string{"a", "b"}, termVouch{}))
	f.Add(encodeReadIndexGetRequest(3, []string{"a", "b"}, termVouch{term: 4, id: "n1"}))
	f.Add(encodeReadIndexRequest(termVouch{term: 4, id: "n1"}))
	f.Add(encodeReadAtResponse(readAtResult{items: []Item{{Key: "a", Value: []byte("1"), Version: 2}}}, statusOK, ""))
	f.Add(encodeReadIndexGetResponse(at, []*Item{{Key: "a", Value: []byte("1")}, {}, nil}, statusOK, ""))
	f.Add([]byte{1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeReadAtRequest(b); err == nil {
			again, err := decodeReadAtRequest(encodeReadAtRequest(r))
			if err != nil || again != r {
				t.Fatalf("read request round trip: %+v -> %+v, %v", r, again, err)
			}
		}
		if applied, keys, v, err := decodeReadIndexGetRequest(b); err == nil {
			a2, k2, v2, err := decodeReadIndexGetRequest(encodeReadIndexGetRequest(applied, keys, v))
			if err != nil || a2 != applied || !slices.Equal(k2, keys) || v2 != v {
				t.Fatalf("read index request round trip: %d %q %+v -> %d %q %+v, %v", applied, keys, v, a2, k2, v2, err)
			}
		}
		if v, err := decodeReadIndexRequest(b); err == nil && len(b) > 0 {
			if v2, err := decodeReadIndexRequest(encodeReadIndexRequest(v)); err != nil || v2 != v {
				t.Fatalf("plain read index request round trip: %+v -> %+v, %v", v, v2, err)
			}
		}
		decodeReadAtResponse(b)
		decodeReadIndexGetResponse(b, []string{"a", "b", "c"})
	})
}

// TestFollowerReadFallsBackWhenTheLeaderRefusesTheKeys: when the leader
// refuses a read-index call with keys (here: the connection is not
// authenticated as a member; likewise a leader that does not know the method),
// the follower confirms the index with the plain call, waits for its own state
// machine and still returns the write.
func TestFollowerReadFallsBackWhenTheLeaderRefusesTheKeys(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.AllowUnauthenticatedPeers = false })
	leader := c.leader()
	f := c.followers(leader)[0]
	for i := range 3 {
		want := fmt.Sprintf(`%d`, i)
		mustSet(t, leader, "k", want, 0)
		it, err := f.store.Get(ctxTimeout(t, 10*time.Second), "k", Linearizable)
		if err != nil || string(it.Value) != want {
			t.Fatalf("follower read after writing %s: %s, %v", want, it.Value, err)
		}
	}
}

// TestForwardedReadsNeedAnAuthenticatedPeer: the read RPCs that return data
// refuse a connection the peer port did not authenticate as a member, and
// return no items.
func TestForwardedReadsNeedAnAuthenticatedPeer(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.AllowUnauthenticatedPeers = false })
	leader := c.leader()
	res := mustSet(t, leader, "secret", `"v"`, 0)
	s := leader.store
	ctx := ctxTimeout(t, 5*time.Second)

	payload, err := s.handleReadIndexGetRPC(ctx, encodeReadIndexGetRequest(0, []string{"secret"}, termVouch{}))
	if err != nil {
		t.Fatal(err)
	}
	_, items, st, _, err := decodeReadIndexGetResponse(payload, []string{"secret"})
	if err != nil || st != statusUnauthenticated || items != nil {
		t.Fatalf("read index with keys from a stranger: %v %v %v", st, items, err)
	}
	payload, err = s.handleReadAtRPC(ctx, encodeReadAtRequest(readAtRequest{readPoint: readPoint{index: res.Index, nowMs: time.Now().UnixMilli()}, key: "secret"}))
	if err != nil {
		t.Fatal(err)
	}
	out, st, _, err := decodeReadAtResponse(payload)
	if err != nil || st != statusUnauthenticated || len(out.items) != 0 {
		t.Fatalf("read at from a stranger: %v %+v %v", st, out, err)
	}
}
