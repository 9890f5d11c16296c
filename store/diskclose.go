package store

import (
	"fmt"
	"sync"
	"time"
)

// diskCloseGrace is how long Close waits for raft and the stores to stop
// once this node's disk has failed (from the failure if it comes during
// Close, else from the start of Close).
var diskCloseGrace = 5 * time.Second

// boundAfterDiskFailure runs closeAll, which calls step before each stage
// it waits for, and returns its error. While the disk works it waits for
// it however long it takes: a healthy node flushes everything before it
// exits. Once the disk has failed it waits at most diskCloseGrace, then
// logs the stage it abandons and returns: a call blocked on a dead disk (a
// raft goroutine in a write that never returns, a lock held by one) may
// never end, and a node whose disk failed has nothing left to flush, since
// it acknowledged nothing after the failure. The abandoned goroutine is
// left to the process's exit.
func (s *Store) boundAfterDiskFailure(closeAll func(step func(string)) error) error {
	var mu sync.Mutex
	stage := "starting"
	step := func(name string) {
		mu.Lock()
		stage = name
		mu.Unlock()
	}
	done := make(chan error, 1)
	go func() { done <- closeAll(step) }()
	select {
	case err := <-done:
		return err
	case <-s.disk.failedCh:
	}
	t := time.NewTimer(diskCloseGrace)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
	}
	mu.Lock()
	abandoned := stage
	mu.Unlock()
	s.log.Error("store close abandoned after the disk failure: still waiting for "+abandoned+"; the node stops without it "+
		"(it acknowledged nothing since the failure, so nothing is lost). To recover, "+diskAdvice,
		"waiting_for", abandoned, "after", diskCloseGrace, "dir", s.cfg.DataDir)
	return fmt.Errorf("%w: close abandoned after %s still waiting for %s", ErrDiskFailed, diskCloseGrace, abandoned)
}
