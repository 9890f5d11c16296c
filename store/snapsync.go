package store

import (
	"os"
	"path/filepath"

	"github.com/hashicorp/raft"
)

// snapshotSyncEvery is how many bytes a snapshot may write to the page cache
// before they are forced to disk.
//
// Why: raft's FileSnapshotSink writes through the page cache and
// fsyncs once, on Close. At one million keys that is ~230 MB of dirty pages
// flushed in one burst (~0.7 s on the development disk), and the raft log's
// own fsyncs queue behind it on the same file system: write p99 on a leader
// rose ~5x while a snapshot ran. Syncing every few MiB as the snapshot is
// written spreads that I/O into short flushes that log commits slip between.
const snapshotSyncEvery = 8 << 20

// syncingSink forces a file snapshot's data to disk every snapshotSyncEvery
// bytes. It finds the file the way raft.FileSnapshotStore lays it out
// (<dir>/<id>.tmp/state.bin) and fsyncs its own descriptor of it, which
// flushes the same inode. If that file is not there (another SnapshotStore),
// it does nothing beyond passing writes through; durability never depends on
// it, since the sink still fsyncs everything on Close.
type syncingSink struct {
	raft.SnapshotSink
	path  string
	f     *os.File
	off   bool // no file to sync: pass writes through
	dirty int64
}

func newSyncingSink(sink raft.SnapshotSink, snapDir string) *syncingSink {
	return &syncingSink{SnapshotSink: sink, path: filepath.Join(snapDir, sink.ID()+".tmp", "state.bin")}
}

func (s *syncingSink) Write(p []byte) (int, error) {
	n, err := s.SnapshotSink.Write(p)
	s.dirty += int64(n)
	if err == nil && !s.off && s.dirty >= snapshotSyncEvery {
		s.dirty = 0
		if s.f == nil {
			f, oerr := os.Open(s.path)
			if oerr != nil {
				s.off = true
				return n, nil
			}
			s.f = f
		}
		if serr := s.f.Sync(); serr != nil {
			// The sink's own fsync on Close reports real failures.
			s.off = true
		}
	}
	return n, err
}

func (s *syncingSink) closeFile() {
	if s.f != nil {
		_ = s.f.Close()
		s.f = nil
	}
}

func (s *syncingSink) Close() error {
	s.closeFile()
	return s.SnapshotSink.Close()
}

func (s *syncingSink) Cancel() error {
	s.closeFile()
	return s.SnapshotSink.Cancel()
}
