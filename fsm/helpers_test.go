package fsm

import (
	"bytes"
	"testing"

	"github.com/hashicorp/raft"
)

// cmdLog wraps an encoded command as a committed raft log at index.
func cmdLog(index uint64, c Command) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: c.Encode()}
}

// configLog is a LogConfiguration entry, which the FSM must count but not apply.
func configLog(index uint64) *raft.Log {
	return &raft.Log{Index: index, Term: 1, Type: raft.LogConfiguration, Data: []byte("opaque configuration")}
}

func setCmd(key, value string, expiresAt, now int64) Command {
	return Command{Op: OpSet, Key: key, Value: []byte(value), ExpiresAt: expiresAt, Now: now}
}

func deleteCmd(key string, now int64) Command {
	return Command{Op: OpDelete, Key: key, Now: now}
}

func expireCmd(now int64, items ...ExpireItem) Command {
	return Command{Op: OpExpire, Now: now, Items: items}
}

// apply applies c at index and returns the response.
func apply(t testing.TB, f *FSM, index uint64, c Command) interface{} {
	t.Helper()
	return f.Apply(cmdLog(index, c))
}

// memSink is a raft.SnapshotSink backed by memory.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

// persist snapshots f and returns the persisted bytes.
func persist(t testing.TB, f *FSM) []byte {
	t.Helper()
	snap, err := f.Snapshot()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("Persist: sink closed=%v canceled=%v, want closed only", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

// restoreBytes restores b into f.
func restoreBytes(f *FSM, b []byte) error {
	return f.Restore(nopCloser{bytes.NewReader(b)})
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

// state is everything observable about an FSM, for before/after comparisons.
type state struct {
	hash    string
	applied uint64
	n       int
}

func stateOf(f *FSM) state {
	return state{hash: f.Hash(), applied: f.AppliedIndex(), n: f.Len()}
}
