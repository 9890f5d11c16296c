package store

import (
	"sync"

	"github.com/hashicorp/raft"
)

// shutdownSafeStable guards raft's stable store across shutdown.
//
// hashicorp/raft serves heartbeats on the network transport's connection
// goroutines (the heartbeat fast path), which raft.Shutdown does not wait
// for. A heartbeat that passed raft's shutdown check just before Shutdown
// can reach setCurrentTerm after the store was closed, and raft panics on any
// error from it ("failed to save current term"). After close, writes are
// dropped instead: raft is already shut down, so nothing reads the value in
// this process, and a heartbeat grants no vote, so losing its term update
// cannot make this node vote twice in a term after a restart.
type shutdownSafeStable struct {
	raft.StableStore
	mu     sync.RWMutex
	closed bool
}

func (s *shutdownSafeStable) Set(key, val []byte) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.Set(key, val)
}

func (s *shutdownSafeStable) SetUint64(key []byte, val uint64) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return nil
	}
	return s.StableStore.SetUint64(key, val)
}

// close marks the store closed once in-flight writes finish; call it before
// closing the underlying database.
func (s *shutdownSafeStable) close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}
