package chaos

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// corruptRejoin is scenario 9: under load, stop a node gracefully, damage
// one of its files, and start it: it must refuse to start (exit non-zero
// with a "data dir corrupted" error naming the file) while the other two
// keep serving. Then the documented recovery (docs/disk-faults.md): remove
// it through another member, wipe its data dir, start it empty with --join,
// until the leader lists it as a voter again. Rounds alternate the damage:
// a flipped bit in raft's stored current term (its checksummed copy, in
// raft.db or the wal's meta db), then one in the newest client write's raft
// log entry. Snapshots, truncations and the wal's segments are covered by
// the store's tests (a snapshot is rarely taken within a CI run).
func corruptRejoin(ctx context.Context, c *cluster) {
	adm := newAPIClient(c.api.apiKey, 20*time.Second)
	defer adm.close()
	for round := 0; ctx.Err() == nil; round++ {
		victim := c.nodes[c.rng.Intn(len(c.nodes))]
		members := c.others(victim)
		via := members[c.rng.Intn(len(members))]
		f := c.begin("corrupt-rejoin", victim)
		f.needFailedOn = []string{victim.id}
		f.needRefused, f.needRejoin = true, true
		if err := victim.stop(15 * time.Second); err != nil {
			c.t.Errorf("stop %s: %v", victim.id, err)
		}
		file, what, err := damage(victim.dataDir, round%2 == 1)
		if err != nil {
			c.t.Errorf("damage %s's data dir: %v", victim.id, err)
		}
		f.Detail = "flipped a bit in " + what + " in " + strings.TrimPrefix(file, victim.dataDir+"/")
		exits := len(victim.proc.Exits())
		logFrom := logSize(victim.logPath)
		if err := victim.start(); err != nil {
			c.t.Errorf("start damaged %s: %v", victim.id, err)
		}
		select {
		case <-victim.proc.Done():
			all := victim.proc.Exits()
			last := all[len(all)-1]
			if len(all) <= exits || last == "exit status 0" {
				c.t.Errorf("%s on a damaged data dir exited %q, want a non-zero exit", victim.id, last)
			}
			if !logContains(victim.logPath, logFrom, "data dir corrupted: "+file) {
				c.t.Errorf("%s's refusal does not name %s", victim.id, file)
			}
			f.refused = len(all) > exits && last != "exit status 0" && logContains(victim.logPath, logFrom, "data dir corrupted: "+file)
			f.Detail += "; refused to start (" + last + ")"
		case <-time.After(20 * time.Second):
			c.t.Errorf("%s started on a data dir with a flipped bit in %s", victim.id, file)
			victim.kill()
		}
		// The runbook: remove, wipe, join.
		if err := removeWithRetry(adm, via, victim.id, 30*time.Second); err != nil {
			c.t.Errorf("remove %s via %s: %v", victim.id, via.id, err)
		}
		f.sawAbsent = c.waitMembership(adm, members, victim.id, "", 10*time.Second)
		var urls []string
		for _, m := range members {
			urls = append(urls, m.httpBase())
		}
		if err := victim.wipe(urls); err != nil {
			c.t.Errorf("wipe %s: %v", victim.id, err)
		}
		restarted := time.Now()
		if err := victim.start(); err != nil {
			c.t.Errorf("start %s with --join: %v", victim.id, err)
		}
		f.sawVoter = c.waitMembership(adm, members, victim.id, "voter", 40*time.Second)
		f.Detail += fmt.Sprintf("; wiped, voter again %.1fs after joining", time.Since(restarted).Seconds())
		c.end(f)
		sleep(ctx, recovery)
	}
}

// damage flips bits in a file of the stopped node's data dir, one the node
// checks at startup, and returns the file. With entry set and a bolt log:
// the newest ack/ key written through raft, in every copy bbolt kept of its
// log entry (old copies of a page stay in free pages). Otherwise: the
// checksummed copy of raft's current term (store/logsum.go), in raft.db or
// the wal's meta db. what says which.
func damage(dataDir string, entry bool) (file, what string, err error) {
	raftDir := filepath.Join(dataDir, "raft")
	path := filepath.Join(raftDir, "raft.db")
	bolt := true
	if _, err := os.Stat(path); err != nil {
		path, bolt = filepath.Join(raftDir, "wal", "wal-meta.db"), false
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return path, "", err
	}
	var target []byte
	var at int
	if entry && bolt {
		target, at = newestAckKey(b), len("ack/")
		if target != nil {
			what = "the log entry of " + string(target[:len(target)-1])
		}
	}
	if target == nil {
		what = "the stored current term"
		// bbolt stores a key's value right after it: flip the term's
		// lowest byte.
		target = []byte("quorumkv.sum.CurrentTerm")
		at = len(target) + 7
	}
	n := 0
	for i := 0; ; {
		j := bytes.Index(b[i:], target)
		if j < 0 || i+j+at >= len(b) {
			break
		}
		b[i+j+at] ^= 0x01
		n++
		i += j + len(target)
	}
	if n == 0 {
		return path, what, fmt.Errorf("%q not found in %s", target, path)
	}
	return path, what, os.WriteFile(path, b, 0o600)
}

// newestAckKey finds the ack/c<client>/<n> key with the highest n in b:
// written last, so its entry is in the live log, not only in a compacted
// page. The key is returned with the byte that ends it, so that ack/c1/1
// does not also match ack/c1/10.
func newestAckKey(b []byte) []byte {
	var best []byte
	bestN := -1
	for i := 0; ; {
		j := bytes.Index(b[i:], []byte("ack/c"))
		if j < 0 {
			return best
		}
		k := i + j + len("ack/c")
		for k < len(b) && (b[k] >= '0' && b[k] <= '9' || b[k] == '/') {
			k++
		}
		key := b[i+j : k]
		if slash := bytes.LastIndexByte(key, '/'); slash > len("ack/c") && k < len(b) {
			n := 0
			for _, d := range key[slash+1:] {
				n = n*10 + int(d-'0')
			}
			if len(key[slash+1:]) > 0 && n > bestN {
				bestN, best = n, append(append([]byte(nil), key...), b[k])
			}
		}
		i = k
	}
}

// logContains reports whether the node log at path has s after byte from.
func logContains(path string, from int64, s string) bool {
	b, err := os.ReadFile(path)
	return err == nil && int64(len(b)) > from && bytes.Contains(b[from:], []byte(s))
}

func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}
