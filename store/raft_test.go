package store

import (
	"bytes"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

func TestSyncingSinkSyncsTheFileSnapshotAndKeepsItIntact(t *testing.T) {
	dir := t.TempDir()
	snaps, err := raft.NewFileSnapshotStore(dir, 1, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := snaps.Create(raft.SnapshotVersionMax, 10, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := newSyncingSink(sink, dir+"/snapshots")
	chunk := bytes.Repeat([]byte{0xab}, 1<<20)
	for range 3 * snapshotSyncEvery / len(chunk) {
		if _, err := s.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if s.off || s.f == nil {
		t.Fatalf("sink did not find the state file %s (off=%v)", s.path, s.off)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, rc, err := snaps.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || len(got) != 3*snapshotSyncEvery {
		t.Fatalf("read back %d bytes, %v; want %d", len(got), err, 3*snapshotSyncEvery)
	}
}

func TestSyncingSinkPassesThroughWithoutAFile(t *testing.T) {
	var inner memSnapshotSink
	s := newSyncingSink(&inner, t.TempDir())
	if _, err := s.Write(make([]byte, snapshotSyncEvery+1)); err != nil {
		t.Fatal(err)
	}
	if !s.off || inner.Len() != snapshotSyncEvery+1 {
		t.Fatalf("off=%v, inner has %d bytes", s.off, inner.Len())
	}
	if err := s.Cancel(); err != nil || !inner.canceled {
		t.Fatalf("Cancel: %v, canceled=%v", err, inner.canceled)
	}
}

type memSnapshotSink struct {
	bytes.Buffer
	canceled bool
}

func (*memSnapshotSink) ID() string      { return "mem" }
func (*memSnapshotSink) Close() error    { return nil }
func (m *memSnapshotSink) Cancel() error { m.canceled = true; return nil }
