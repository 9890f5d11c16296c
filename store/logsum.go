package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
	"github.com/hashicorp/raft-wal/metadb"
)

// Per-node checksums of the raft log and stable store.
//
// Neither log store checks what it hands back: bbolt has checksums on its
// meta pages only, and raft-wal verifies a commit's CRC only for the last
// batch of its open segment, when it opens (a mismatch there is taken for a
// torn write and dropped). A flipped byte in an entry's data or in the term
// would reach raft, and from there the state machine and every client, as
// if it were true. So each entry is stored with a CRC-32C of what raft gave
// (index, term, type, data, extensions), carried in the entry's Extensions
// field behind raft's own bytes, and each stable value with a CRC-32C copy
// under a key of its own. Every read verifies the sum and strips it again:
// raft, and through raft the other nodes, never see it. It is this node's
// storage format only; nothing replicated changes.
//
// Data dirs written before this format carry no sums. The file
// <data-dir>/raft/checksums records from which log index on entries carry
// one (1 for a new data dir, the next index for an older one) and that the
// stable values have their copies; an older data dir gets it, and its three
// stable values their copies, the first time this version opens it.

// ErrCorrupt: a file of this node's data dir failed a check when the node
// started (a checksum mismatch, a truncated or unreadable file), or a
// checksum failed while it ran. The node refuses to use it; the error names
// the file, the check and the recovery.
var ErrCorrupt = errors.New("data dir corrupted")

// corruptAdvice is the recovery from a damaged data dir.
const corruptAdvice = "This node must not serve it. Recover by replacing the node's data: remove the node from the cluster " +
	"(DELETE /cluster/nodes/<id> on a live node), wipe its data dir, and start it again with --join; it catches up from the " +
	"others (docs/disk-faults.md, \"Wipe and rejoin\"). If this is the only copy of the data, keep the files for a backup restore"

