package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

// TestFuturesBindToClose: the future raft's Apply returns is bound to the
// store's close, so a waiter on one raft never answers ends at Close. It
// fails if a raft upgrade drops the ShutdownCh field bindToClose sets.
func TestFuturesBindToClose(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	s := c.leader().store
	now, err := s.commandNow()
	if err != nil {
		t.Fatal(err)
	}
	f := s.raft.Apply(fsm.Command{Op: fsm.OpBarrier, Now: now}.Encode(), time.Second)
	s.bindToClose(f)
	ch := reflect.ValueOf(f).Elem().FieldByName("ShutdownCh")
	if !ch.IsValid() || ch.Pointer() != reflect.ValueOf(s.closing).Pointer() {
		t.Fatalf("raft's Apply future (%T) was not bound to the store's close: ShutdownCh %v", f, ch)
	}
	if err := f.Error(); err != nil {
		t.Fatalf("apply: %v", err)
	}
}

// TestCloseWaitsForSpawnedGoroutines: Close returns only after every
// goroutine spawn started has returned, and a spawn after Close runs inline.
func TestCloseWaitsForSpawnedGoroutines(t *testing.T) {
	c := newTestCluster(t, 1, nil)
	s := c.leader().store
	finished := make(chan struct{})
	s.spawn(func() {
		<-s.closing
		time.Sleep(20 * time.Millisecond) // still busy when the loops have stopped
		close(finished)
	})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-finished:
	default:
		t.Fatal("Close returned while a spawned goroutine was running")
	}
	ran := false
	s.spawn(func() { ran = true })
	if !ran {
		t.Fatal("spawn after Close did not run its function before returning")
	}
}
