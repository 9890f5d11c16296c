package fsm

import (
	"context"
	"errors"
	"runtime"
	"testing"

	"github.com/hashicorp/raft"
)

func TestWaitAppliedReturnsAtOnceWhenReached(t *testing.T) {
	f := New()
	apply(t, f, 7, Command{Op: OpBarrier})
	ctx, cancel := context.WithCancel(t.Context())
	cancel() // reached takes precedence over a dead context
	for _, idx := range []uint64{0, 6, 7} {
		if err := f.WaitApplied(ctx, idx); err != nil {
			t.Fatalf("WaitApplied(%d) at applied 7 = %v, want nil", idx, err)
		}
	}
}

func TestWaitAppliedBlocksUntilApplied(t *testing.T) {
	f := New()
	const waiters = 8
	done := make(chan error, waiters)
	for range waiters {
		go func() { done <- f.WaitApplied(t.Context(), 10) }()
	}
	waitForWaiter(f)
	apply(t, f, 5, Command{Op: OpBarrier})
	waitForWaiter(f) // woken by index 5, they must wait again
	f.Apply(configLog(9))
	select {
	case err := <-done:
		t.Fatalf("WaitApplied(10) returned %v at applied index 9", err)
	default:
	}
	f.ApplyBatch([]*raft.Log{cmdLog(10, Command{Op: OpBarrier}), cmdLog(11, Command{Op: OpBarrier})})
	for range waiters {
		if err := <-done; err != nil {
			t.Fatalf("WaitApplied: %v", err)
		}
	}
}

func TestWaitAppliedHonoursContext(t *testing.T) {
	f := New()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- f.WaitApplied(ctx, 1) }()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied after cancel = %v, want context.Canceled", err)
	}
	if err := f.WaitApplied(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitApplied with dead context = %v, want context.Canceled", err)
	}
}

// waitForWaiter returns once some WaitApplied call has registered for the next
// advance, so the test exercises the blocking path rather than the fast one.
func waitForWaiter(f *FSM) {
	for {
		f.waitMu.Lock()
		registered := f.waitCh != nil
		f.waitMu.Unlock()
		if registered {
			return
		}
		runtime.Gosched()
	}
}
