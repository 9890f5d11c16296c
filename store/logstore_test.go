package store

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/transport"
)

// raftLogEnv chooses the raft log store of every test cluster in this
// package (fastConfig): unset runs DefaultRaftLog. The default suite runs
// the whole package with one store and TestOtherRaftLogStore runs a focused
// subset with the other; run everything with the other store with e.g.
// QKV_TEST_RAFT_LOG=wal go test ./store.
const raftLogEnv = "QKV_TEST_RAFT_LOG"

func testRaftLog() string { return os.Getenv(raftLogEnv) }

// raftLogsUnderTest returns the log store this run's test clusters are
// created with and the other one.
func raftLogsUnderTest() (created, other string) {
	created = testRaftLog()
	if created == "" {
		created = DefaultRaftLog
	}
	if created == RaftLogWAL {
		return created, RaftLogBolt
	}
	return created, RaftLogWAL
}

// otherRaftLogTests are the store tests TestOtherRaftLogStore reruns with the
// log store the package run does not use: the paths that touch the log on
// disk (restart from disk, a crashed leader, log truncation after snapshots
// and catch-up through one, an online restore, which rewrites every node's
// log behind a snapshot, and a replaced node).
var otherRaftLogTests = []string{
	"TestWriteOnFollowerIsForwardedAndReadEverywhere",
	"TestLeaderKillKeepsAcknowledgedWrites",
	"TestRestartWholeClusterFromDisk",
	"TestLaggingFollowerCatchesUpFromSnapshot",
	"TestOnlineRestoreReplacesDataOnEveryNode",
	"TestReplaceKilledNodeWithEmptyDisk",
	"TestRaftLogSelectionAndMismatch",
	"TestMoveNodeToOtherRaftLog",
}