// corruptErr is an ErrCorrupt naming the file and the failed check.
func corruptErr(file, check string) error {
	return fmt.Errorf("%w: %s: %s. %s", ErrCorrupt, file, check, corruptAdvice)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sumMagic ends every checksummed entry's Extensions; a trailer is
// crc32c(4, big-endian) then sumMagic.
var sumMagic = [4]byte{'q', 'k', 'v', 1}

const sumTrailer = 8

func entrySum(l *raft.Log, ext []byte) uint32 {
	var hdr [21]byte
	binary.BigEndian.PutUint64(hdr[0:8], l.Index)
	binary.BigEndian.PutUint64(hdr[8:16], l.Term)
	hdr[16] = byte(l.Type)
	binary.BigEndian.PutUint32(hdr[17:21], uint32(len(l.Data)))
	c := crc32.Update(0, castagnoli, hdr[:])
	c = crc32.Update(c, castagnoli, l.Data)
	return crc32.Update(c, castagnoli, ext)
}

// checksumLog stores a CRC-32C with every entry and verifies it on every
// read (entries from index from on must carry one).
type checksumLog struct {
	raft.LogStore
	from uint64
	// file names the log store in errors.
	file string
}

func (c *checksumLog) IsMonotonic() bool {
	m, ok := c.LogStore.(raft.MonotonicLogStore)
	return ok && m.IsMonotonic()
}

func (c *checksumLog) StoreLog(l *raft.Log) error { return c.StoreLogs([]*raft.Log{l}) }

// StoreLogs stores copies: raft keeps (and its LogCache serves) the entries
// it passed, which must stay without the sum.
func (c *checksumLog) StoreLogs(logs []*raft.Log) error {
	out := make([]*raft.Log, len(logs))
	copies := make([]raft.Log, len(logs))
	for i, l := range logs {
		copies[i] = *l
		ext := make([]byte, 0, len(l.Extensions)+sumTrailer)
		ext = append(ext, l.Extensions...)
		ext = binary.BigEndian.AppendUint32(ext, entrySum(l, l.Extensions))
		copies[i].Extensions = append(ext, sumMagic[:]...)
		out[i] = &copies[i]
	}
	return c.LogStore.StoreLogs(out)
}

func (c *checksumLog) GetLog(index uint64, l *raft.Log) error {
	if err := c.LogStore.GetLog(index, l); err != nil {
		return err
	}
	ext := l.Extensions
	n := len(ext)
	if n < sumTrailer || !bytes.Equal(ext[n-4:], sumMagic[:]) {
		if index < c.from {
			return nil // written before this node stored sums
		}
		return corruptErr(c.file, fmt.Sprintf("raft log entry %d has no checksum (entries from %d on carry one)", index, c.from))
	}
	orig := ext[:n-sumTrailer]
	want := binary.BigEndian.Uint32(ext[n-sumTrailer : n-4])
	if l.Index != index {
		return corruptErr(c.file, fmt.Sprintf("raft log entry %d holds index %d", index, l.Index))
	}
	if got := entrySum(l, orig); got != want {
		return corruptErr(c.file, fmt.Sprintf("raft log entry %d fails its CRC-32C (stored %08x, computed %08x)", index, want, got))
	}
	if len(orig) == 0 {
		orig = nil
	}
	l.Extensions = orig
	return nil
}

// sumKeyPrefix names the checksummed copy of a stable value.
const sumKeyPrefix = "quorumkv.sum."

// checksumStable writes every stable value twice: a copy with its CRC-32C
// under sumKeyPrefix+key, which reads use and verify, then the plain value
// under the key, which only an older quorumkv (after a downgrade) reads.
// Each Set is one store write, so the copy is either the old or the new
// value after a crash; raft never acted on a Set that did not return.
type checksumStable struct {
	raft.StableStore
	file string
}

func stableSum(key, val []byte) []byte {
	c := crc32.Update(0, castagnoli, key)
	c = crc32.Update(c, castagnoli, val)
	return binary.BigEndian.AppendUint32(append([]byte(nil), val...), c)
}

func (c *checksumStable) Set(key, val []byte) error {
	if err := c.StableStore.Set([]byte(sumKeyPrefix+string(key)), stableSum(key, val)); err != nil {
		return err
	}
	return c.StableStore.Set(key, val)
}

func (c *checksumStable) SetUint64(key []byte, val uint64) error {
	if err := c.StableStore.Set([]byte(sumKeyPrefix+string(key)), stableSum(key, binary.BigEndian.AppendUint64(nil, val))); err != nil {
		return err
	}
	return c.StableStore.SetUint64(key, val)
}

// errStableMissing is what the stores answer for a key never set:
// raft-boltdb an error reading "not found", raft-wal an empty value.
var errStableMissing = errors.New("not found")

// get returns the verified value of key, or errStableMissing.
func (c *checksumStable) get(key []byte) ([]byte, error) {
	sum, err := c.StableStore.Get([]byte(sumKeyPrefix + string(key)))
	if err != nil && err.Error() != "not found" {
		return nil, err
	}
	if len(sum) == 0 {
		// No copy: the key must not exist either.
		plain, perr := c.StableStore.Get(key)
		if perr == nil && len(plain) > 0 {
			return nil, corruptErr(c.file, fmt.Sprintf("stable store key %s has no checksummed copy", key))
		}
		return nil, errStableMissing
	}
	if len(sum) < 4 {
		return nil, corruptErr(c.file, fmt.Sprintf("stable store key %s: checksummed copy is %d bytes", key, len(sum)))
	}
	val, stored := sum[:len(sum)-4], binary.BigEndian.Uint32(sum[len(sum)-4:])
	if got := binary.BigEndian.Uint32(stableSum(key, val)[len(val):]); got != stored {
		return nil, corruptErr(c.file, fmt.Sprintf("stable store key %s fails its CRC-32C (stored %08x, computed %08x)", key, stored, got))
	}
	return val, nil
}

func (c *checksumStable) Get(key []byte) ([]byte, error) {
	v, err := c.get(key)
	if errors.Is(err, errStableMissing) {
		// Answer as the store beneath does for a key never set.
		return c.StableStore.Get(key)
	}
	return v, err
}

func (c *checksumStable) GetUint64(key []byte) (uint64, error) {
	v, err := c.get(key)
	if errors.Is(err, errStableMissing) {
		return c.StableStore.GetUint64(key)
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, corruptErr(c.file, fmt.Sprintf("stable store key %s holds %d bytes, not a uint64", key, len(v)))
	}
	return binary.BigEndian.Uint64(v), nil
}

// logFileName is the file (bolt) or directory (wal) holding a log store.
func logFileName(name string) string {
	if name == RaftLogWAL {
		return walDir
	}
	return boltFile
}

// checksumsFile is <data-dir>/raft/checksums: since which log index this
// data dir's entries carry sums.
const checksumsFile = "checksums"

type checksumsMarker struct {
	Format  int    `json:"format"`
	LogFrom uint64 `json:"logFrom"`
}

// raftStableKeys are the keys hashicorp/raft keeps in its stable store.
var raftStableKeys = []struct {
	key    string
	uint64 bool
}{{"CurrentTerm", true}, {"LastVoteTerm", true}, {"LastVoteCand", false}}

// withChecksums wraps a freshly opened log and stable store. A data dir
// without the checksums file gets one, from the next log index on, after its
// stable values got their checksummed copies.
func withChecksums(raftDir string, ls logStore) (raft.LogStore, raft.StableStore, error) {
	file := filepath.Join(raftDir, logFileName(ls.name))
	path := filepath.Join(raftDir, checksumsFile)
	stableFile := file
	if ls.name == RaftLogWAL {
		stableFile = filepath.Join(raftDir, walDir, metadb.FileName)
	}
	stable := &checksumStable{StableStore: ls.stable, file: stableFile}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		var m checksumsMarker
		if jerr := json.Unmarshal(b, &m); jerr != nil || m.Format != 1 || m.LogFrom == 0 {
			return nil, nil, corruptErr(path, fmt.Sprintf("unreadable (%q)", b))
		}
		return &checksumLog{LogStore: ls.log, from: m.LogFrom, file: file}, stable, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, nil, fmt.Errorf("store: read %s: %w", path, err)
	}
	last, err := ls.log.LastIndex()
	if err != nil {
		return nil, nil, fmt.Errorf("store: read the raft log's last index: %w", err)
	}
	// An older data dir: give its stable values their checksummed copies.
	for _, k := range raftStableKeys {
		if k.uint64 {
			v, err := ls.stable.GetUint64([]byte(k.key))
			if err != nil && err.Error() != "not found" {
				return nil, nil, fmt.Errorf("store: read %s from the stable store: %w", k.key, err)
			}
			if err == nil && v != 0 {
				if err := stable.SetUint64([]byte(k.key), v); err != nil {
					return nil, nil, fmt.Errorf("store: add a checksum to %s: %w", k.key, err)
				}
			}
			continue
		}
		v, err := ls.stable.Get([]byte(k.key))
		if err != nil && err.Error() != "not found" {
			return nil, nil, fmt.Errorf("store: read %s from the stable store: %w", k.key, err)
		}
		if len(v) > 0 {
			if err := stable.Set([]byte(k.key), v); err != nil {
				return nil, nil, fmt.Errorf("store: add a checksum to %s: %w", k.key, err)
			}
		}
	}
	m := checksumsMarker{Format: 1, LogFrom: last + 1}
	b, _ = json.Marshal(m)
	if err := writeFileSynced(path, append(b, '\n')); err != nil {
		return nil, nil, fmt.Errorf("store: write %s: %w", path, err)
	}
	return &checksumLog{LogStore: ls.log, from: m.LogFrom, file: file}, stable, nil
}

// writeFileSynced writes path whole or not at all: a synced temporary file
// renamed over it, then the directory synced.
func writeFileSynced(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// verifyStable reads raft's stable values through their checksums.
func verifyStable(s raft.StableStore) error {
	for _, k := range raftStableKeys {
		var err error
		if k.uint64 {
			_, err = s.GetUint64([]byte(k.key))
		} else {
			_, err = s.Get([]byte(k.key))
		}
		if err != nil && err.Error() != "not found" {
			return err
		}
	}
	return nil
}
