package watch

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/quorumkv/quorumkv/fsm"
)

func set(key string, index uint64) fsm.Change {
	return fsm.Change{Type: fsm.ChangeSet, Key: key, Value: []byte(`1`), Version: index, Index: index}
}

func newHub(t *testing.T, cfg Config) *Hub {
	t.Helper()
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// next takes what is available now (the test never waits for a change that
// is not there: a short context turns "nothing" into a failure message).
func next(t *testing.T, w *Watcher, max int) ([]fsm.Change, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	return w.Next(ctx, nil, max)
}

func keysOf(cs []fsm.Change) string {
	s := ""
	for _, c := range cs {
		s += fmt.Sprintf("%s@%d ", c.Key, c.Index)
	}
	return s
}

func TestOrderPrefixAndWholeEntries(t *testing.T) {
	h := newHub(t, Config{})
	h.Applied([]fsm.Change{set("a/1", 1)}, 1)
	h.Applied(nil, 2) // an entry that changed nothing
	h.Applied([]fsm.Change{set("a/2", 3), set("b/1", 3), set("a/3", 3)}, 3)
	h.Applied([]fsm.Change{set("a/4", 4), {Type: fsm.ChangeReset, Index: 5, Version: 5}}, 5)

	w, err := h.Subscribe("a/", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// max 2 must not split entry 3.
	got, err := next(t, w, 2)
	if err != nil || keysOf(got) != "a/1@1 a/2@3 a/3@3 " || w.Through() != 3 {
		t.Fatalf("first Next: %q, %v, through %d", keysOf(got), err, w.Through())
	}
	got, err = next(t, w, 100)
	if err != nil || keysOf(got) != "a/4@4 @5 " || w.Through() != 5 || w.Progress() != 5 {
		t.Fatalf("second Next: %q (a reset passes every prefix), %v, through %d", keysOf(got), err, w.Through())
	}
	if got, err := next(t, w, 100); !errors.Is(err, context.DeadlineExceeded) || len(got) != 0 {
		t.Fatalf("caught up: Next = %q, %v; want nothing until the deadline", keysOf(got), err)
	}

	// Resume from the middle: exactly the rest.
	w2, err := h.Subscribe("a/", 3)
	if err != nil {
		t.Fatal(err)
	}
	defer w2.Close()
	if got, _ := next(t, w2, 100); keysOf(got) != "a/4@4 @5 " {
		t.Fatalf("resume from 3: %q", keysOf(got))
	}

	// A start beyond the head waits for the log to pass it.
	w3, err := h.Subscribe("", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer w3.Close()
	h.Applied([]fsm.Change{set("a/5", 6)}, 6)
	h.Applied([]fsm.Change{set("a/6", 7)}, 7)
	h.Applied([]fsm.Change{set("a/7", 8)}, 8)
	if got, _ := next(t, w3, 100); keysOf(got) != "a/7@8 " {
		t.Fatalf("from 7: %q", keysOf(got))
	}
}

func TestNextWakesOnApply(t *testing.T) {
	h := newHub(t, Config{})
	w, err := h.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	done := make(chan []fsm.Change)
	go func() {
		got, _ := w.Next(context.Background(), nil, 10)
		done <- got
	}()
	h.Applied([]fsm.Change{set("k", 1)}, 1)
	if got := <-done; keysOf(got) != "k@1 " {
		t.Fatalf("woken Next: %q", keysOf(got))
	}
}

func TestCompactedAndLagged(t *testing.T) {
	h := newHub(t, Config{MaxEntries: 4, WatcherBuffer: 3})
	w, err := h.Subscribe("", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	h.Applied([]fsm.Change{set("a", 1)}, 1)
	if got, _ := next(t, w, 10); keysOf(got) != "a@1 " {
		t.Fatalf("got %q", keysOf(got))
	}
	for i := uint64(2); i <= 6; i++ {
		h.Applied([]fsm.Change{set("a", i)}, i)
	}
	if _, err := next(t, w, 10); !errors.Is(err, ErrLagged) || w.Through() != 1 {
		t.Fatalf("a watcher 5 changes behind with a buffer of 3: %v, through %d; want ErrLagged through 1", err, w.Through())
	}
	if st := h.Stats(); st.ClosedForLag != 1 || st.OldestIndex != 2 || st.RingEntries != 4 {
		t.Fatalf("stats %+v", st)
	}
	var ce *CompactedError
	if _, err := h.Subscribe("", 1); !errors.As(err, &ce) || ce.Oldest != 2 {
		t.Fatalf("Subscribe(from 1) after index 2 was evicted: %v", err)
	}
	w2, err := h.Subscribe("", 2)
	if err != nil {
		t.Fatalf("Subscribe(from the oldest index served): %v", err)
	}
	defer w2.Close()
	if got, _ := next(t, w2, 10); keysOf(got) != "a@3 a@4 a@5 a@6 " {
		t.Fatalf("from 2: %q", keysOf(got))
	}
}

func TestByteBoundEvictsWholeEntriesAsBase(t *testing.T) {
	h := newHub(t, Config{MaxBytes: 3 * (ChangeOverhead + 2)})
	h.Applied([]fsm.Change{set("a", 1), set("b", 1)}, 1)
	h.Applied([]fsm.Change{set("c", 2), set("d", 2)}, 2)
	// Four changes of 66 bytes in a 198-byte ring: "a" went, so index 1 is
	// no longer whole and is the oldest index served.
	if st := h.Stats(); st.RingEntries != 3 || st.OldestIndex != 1 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := h.Subscribe("", 0); err == nil {
		t.Fatal("Subscribe(from 0) with part of entry 1 evicted succeeded")
	}
}

func TestWatcherLimit(t *testing.T) {
	h := newHub(t, Config{MaxWatchers: 2})
	a, _ := h.Subscribe("", 0)
	b, _ := h.Subscribe("", 0)
	if _, err := h.Subscribe("", 0); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third watcher: %v, want ErrOverloaded", err)
	}
	a.Close()
	a.Close()
	c, err := h.Subscribe("", 0)
	if err != nil {
		t.Fatalf("after a Close: %v", err)
	}
	b.Close()
	c.Close()
	if st := h.Stats(); st.Watchers != 0 || st.Refused != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestCloseWakesWatchers(t *testing.T) {
	h := newHub(t, Config{})
	w, _ := h.Subscribe("", 0)
	defer w.Close()
	errc := make(chan error)
	go func() { _, err := w.Next(context.Background(), nil, 1); errc <- err }()
	h.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	// The FSM keeps applying until raft stops: that must not fail.
	h.Applied([]fsm.Change{set("k", 1)}, 1)
	h.Applied(nil, 2)
	h.Close()
	if _, err := h.Subscribe("", 0); !errors.Is(err, ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

func TestLaggingBeyondBufferWithoutEviction(t *testing.T) {
	h := newHub(t, Config{MaxEntries: 100, WatcherBuffer: 3})
	slow, _ := h.Subscribe("", 0)
	defer slow.Close()
	for i := uint64(1); i <= 5; i++ {
		h.Applied([]fsm.Change{set("k", i)}, i)
	}
	if _, err := next(t, slow, 10); !errors.Is(err, ErrLagged) || slow.Through() != 0 {
		t.Fatalf("5 changes behind with a buffer of 3 and falling back: %v through %d", err, slow.Through())
	}
	// A watcher that starts 5 behind but drains faster than changes arrive
	// is catching up and stays open.
	catching, _ := h.Subscribe("", 0)
	defer catching.Close()
	if got, err := next(t, catching, 2); err != nil || len(got) != 2 {
		t.Fatalf("catching up: %q, %v", keysOf(got), err)
	}
	h.Applied([]fsm.Change{set("k", 6)}, 6)
	if got, err := next(t, catching, 100); err != nil || len(got) != 4 {
		t.Fatalf("catching up: %q, %v", keysOf(got), err)
	}
}
