package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/test/faultfs"
)

// Disk faults: every node of a disk scenario keeps its data dir on a
// faultfs mount (test/faultfs) over a backing directory, so the nemesis can
// cut power to a node (everything it wrote but did not fsync is dropped),
// stall its fsyncs or fail its disk I/O.

// mountDisks mounts one faultfs per node over <dir>/disks/<id>/backing at
// the node's data dir. It skips the test where FUSE cannot be used. Each
// mount is shared (faultfs.Mount), so the nodes' mount namespaces (ip netns
// exec) follow every unmount and remount.
func mountDisks(t *testing.T, dir string, nodes []*node) {
	if err := faultfs.Available(); err != nil {
		t.Skipf("disk fault scenario: %v", err)
	}
	base := filepath.Join(dir, "disks")
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		mnt, backing := filepath.Join(base, n.id, "data"), filepath.Join(base, n.id, "backing")
		for _, d := range []string{mnt, backing} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		fsys, err := faultfs.Mount(mnt, backing)
		if err != nil {
			t.Fatal(err)
		}
		n.dataDir, n.disk = mnt, fsys
		// Registered before the nodes' own cleanup, so it runs after it:
		// no process uses the mount any more.
		t.Cleanup(func() {
			if err := fsys.Unmount(); err != nil {
				t.Errorf("unmount %s's disk: %v", n.id, err)
			}
		})
	}
}

