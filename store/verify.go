package store

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/raft"
	"go.etcd.io/bbolt"
)

// Startup checks of a data dir, run before raft sees any of it: a node
// refuses to start on a file that fails one (ErrCorrupt, naming the file,
// the check and the recovery) instead of serving what it holds. What each
// layer checks by itself, and so what is left to these, is in
// store/DESIGN.md, "Corrupted files".

// verifyBolt checks raft.db before raft-boltdb opens it: bbolt verifies its
// meta pages' checksums on open; the file must hold every page its meta
// page counts (a truncated file would fault when a page past its end is
// read through the memory map); and Tx.Check walks every page of the tree.
func verifyBolt(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: inspect %s: %w", path, err)
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		if errors.Is(err, bbolt.ErrTimeout) {
			return fmt.Errorf("store: %s is locked by another process (is another kvnode running on this data dir?)", path)
		}
		return corruptErr(path, "bbolt cannot open it ("+err.Error()+")")
	}
	defer db.Close()
	return db.View(func(tx *bbolt.Tx) error {
		if tx.Size() > fi.Size() {
			return corruptErr(path, fmt.Sprintf("truncated: %d bytes, its meta page counts %d", fi.Size(), tx.Size()))
		}
		var problems []string
		for err := range tx.Check() {
			problems = append(problems, err.Error())
		}
		if len(problems) > 0 {
			if len(problems) > 3 {
				problems = append(problems[:3], fmt.Sprintf("and %d more", len(problems)-3))
			}
			return corruptErr(path, "bbolt consistency check (Tx.Check) failed: "+strings.Join(problems, "; "))
		}
		return nil
	})
}

// verifyLog reads every entry of the log once, through its checksums.
//
// Besides damaged entries it turns an unreadable log into a refusal that
// says what to do, where raft.NewRaft would panic on the first entry it
// cannot read (raft-wal before v0.4.1 left such a log after raft truncated
// its suffix and the node restarted). It reads at most about
// SnapshotThreshold+TrailingLogs entries (BenchmarkOpenLogStore,
// BenchmarkStartupVerify1M).
func verifyLog(s raft.LogStore, file string) error {
	first, err := s.FirstIndex()
	if err != nil {
		return fmt.Errorf("store: %s: read the first index: %w", file, err)
	}
	last, err := s.LastIndex()
	if err != nil {
		return fmt.Errorf("store: %s: read the last index: %w", file, err)
	}
	// raft leaves a gap in a log that is not monotonic (bolt) when a
	// follower installs a snapshot past its last entry: missing entries are
	// expected there, and only there.
	m, ok := s.(raft.MonotonicLogStore)
	gaps := !ok || !m.IsMonotonic()
	var l raft.Log
	for i := first; i <= last && last > 0; i++ {
		if err := s.GetLog(i, &l); err != nil {
			if gaps && errors.Is(err, raft.ErrLogNotFound) {
				continue
			}
			if errors.Is(err, ErrCorrupt) {
				return err
			}
			return corruptErr(file, fmt.Sprintf("raft log entry %d of %d..%d unreadable (%v); raft cannot start on it (it would panic reading the log)", i, first, last, err))
		}
	}
	return nil
}

// snapshotMeta is what raft's FileSnapshotStore writes to meta.json.
type snapshotMeta struct {
	raft.SnapshotMeta
	CRC []byte
}

// verifySnapshots checks the FileSnapshotStore in dir: every complete
// snapshot's meta.json must decode, and the newest one's state.bin must
// have its recorded size and CRC-64.
//
// Why: raft skips a snapshot whose meta.json it cannot read without saying
// more than a warning, and when the newest snapshot fails its CRC it
// restores an older one. Either way the node would start from older state
// than its log was compacted against, and panic on the missing entries or
// serve a hole. raft checks the newest snapshot's CRC again when it
// restores it; reading it twice costs what docs/disk-faults.md measures.
func verifySnapshots(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("store: list snapshots in %s: %w", dir, err)
	}
	var metas []snapshotMeta
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue // raft ignores them too: a snapshot never completed
		}
		path := filepath.Join(dir, e.Name(), "meta.json")
		b, err := os.ReadFile(path)
		if err != nil {
			return corruptErr(path, "unreadable ("+err.Error()+")")
		}
		var m snapshotMeta
		if err := json.Unmarshal(b, &m); err != nil || m.ID != e.Name() || len(m.CRC) != 8 {
			return corruptErr(path, "not a valid snapshot meta file (bad JSON, wrong id or no CRC)")
		}
		metas = append(metas, m)
	}
	if len(metas) == 0 {
		return nil
	}
	// Newest first, as raft orders them.
	sort.Slice(metas, func(i, j int) bool {
		a, b := metas[i], metas[j]
		if a.Term != b.Term {
			return a.Term > b.Term
		}
		if a.Index != b.Index {
			return a.Index > b.Index
		}
		return a.ID > b.ID
	})
	m := metas[0]
	path := filepath.Join(dir, m.ID, "state.bin")
	f, err := os.Open(path)
	if err != nil {
		return corruptErr(path, "unreadable ("+err.Error()+")")
	}
	defer f.Close()
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	n, err := io.Copy(h, f)
	if err != nil {
		return corruptErr(path, "unreadable ("+err.Error()+")")
	}
	if n != m.Size {
		return corruptErr(path, fmt.Sprintf("truncated or extended: %d bytes, meta.json records %d", n, m.Size))
	}
	if got := h.Sum(nil); !bytes.Equal(got, m.CRC) {
		return corruptErr(path, fmt.Sprintf("fails the CRC-64 recorded in meta.json (stored %x, computed %x)", m.CRC, got))
	}
	return nil
}
