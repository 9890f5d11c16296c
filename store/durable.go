package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// Directory entries made durable (store/DESIGN.md, "Durability and
// restart"): a file's fsync makes its data durable, not its name. POSIX
// requires an fsync of the directory for that, and a power loss may drop
// any entry created, renamed or removed since its directory's last fsync.
// bbolt creates raft.db without one, and raft's FileSnapshotStore syncs a
// snapshot's files and the snapshots directory but not the snapshot's own
// directory, whose entries (state.bin, meta.json) were made in it while it
// was still <id>.tmp.

// syncDir fsyncs the directory at path.
func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("store: sync directory: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("store: sync directory %s: %w", path, err)
	}
	return nil
}

// syncDirs fsyncs each directory, innermost first, so every entry on the
// way from the data dir to the files raft writes is durable before raft
// appends its first entry.
func syncDirs(dirs ...string) error {
	for _, d := range dirs {
		if err := syncDir(d); err != nil {
			return err
		}
	}
	return nil
}

// syncParent fsyncs the directory holding path, where it can: the data
// dir's own entry, in a directory quorumkv does not own (a mount point's
// parent may be on another file system, or read-only).
func syncParent(path string) {
	_ = syncDir(filepath.Dir(filepath.Clean(path)))
}

// durableSnapshots is the FileSnapshotStore with each finished snapshot's
// directory fsynced before Close returns. raft compacts its log only after
// Close returns, so the log entries a snapshot replaces are deleted only
// once the snapshot can be found after a power loss.
type durableSnapshots struct {
	*raft.FileSnapshotStore
	dir string // the store's snapshots directory
}

func (s durableSnapshots) Create(version raft.SnapshotVersion, index, term uint64, configuration raft.Configuration,
	configurationIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.FileSnapshotStore.Create(version, index, term, configuration, configurationIndex, trans)
	if err != nil {
		return nil, err
	}
	return &durableSink{SnapshotSink: sink, dir: filepath.Join(s.dir, sink.ID())}, nil
}

// durableSink is a snapshot being written; dir is where Close moves it.
type durableSink struct {
	raft.SnapshotSink
	dir string
}

func (s *durableSink) Close() error {
	if err := s.SnapshotSink.Close(); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return errors.Join(errors.New("store: snapshot written but its directory not synced"), err)
	}
	return nil
}
