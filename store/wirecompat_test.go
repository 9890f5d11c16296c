package store

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// oldFrames are peer RPC messages as the build before the RPC registry (main
// at b35429d) encoded them, captured from that build. A node of this build
// must read what such a node sends and send what it reads, byte for byte:
// the method numbers and layouts are kept, not versioned (DESIGN.md).
var oldFrames = map[string]string{
	"writeReqV1":         "010106757365723a31077b2261223a317dc0a907",
	"writeReqV2":         "02060363747200d00f000000050873636f7065006b31000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
	"writeReqV2Cond":     "0201016b01320001010700000000000000000000000000000000000000000000000000000000000000000000",
	"writeRespV1":        "0100012a80a0abfef96200",
	"writeRespV2":        "0200002b0000002b05002c",
	"writeRespNotLeader": "0201000000236e6f7420636f6d6d69747465643a206e32206973206e6f7420746865206c65616465720000000000",
	"writeRespInvalid":   "02140000002c76616c756520697320323030303030302062797465733b20746865206c696d697420697320313034383537360000000000",
	"writeRespQuota":     "02060000002573746f726167652071756f74612065786365656465643a206b657973203130206f662031300000000000",
	"readIndexResp":      "010063f6a1abfef96200",
	"readIndexRespClock": "0105000021636c6f636b206f6666736574206265796f6e642074686520626f756e643a206e31",
	"adminNotFound":      "010401126e6f6465206e6f7420666f756e643a206e39",
	"adminClock":         "0105053d6c656164657273686970207472616e73666572206661696c65643a20636c6f636b206f6666736574206265796f6e642074686520626f756e643a206e33",
	"adminOK":            "0100000002",
	"adminNotLeader":     "010100236e6f7420636f6d6d69747465643a206e32206973206e6f7420746865206c6561646572",
	"joinReq":            "0100026e340d31302e302e302e343a393038301568747470733a2f2f31302e302e302e343a38303830",
	"registerReq":        "0101026e320d31302e302e302e323a3930383014687474703a2f2f31302e302e302e323a38303830",
	"idReq":              "01026e33",
	"nodeInfo":           "01026e330a687474703a2f2f783a31d209",
	"nodeStats":          "01026e3109dc0b01",
	"restoreResp":        "00000100072a00",
	"restoreRespBusy":    "00000019726573746f726520316620697320696e2070726f6772657373000001",
	"restoreRespUnauth":  "20217065657220636f6e6e656374696f6e206e6f742061757468656e746963617465640000000000",
}

func oldFrame(t *testing.T, name string) []byte {
	t.Helper()
	b, err := hex.DecodeString(oldFrames[name])
	if err != nil || len(b) == 0 {
		t.Fatalf("frame %s: %v", name, err)
	}
	return b
}

// sameBytes fails unless this build encodes exactly the old frame.
func sameBytes(t *testing.T, name string, got []byte) {
	t.Helper()
	if want := oldFrames[name]; hex.EncodeToString(got) != want {
		t.Errorf("%s: this build encodes\n%x\nthe previous build\n%s", name, got, want)
	}
}

// samePrefix checks that got starts with the previous build's frame: the
// fields it knew keep their layout and anything after them is new.
func samePrefix(t *testing.T, name string, got []byte) {
	t.Helper()
	if want := oldFrames[name]; !strings.HasPrefix(hex.EncodeToString(got), want) {
		t.Errorf("%s: this build encodes\n%x\nwhich does not start with the previous build's\n%s", name, got, want)
	}
}

func TestOldRequestFramesDecode(t *testing.T) {
	var fp [32]byte
	for i := range fp {
		fp[i] = byte(i)
	}
	for name, want := range map[string]writeRequest{
		"writeReqV1":     {op: fsm.OpSet, key: "user:1", value: []byte(`{"a":1}`), ttlMs: 60000},
		"writeReqV2":     {op: fsm.OpIncr, key: "ctr", by: -3, ttlMs: 1000, idemKey: "scope\x00k1", fingerprint: fp},
		"writeReqV2Cond": {op: fsm.OpSet, key: "k", value: []byte(`2`), cond: fsm.CondIfMatch, condVersion: 7, keepTTL: true},
	} {
		got, err := decodeWriteRequest(oldFrame(t, name))
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: decoded %+v %v, want %+v", name, got, err, want)
		}
		sameBytes(t, name, encodeWriteRequest(want))
	}
	jr := JoinRequest{ID: "n4", PeerAddr: "10.0.0.4:9080", HTTPAddr: "https://10.0.0.4:8080"}
	if got, reg, err := decodeJoinRequest(oldFrame(t, "joinReq")); err != nil || got != jr || reg {
		t.Errorf("join: %+v %v %v", got, reg, err)
	}
	sameBytes(t, "joinReq", encodeJoinRequest(jr, false))
	rr := JoinRequest{ID: "n2", PeerAddr: "10.0.0.2:9080", HTTPAddr: "http://10.0.0.2:8080"}
	if got, reg, err := decodeJoinRequest(oldFrame(t, "registerReq")); err != nil || got != rr || !reg {
		t.Errorf("register: %+v %v %v", got, reg, err)
	}
	sameBytes(t, "registerReq", encodeJoinRequest(rr, true))
	if id, err := decodeIDRequest(oldFrame(t, "idReq")); err != nil || id != "n3" {
		t.Errorf("id request: %q %v", id, err)
	}
	sameBytes(t, "idReq", encodeIDRequest("n3"))
}

