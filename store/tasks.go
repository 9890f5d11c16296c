package store

import (
	"context"
	"reflect"

	"github.com/hashicorp/raft"
)

// Goroutine ownership. Every goroutine the store starts ends by the time
// Close returns:
//   - the long-lived loops are started by Open and counted in s.wg; each
//     returns when s.closing is closed (the leader's duties, the monitor's
//     probes and the clock pings are waited for by the loop that started
//     them);
//   - goroutines started on behalf of one request or one write batch, which
//     wait on a raft future, are started with spawn and counted in s.tasks;
//     every such future is bound to the store's close (bindToClose), so none
//     can wait past it;
//   - calls that must give up when the store closes take s.ctx (cancelled
//     by Close) instead of a goroutine watching s.closing.
// Close waits for s.wg and then s.tasks once raft has shut down. The store
// tests check that nothing is left (goleak, TestMain).

// spawn runs fn on a goroutine counted in s.tasks; once Close has started
// waiting for them it runs fn on the caller's goroutine instead (fn then
// returns at once: the futures it waits on are answered by the close).
func (s *Store) spawn(fn func()) {
	s.tasksMu.Lock()
	if s.tasksClosed {
		s.tasksMu.Unlock()
		fn()
		return
	}
	s.tasks.Add(1)
	s.tasksMu.Unlock()
	go func() {
		defer s.tasks.Done()
		fn()
	}()
}

// waitTasks waits for every goroutine spawn started; later spawns run inline.
func (s *Store) waitTasks() {
	s.tasksMu.Lock()
	s.tasksClosed = true
	s.tasksMu.Unlock()
	s.tasks.Wait()
}

// bindToClose makes f's Error return raft.ErrRaftShutdown once the store
// closes, if raft has not answered it by then.
//
// Why: hashicorp/raft answers an Apply or Barrier future only while its main
// loop runs. A future still in raft's apply queue (buffered, BatchApplyCh)
// when raft shuts down is never answered, so whoever waits on it would wait
// forever. raft's futures have a field for exactly this, ShutdownCh, which
// Error also selects on; Apply leaves it unset. It is set here, before
// anyone waits on f, through reflection because the future types are
// unexported. A future without the field (raft's errorFuture, already
// answered) or with it set by raft is left as it is;
// TestFuturesBindToClose fails if a raft upgrade removes the field.
func (s *Store) bindToClose(f raft.Future) {
	v := reflect.ValueOf(f)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return
	}
	ch := v.Elem().FieldByName("ShutdownCh")
	if ch.IsValid() && ch.CanSet() && ch.Type() == reflect.TypeOf(s.closing) && ch.IsNil() {
		ch.Set(reflect.ValueOf(s.closing))
	}
}

// waitFuture waits for a raft future or ctx, whichever comes first. The
// goroutine that waits for a future left behind is counted in s.tasks and
// ends at Close at the latest.
func (s *Store) waitFuture(ctx context.Context, f raft.Future) (interface{}, error) {
	s.bindToClose(f)
	done := make(chan error, 1)
	s.spawn(func() { done <- f.Error() })
	select {
	case err := <-done:
		if err != nil {
			return nil, err
		}
		if af, ok := f.(raft.ApplyFuture); ok {
			return af.Response(), nil
		}
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