// powerLosses cuts power to one node, then two, then all of them at once
// (then at random while time remains): each is SIGKILLed, loses every write
// and directory change it had not fsynced, and is restarted 1-2 s later.
// The first three rounds run even if they overrun the fault phase.
func powerLosses(ctx context.Context, c *cluster) {
	for round := 0; round < 3 || ctx.Err() == nil; round++ {
		k := round + 1
		if round >= 3 {
			k = 1 + c.rng.Intn(len(c.nodes))
		}
		k = min(k, len(c.nodes))
		var victims []*node
		for _, i := range c.rng.Perm(len(c.nodes))[:k] {
			victims = append(victims, c.nodes[i])
		}
		f := c.begin("power-loss", victims...)
		f.needKilled = sortedIDs(victims)
		f.needFailedOn = sortedIDs(victims)
		// The power goes on every victim at one instant; the processes
		// die after it, so nothing they sync in between counts.
		for _, n := range victims {
			n.disk.Cut()
		}
		for _, n := range victims {
			if err := n.kill(); err != nil {
				c.t.Errorf("kill %s: %v", n.id, err)
			}
			f.observeKilled(n)
		}
		for _, n := range victims {
			loss, err := n.disk.PowerLoss()
			if err != nil {
				c.t.Errorf("power loss on %s: %v", n.id, err)
			}
			f.diskLost += loss.Bytes + int64(loss.Entries)
			f.Detail += fmt.Sprintf("%s: %s; ", n.id, loss)
			for _, a := range loss.Anomalies {
				c.logf("%s: power loss could not undo exactly: %s", n.id, a)
			}
		}
		sleep(context.Background(), time.Second+time.Duration(c.rng.Int63n(int64(time.Second))))
		for _, n := range victims {
			if err := n.start(); err != nil {
				c.t.Errorf("restart %s: %v", n.id, err)
			}
		}
		if err := c.waitHealthy(30 * time.Second); err != nil {
			c.t.Errorf("after the power loss of %v: %v", f.Nodes, err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// syncStall is how long a stalled disk holds each fsync.
const syncStall = 10 * time.Second

// stallLeaderSync makes every fsync and fdatasync on the leader's disk
// block for 10 s, for 10 s: raft's heartbeats go on, so the leader keeps
// its term while its log cannot be made durable; no write may be
// acknowledged before a majority has it on disk, and no expiry stamped on
// a clock read before the stall may delete a key rewritten since.
func stallLeaderSync(ctx context.Context, c *cluster) {
	for round := 0; round < 2 || ctx.Err() == nil; round++ {
		l, _, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("stall: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		f := c.begin("sync-stall", l)
		f.needFailedOn = []string{l.id}
		before := l.disk.Stats().Stalled
		l.disk.SetSyncDelay(syncStall)
		sleep(context.Background(), syncStall)
		l.disk.SetSyncDelay(0)
		f.stalledSyncs = l.disk.Stats().Stalled - before
		f.needStalled = true
		f.Detail = fmt.Sprintf("%d syncs held %s", f.stalledSyncs, syncStall)
		// The syncs begun in the last moments of the stall finish up to
		// 10 s later: the fault lasts until the cluster is whole again.
		if err := c.waitHealthy(2*syncStall + 10*time.Second); err != nil {
			c.t.Errorf("after the sync stall on %s: %v", l.id, err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// diskErrors makes the disk fail under the leader (first round), then
// under a follower, then under a random node: every write and sync returns
// EIO. The node must stop acknowledging at once (fail-stop) and answer
// /readyz 503 with reason "disk"; the other two keep serving. Healing
// clears the fault and restarts the node, which rejoins from its files.
func diskErrors(ctx context.Context, c *cluster) {
	for round := 0; round < 2 || ctx.Err() == nil; round++ {
		l, term, err := c.leader(5 * time.Second)
		if err != nil {
			c.logf("eio: %v", err)
			sleep(ctx, time.Second)
			continue
		}
		victim := l
		switch {
		case round == 1:
			fs := c.others(l)
			victim = fs[c.rng.Intn(len(fs))]
		case round > 1:
			victim = c.nodes[c.rng.Intn(len(c.nodes))]
		}
		f := c.begin("disk-eio", victim)
		f.needFailedOn = []string{victim.id}
		f.needDiskReady = true
		if victim == l {
			f.needTermRise = true
			f.Detail = "on the leader"
		} else {
			f.Detail = "on a follower"
		}
		victim.disk.SetWriteError(true)
		victim.disk.SetSyncError(true)
		f.diskReady = c.waitDiskNotReady(victim, 15*time.Second)
		if victim == l {
			c.holdUntilNewLeader(l, term, time.Second, 12*time.Second)
		} else {
			sleep(context.Background(), 2*time.Second)
		}
		f.Detail += fmt.Sprintf("; %d EIOs", victim.disk.Stats().EIOs)
		victim.disk.SetWriteError(false)
		victim.disk.SetSyncError(false)
		if err := c.stopDumping(victim, 15*time.Second); err != nil {
			c.t.Errorf("stop %s after its disk failed: %v", victim.id, err)
		}
		if err := victim.start(); err != nil {
			c.t.Errorf("restart %s: %v", victim.id, err)
		}
		if err := c.waitHealthy(30 * time.Second); err != nil {
			c.t.Errorf("after the disk errors on %s: %v", victim.id, err)
		}
		c.end(f)
		sleep(ctx, recovery)
	}
}

// waitDiskNotReady polls n's /readyz until it answers 503 with reason
// "disk", and reports whether it did within limit.
func (c *cluster) waitDiskNotReady(n *node, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var body struct {
			Error struct {
				Code   string `json:"code"`
				Reason string `json:"reason"`
			} `json:"error"`
		}
		resp, err := c.api.do(ctx, "GET", n.httpBase()+"/readyz", nil)
		cancel()
		if err == nil && resp.status == 503 && json.Unmarshal(resp.body, &body) == nil && body.Error.Reason == "disk" {
			c.logf("%s: /readyz 503 %s, reason disk", n.id, body.Error.Code)
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.logf("%s: /readyz never answered 503 with reason disk within %s", n.id, limit)
	return false
}

// stopDumping sends SIGTERM and waits up to timeout for n to exit; if it
// does not, it sends SIGQUIT (the Go runtime writes every goroutine's stack
// to the node's log), waits for that exit, saves the log to the scenario's
// artifacts and reports the hang.
func (c *cluster) stopDumping(n *node, timeout time.Duration) error {
	done, err := n.proc.Signal(syscall.SIGTERM)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-time.After(timeout):
	}
	if done, err = n.proc.Signal(syscall.SIGQUIT); err == nil {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			n.kill()
		}
	}
	dump := filepath.Join(c.artifacts, n.id+"-hung-stop.log")
	if err := copyFile(n.logPath, dump); err != nil {
		dump = err.Error()
	}
	return fmt.Errorf("did not stop within %s of SIGTERM; its log with every goroutine's stack (SIGQUIT): %s", timeout, dump)
}