// TestOtherRaftLogStore reruns otherRaftLogTests with the other raft log
// store, in a child process of this test binary, so both stores are covered
// without running the whole package twice.
func TestOtherRaftLogStore(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	if testRaftLog() != "" {
		t.Skipf("%s=%s: this run already chose its store", raftLogEnv, testRaftLog())
	}
	_, other := raftLogsUnderTest()
	cmd := exec.Command(os.Args[0], "-test.run", "^("+strings.Join(otherRaftLogTests, "|")+")$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), raftLogEnv+"="+other)
	out, err := cmd.CombinedOutput()
	for _, name := range otherRaftLogTests {
		if !strings.Contains(string(out), "--- PASS: "+name+" ") {
			t.Errorf("%s with %s=%s did not pass", name, raftLogEnv, other)
		}
	}
	if err != nil || t.Failed() {
		t.Fatalf("store tests with %s=%s: %v\n%s", raftLogEnv, other, err, out)
	}
}

func TestDetectAndChooseRaftLog(t *testing.T) {
	mk := func(t *testing.T, files ...string) string {
		dir := t.TempDir()
		for _, f := range files {
			p := filepath.Join(dir, "raft", f)
			if strings.HasSuffix(f, "/") {
				if err := os.MkdirAll(p, 0o700); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	for _, tc := range []struct {
		name      string
		files     []string
		requested string
		want      string
		errHas    []string // empty: no error
	}{
		{name: "new dir, default", want: DefaultRaftLog},
		{name: "new dir, wal", requested: RaftLogWAL, want: RaftLogWAL},
		{name: "new dir, bolt", requested: RaftLogBolt, want: RaftLogBolt},
		{name: "seeded from a backup", files: []string{"snapshots/"}, requested: RaftLogWAL, want: RaftLogWAL},
		{name: "bolt dir, unset", files: []string{"raft.db"}, want: RaftLogBolt},
		{name: "bolt dir, bolt", files: []string{"raft.db"}, requested: RaftLogBolt, want: RaftLogBolt},
		{name: "wal dir, unset", files: []string{"wal/"}, want: RaftLogWAL},
		{name: "wal dir, wal", files: []string{"wal/"}, requested: RaftLogWAL, want: RaftLogWAL},
		{name: "bolt dir, wal requested", files: []string{"raft.db"}, requested: RaftLogWAL,
			errHas: []string{"--raft-log=wal", "holds a bolt raft log", "--raft-log=bolt", "wipe its data dir", "--join"}},
		{name: "wal dir, bolt requested", files: []string{"wal/"}, requested: RaftLogBolt,
			errHas: []string{"--raft-log=bolt", "holds a wal raft log", "--raft-log=wal", "wipe its data dir"}},
		{name: "both", files: []string{"raft.db", "wal/"}, errHas: []string{"both a bolt raft log", "move the other aside"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := mk(t, tc.files...)
			got, err := chooseRaftLog(dir, tc.requested)
			if len(tc.errHas) == 0 {
				if err != nil || got != tc.want {
					t.Fatalf("chooseRaftLog = %q, %v; want %q", got, err, tc.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("chooseRaftLog = %q, want an error", got)
			}
			for _, s := range tc.errHas {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q lacks %q", err, s)
				}
			}
			if tc.requested != "" && !errors.Is(err, ErrRaftLogMismatch) {
				t.Errorf("error %v is not ErrRaftLogMismatch", err)
			}
		})
	}
	if err := (Config{NodeID: "n1", DataDir: "d", RaftLog: "rocks"}).Validate(); err == nil || !strings.Contains(err.Error(), `"rocks"`) {
		t.Fatalf("Validate(RaftLog rocks) = %v", err)
	}
}

// A node reopens with the store its data dir was created with, keeps its
// data there, and refuses to start on the other one without touching the dir.
func TestRaftLogSelectionAndMismatch(t *testing.T) {
	created, other := raftLogsUnderTest()
	c := newTestCluster(t, 1, nil)
	nd := c.leader()
	ctx := ctxTimeout(t, 20*time.Second)
	for i := range 20 {
		mustSet(t, nd, fmt.Sprintf("k%d", i), `"v"`, 0)
	}
	st, err := nd.store.Status(ctx)
	if err != nil || st.RaftLog != created {
		t.Fatalf("Status().RaftLog = %q, %v; want %q", st.RaftLog, err, created)
	}
	if got, err := DetectRaftLog(nd.dataDir); got != created || err != nil {
		t.Fatalf("DetectRaftLog = %q, %v; want %q", got, err, created)
	}
	nd.stop()
	before := listTree(t, nd.dataDir)

	cfg := fastConfig()
	cfg.NodeID, cfg.DataDir, cfg.RaftLog = nd.id, nd.dataDir, other
	cfg.Logger = testLogger(t, nd.id)
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(t, nd.id)})
	if err != nil {
		t.Fatal(err)
	}
	if st, oerr := Open(cfg, mux); oerr == nil {
		st.Close()
	} else {
		err = oerr
	}
	mux.Close()
	if !errors.Is(err, ErrRaftLogMismatch) || !strings.Contains(err.Error(), "--raft-log="+other) || !strings.Contains(err.Error(), "holds a "+created+" raft log") {
		t.Fatalf("open with %s on a %s data dir: %v; want ErrRaftLogMismatch naming both", other, created, err)
	}
	if after := listTree(t, nd.dataDir); after != before {
		t.Fatalf("a refused open changed the data dir:\nbefore %s\nafter  %s", before, after)
	}

	// Unset: the data dir's own store, with its data.
	c.restart(nd)
	c.leader()
	waitFor(t, 10*time.Second, "keys back after restart", func() bool { return nd.store.fsm.Len() == 20 })
	if st, err := nd.store.Status(ctx); err != nil || st.RaftLog != created {
		t.Fatalf("after restart Status().RaftLog = %q, %v; want %q", st.RaftLog, err, created)
	}
}

// listTree names every file under dir with its size.
func listTree(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(p, dir), fi.Size())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// A follower cut off while the leader snapshots and truncates its log
// catches up through an installed snapshot, keeps its own log consistent
// with it (raft-wal is a monotonic store: raft clears it behind the
// snapshot), and then follows new writes.
func TestLaggingFollowerCatchesUpFromSnapshot(t *testing.T) {
	c := newTestCluster(t, 3, func(cfg *Config) { cfg.SnapshotThreshold = 32; cfg.TrailingLogs = 8 })
	l := c.leader()
	for i := range 20 {
		mustSet(t, l, fmt.Sprintf("early-%d", i), `1`, 0)
	}
	f := c.followers(l)[0]
	c.isolate(f)
	l = c.leader()
	for i := range 150 {
		mustSet(t, l, fmt.Sprintf("missed-%d", i), fmt.Sprintf("%d", i), 0)
	}
	if err := l.store.raft.Snapshot().Error(); err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	first, err := l.store.logStore.log.FirstIndex()
	if err != nil || first <= f.store.AppliedIndex() {
		t.Fatalf("leader log starts at %d (%v); the follower at %d would not need a snapshot", first, err, f.store.AppliedIndex())
	}
	c.heal()
	waitFor(t, 15*time.Second, "cut-off follower to catch up", func() bool {
		return f.store.AppliedIndex() >= l.store.AppliedIndex()
	})
	for i := range 20 {
		mustSet(t, c.leader(), fmt.Sprintf("after-%d", i), `2`, 0)
	}
	l = c.leader()
	waitFor(t, 10*time.Second, "follower to apply writes after the snapshot", func() bool {
		return f.store.AppliedIndex() >= l.store.AppliedIndex()
	})
	if got, want := f.store.StateHash(), l.store.StateHash(); got != want {
		t.Fatalf("follower state hash %s != leader %s", got, want)
	}
	// Its log reopens consistent with the snapshot it installed.
	f.stop()
	c.restart(f)
	waitFor(t, 10*time.Second, "restarted follower to catch up", func() bool {
		return f.store != nil && f.store.AppliedIndex() >= l.store.AppliedIndex()
	})
	if it := mustGet(t, f, "missed-149"); string(it.Value) != "149" {
		t.Fatalf("missed-149 = %q", it.Value)
	}
}

// Moving a node to the other log store is replacing it: remove it, wipe its
// data dir, start it on the other store in join mode and add it again. The
// cluster then runs both stores side by side.
func TestMoveNodeToOtherRaftLog(t *testing.T) {
	created, other := raftLogsUnderTest()
	c := newTestCluster(t, 3, memberConfig)
	leader := c.leader()
	acked := map[string]string{}
	for i := range 40 {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf(`"%d"`, i)
		mustSet(t, c.nodes[i%3], k, v, 0)
		acked[k] = v
	}
	moved := c.followers(leader)[0]
	survivor := c.followers(leader)[1]
	moved.stop()
	c.mustRemove(survivor, moved.id)

	// Same id, empty data dir, the other store, join mode.
	moved.dataDir = t.TempDir()
	mux, err := transport.Listen(transport.Config{BindAddr: "127.0.0.1:0", Logger: testLogger(t, moved.id)})
	if err != nil {
		t.Fatal(err)
	}
	moved.mux, moved.addr = mux, mux.Addr()
	moved.net = &cuttableLayer{blocked: map[string]bool{}, conns: map[net.Conn]string{}}
	c.openStore(moved, nil, func(cfg *Config) { memberConfig(cfg); cfg.Join = true; cfg.RaftLog = other })
	c.mustJoin(survivor, JoinRequest{ID: moved.id, PeerAddr: moved.addr, HTTPAddr: "http://" + moved.id + ".test:8080"})
	c.waitVoters(leader, leader.id, survivor.id, moved.id)
	for i := 40; i < 50; i++ {
		k, v := fmt.Sprintf("k%02d", i), fmt.Sprintf(`"%d"`, i)
		mustSet(t, moved, k, v, 0)
		acked[k] = v
	}
	checkAcked(t, acked, moved, leader, survivor)
	for nd, want := range map[*testNode]string{moved: other, leader: created, survivor: created} {
		if st, err := nd.store.Status(ctxTimeout(t, 5*time.Second)); err != nil || st.RaftLog != want {
			t.Fatalf("%s: Status().RaftLog = %q, %v; want %q", nd.id, st.RaftLog, err, want)
		}
	}
	// The mixed cluster keeps a quorum without the old leader.
	leader.stop()
	mustSet(t, moved, "after-leader-stop", `1`, 0)
	mustGet(t, survivor, "after-leader-stop")
}

// Raft truncates a follower's log suffix when a new leader overwrites
// entries a deposed leader never committed. Each store must reopen after
// that with the overwriting entries readable. raft-wal before v0.4.1 failed
// here: it marked the truncated tail segment sealed without writing the
// segment's index, so every read in it failed after a restart ("sealed
// segment has no index block") and raft would panic at startup.
func TestLogStoreReopensAfterSuffixTruncation(t *testing.T) {
	for _, name := range []string{RaftLogBolt, RaftLogWAL} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			hlog := newRaftLogger(testLogger(t, "n1"))
			ls, err := openLogStore(name, dir, hlog)
			if err != nil {
				t.Fatal(err)
			}
			var logs []*raft.Log
			for i := uint64(1); i <= 10; i++ {
				logs = append(logs, &raft.Log{Index: i, Term: 1, Data: []byte("old")})
			}
			if err := ls.log.StoreLogs(logs); err != nil {
				t.Fatal(err)
			}
			if err := ls.log.DeleteRange(8, 10); err != nil {
				t.Fatal(err)
			}
			if err := ls.log.StoreLog(&raft.Log{Index: 8, Term: 2, Data: []byte("new")}); err != nil {
				t.Fatal(err)
			}
			if err := ls.closer.Close(); err != nil {
				t.Fatal(err)
			}
			ls, err = openLogStore(name, dir, hlog)
			if err != nil {
				t.Fatalf("reopen after suffix truncation: %v", err)
			}
			defer ls.closer.Close()
			if err := verifyLog(ls.log, name); err != nil {
				t.Fatalf("reopened log: %v", err)
			}
			var l raft.Log
			if err := ls.log.GetLog(8, &l); err != nil || l.Term != 2 || string(l.Data) != "new" {
				t.Fatalf("entry 8 = term %d %q, %v; want the overwriting entry", l.Term, l.Data, err)
			}
			if last, _ := ls.log.LastIndex(); last != 8 {
				t.Fatalf("last index %d, want 8", last)
			}
			for i := uint64(1); i <= 7; i++ {
				if err := ls.log.GetLog(i, &l); err != nil || l.Term != 1 || string(l.Data) != "old" {
					t.Fatalf("entry %d = term %d %q, %v; want the kept entry", i, l.Term, l.Data, err)
				}
			}
			// The reopened log takes appends and survives a second
			// truncation and reopen.
			if err := ls.log.StoreLogs([]*raft.Log{{Index: 9, Term: 2}, {Index: 10, Term: 2}}); err != nil {
				t.Fatal(err)
			}
			if err := ls.log.DeleteRange(10, 10); err != nil {
				t.Fatal(err)
			}
			if err := ls.log.StoreLog(&raft.Log{Index: 10, Term: 3, Data: []byte("third")}); err != nil {
				t.Fatal(err)
			}
			if err := ls.closer.Close(); err != nil {
				t.Fatal(err)
			}
			ls, err = openLogStore(name, dir, hlog)
			if err != nil {
				t.Fatalf("second reopen: %v", err)
			}
			defer ls.closer.Close()
			if err := ls.log.GetLog(10, &l); err != nil || l.Term != 3 || string(l.Data) != "third" {
				t.Fatalf("entry 10 = term %d %q, %v; want the second overwrite", l.Term, l.Data, err)
			}
			if err := verifyLog(ls.log, name); err != nil {
				t.Fatalf("log after the second reopen: %v", err)
			}
		})
	}
}
