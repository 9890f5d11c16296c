package store

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/quorumkv/quorumkv/test/faultfs"
)

// mountFaultFS mounts a faultfs (power loss keeps only what POSIX promises)
// for one test, or skips where FUSE cannot be used.
func mountFaultFS(t *testing.T) *faultfs.FS {
	t.Helper()
	if err := faultfs.Available(); err != nil {
		t.Skip(err)
	}
	base := t.TempDir()
	dir, backing := filepath.Join(base, "mnt"), filepath.Join(base, "backing")
	for _, d := range []string{dir, backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := faultfs.Mount(dir, backing)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f
}

// A snapshot whose Close returned survives a power loss with
// durableSnapshots; with raft's FileSnapshotStore alone its files' entries
// were never synced, and the snapshot is gone (raft then skips it, having
// already compacted the log it replaced).
func TestSnapshotSurvivesPowerLoss(t *testing.T) {
	for _, c := range []struct {
		name    string
		durable bool
	}{{"durableSnapshots", true}, {"FileSnapshotStore alone", false}} {
		t.Run(c.name, func(t *testing.T) {
			f := mountFaultFS(t)
			raftDir := filepath.Join(f.Dir, "raft")
			open := func() (raft.SnapshotStore, *raft.FileSnapshotStore) {
				fs, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hclog.NewNullLogger())
				if err != nil {
					t.Fatal(err)
				}
				if c.durable {
					return durableSnapshots{FileSnapshotStore: fs, dir: filepath.Join(raftDir, "snapshots")}, fs
				}
				return fs, fs
			}
			snaps, _ := open()
			if err := syncDirs(filepath.Join(raftDir, "snapshots"), raftDir, f.Dir); err != nil {
				t.Fatal(err)
			}
			sink, err := snaps.Create(raft.SnapshotVersionMax, 42, 3, raft.Configuration{}, 1, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sink.Write([]byte("state at index 42")); err != nil {
				t.Fatal(err)
			}
			if err := sink.Close(); err != nil {
				t.Fatal(err)
			}
			loss, err := f.PowerLoss()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("power loss: %s", loss)
			_, fs := open()
			list, err := fs.List()
			if err != nil {
				t.Fatal(err)
			}
			if !c.durable {
				if len(list) != 0 {
					t.Fatalf("raft's store alone kept the snapshot (%d listed): faultfs no longer models a missing directory sync", len(list))
				}
				return
			}
			if len(list) != 1 || list[0].Index != 42 {
				t.Fatalf("after the power loss: %+v, want the snapshot at index 42", list)
			}
			_, rc, err := fs.Open(list[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			if string(b) != "state at index 42" {
				t.Fatalf("snapshot holds %q", b)
			}
		})
	}
}