func TestOldAnswerFramesDecode(t *testing.T) {
	// Write answers: results, and errors with the meaning they had.
	res, w, err := decodeWriteResponse(oldFrame(t, "writeRespV1"))
	if err != nil || w.err() != nil || !res.created || res.revision != 42 || res.index != 42 || res.expiresAt != 1700000000000 {
		t.Errorf("write answer v1: %+v %+v %v", res, w, err)
	}
	sameBytes(t, "writeRespV1", encodeWriteResponse(writeResult{created: true, revision: 42, expiresAt: 1700000000000}, wireError{}, rpcFormat))
	want := writeResult{revision: 43, status: fsm.StatusOK, current: 43, value: -3, index: 44}
	if res, w, err = decodeWriteResponse(oldFrame(t, "writeRespV2")); err != nil || w.err() != nil || res != want {
		t.Errorf("write answer v2: %+v %+v %v", res, w, err)
	}
	sameBytes(t, "writeRespV2", encodeWriteResponse(want, wireError{}, rpcFormatV2))
	for name, c := range map[string]struct {
		err     error
		is      error
		message string
	}{
		"writeRespNotLeader": {fmt.Errorf("%w: n2 is not the leader", errNotCommitted), errNotCommitted, "n2 is not the leader"},
		"writeRespInvalid":   {&InvalidError{Err: ErrValueTooLarge, Reason: "value is 2000000 bytes; the limit is 1048576"}, ErrValueTooLarge, "the limit is 1048576"},
		"writeRespQuota":     {fmt.Errorf("%w: keys 10 of 10", ErrQuotaExceeded), ErrQuotaExceeded, "keys 10 of 10"},
	} {
		_, w, err := decodeWriteResponse(oldFrame(t, name))
		if got := w.err(); err != nil || !errors.Is(got, c.is) || !strings.Contains(got.Error(), c.message) {
			t.Errorf("%s: decoded as %v (%v), want %v saying %q", name, got, err, c.is, c.message)
		}
		sameBytes(t, name, encodeWriteResponse(writeResult{}, toWire(c.err), rpcFormatV2))
	}

	idx, now, _, w, err := decodeReadIndexAnswer(oldFrame(t, "readIndexResp"))
	if err != nil || idx != 99 || now != 1700000000123 || w.err() != nil {
		t.Errorf("read index answer: %d %d %+v %v", idx, now, w, err)
	}
	sameBytes(t, "readIndexResp", encodeReadIndexResponse(99, 1700000000123, wireError{}))
	if _, _, _, w, err = decodeReadIndexAnswer(oldFrame(t, "readIndexRespClock")); err != nil || w.status != statusClockOffset {
		t.Errorf("read index refused for the clock: %+v %v", w, err)
	}

	// Membership answers: the sentinel's number wins over the status.
	for name, c := range map[string]struct{ err, is error }{
		"adminNotFound":  {fmt.Errorf("%w: n9", ErrNodeNotFound), ErrNodeNotFound},
		"adminClock":     {fmt.Errorf("%w: %w: n3", ErrTransferFailed, ErrClockOffset), ErrTransferFailed},
		"adminNotLeader": {fmt.Errorf("%w: n2 is not the leader", errNotCommitted), errNotCommitted},
	} {
		if _, err := decodeAdminResponse(oldFrame(t, name)); !errors.Is(err, c.is) {
			t.Errorf("%s: decoded as %v, want %v", name, err, c.is)
		}
		sameBytes(t, name, encodeAdminResponse(c.err, nil))
	}
	if body, err := decodeAdminResponse(oldFrame(t, "adminOK")); err != nil || string(body) != "\x02" {
		t.Errorf("membership answer ok: %x %v", body, err)
	}
	sameBytes(t, "adminOK", encodeAdminResponse(nil, []byte{2}))

	info, err := decodeNodeInfo(oldFrame(t, "nodeInfo"))
	if err != nil || info != (nodeInfo{id: "n3", httpAddr: "http://x:1", applied: 1234}) {
		t.Errorf("node info: %+v %v", info, err)
	}
	// A node now appends its build after the fields the previous build
	// sends; those fields keep their bytes, so an older node reads them.
	samePrefix(t, "nodeInfo", encodeNodeInfo("n3", "http://x:1", 1234, Build{Version: "0.2.0"}))
	stats := map[string]nodeStat{"n1": {applied: 9, lastContact: 1500 * time.Millisecond, healthy: true}}
	if got, err := decodeNodeStats(oldFrame(t, "nodeStats")); err != nil || len(got) != 1 || got["n1"] != stats["n1"] {
		t.Errorf("node stats: %+v %v", got, err)
	}
	samePrefix(t, "nodeStats", encodeNodeStats(stats))

	for name, want := range map[string]fsm.RestoreResult{
		"restoreResp":     {OK: true, Entries: 7, Revision: 42},
		"restoreRespBusy": {Busy: true, Reason: "restore 1f is in progress"},
	} {
		if got, w, err := decodeRestoreResponse(oldFrame(t, name)); err != nil || w.err() != nil || got != want {
			t.Errorf("%s: %+v %+v %v", name, got, w, err)
		}
		sameBytes(t, name, encodeRestoreResponse(want, wireError{}))
	}
	if _, w, err := decodeRestoreResponse(oldFrame(t, "restoreRespUnauth")); err != nil || !errors.Is(w.err(), ErrPeerUnauthenticated) {
		t.Errorf("restore refused: %+v %v", w, err)
	}
	sameBytes(t, "restoreRespUnauth", encodeRestoreResponse(fsm.RestoreResult{}, toWire(ErrPeerUnauthenticated)))
}
