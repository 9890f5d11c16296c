package store

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

func TestMembershipWireFormats(t *testing.T) {
	req := JoinRequest{ID: "n4", PeerAddr: "10.0.0.4:9080", HTTPAddr: "https://10.0.0.4:8080"}
	for _, register := range []bool{false, true} {
		got, reg, err := decodeJoinRequest(encodeJoinRequest(req, register))
		if err != nil || got != req || reg != register {
			t.Fatalf("join round trip: %+v %v %v", got, reg, err)
		}
	}
	if _, _, err := decodeJoinRequest(append(encodeJoinRequest(req, false), 0)); err == nil {
		t.Fatal("join request with trailing bytes accepted")
	}
	if _, _, err := decodeJoinRequest([]byte{1, 7, 0, 0, 0}); err == nil {
		t.Fatal("join request with unknown mode accepted")
	}
	if id, err := decodeIDRequest(encodeIDRequest("n2")); err != nil || id != "n2" {
		t.Fatalf("id round trip: %q %v", id, err)
	}

	// Every membership sentinel survives the trip from leader to follower.
	for _, row := range wireErrors {
		if row.kind == 0 {
			continue
		}
		_, err := decodeAdminResponse(encodeAdminResponse(row.err, nil))
		if !errors.Is(err, row.err) {
			t.Fatalf("%v crossed the wire as %v", row.err, err)
		}
	}
	if _, err := decodeAdminResponse(encodeAdminResponse(errNotCommitted, nil)); !errors.Is(err, errNotCommitted) {
		t.Fatalf("not committed crossed as %v", err)
	}
	if _, err := decodeAdminResponse(encodeAdminResponse(ErrOutcomeUnknown, nil)); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("outcome unknown crossed as %v", err)
	}
	if body, err := decodeAdminResponse(encodeAdminResponse(nil, []byte{2})); err != nil || len(body) != 1 || body[0] != 2 {
		t.Fatalf("ok answer: %v %v", body, err)
	}
	if _, err := decodeAdminResponse([]byte{1}); !errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("truncated answer: %v", err)
	}

	build := Build{Version: "0.2.0", Formats: fsm.SupportedFormats()}
	stats := map[string]nodeStat{"n1": {applied: 9, healthy: true, build: build}, "n2": {applied: 7, lastContact: 1500 * time.Millisecond}}
	got, err := decodeNodeStats(encodeNodeStats(stats))
	if err != nil || len(got) != 2 || got["n2"] != stats["n2"] || got["n1"] != stats["n1"] {
		t.Fatalf("stats round trip: %v %v", got, err)
	}
	info, err := decodeNodeInfo(encodeNodeInfo("n3", "http://x", 42, build))
	if err != nil || info != (nodeInfo{id: "n3", httpAddr: "http://x", applied: 42, build: build}) {
		t.Fatalf("node info round trip: %+v %v", info, err)
	}
}

// TestBuildTravelsBackwardsCompatibly checks both directions of a rolling
// upgrade: the build section follows the exact bytes a node without it
// sends (whose decoders stop before it), and an answer without it decodes
// with the build unknown.
func TestBuildTravelsBackwardsCompatibly(t *testing.T) {
	build := Build{Version: "0.2.0", Formats: fsm.SupportedFormats()}
	old := []byte{rpcFormat, 2, 'n', '3', 0, 42} // id "n3", no HTTP address, applied 42
	cur := encodeNodeInfo("n3", "", 42, build)
	if !bytes.HasPrefix(cur, old) {
		t.Fatalf("node info %x does not start with the older layout %x", cur, old)
	}
	if info, err := decodeNodeInfo(old); err != nil || info != (nodeInfo{id: "n3", applied: 42}) {
		t.Fatalf("older node info: %+v %v", info, err)
	}
	oldStats := []byte{1, 2, 'n', '1', 9, 0, 1} // one node: n1, applied 9, contact 0, healthy
	curStats := encodeNodeStats(map[string]nodeStat{"n1": {applied: 9, healthy: true, build: build}})
	if !bytes.HasPrefix(curStats, oldStats) {
		t.Fatalf("node stats %x does not start with the older layout %x", curStats, oldStats)
	}
	if got, err := decodeNodeStats(oldStats); err != nil || got["n1"] != (nodeStat{applied: 9, healthy: true}) {
		t.Fatalf("older node stats: %+v %v", got, err)
	}
	// A newer build may add fields to the section: they are skipped.
	longer := encodeNodeInfo("n3", "", 42, build)
	longer = longer[:len(old)]
	sec := appendBuild(nil, build)[1:]
	sec = append(sec, 7, 7, 7)
	longer = appendString(longer, string(sec))
	if info, err := decodeNodeInfo(longer); err != nil || info.build != build {
		t.Fatalf("extended build section: %+v %v", info, err)
	}
}
