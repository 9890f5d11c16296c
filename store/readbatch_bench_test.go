package store

import (
	"fmt"
	"log/slog"
	"syscall"
	"testing"
	"time"
)

// BenchmarkFollowerReadAfterWrite: a write through the leader, then one
// linearizable GET on a follower (only the GET is timed), on an in-process
// three-node cluster, at three CommitTimeouts. path=wait is the follower
// waiting for its own state machine to reach the read index (what every
// follower read did before the leader could answer); path=read is Store.Get.
// idle-cpu-% is the process's CPU (three nodes) over 2 s without requests:
// what a shorter CommitTimeout costs whether or not anyone reads.
//
//	go test ./store -run x -bench FollowerReadAfterWrite -benchtime 40x
func BenchmarkFollowerReadAfterWrite(b *testing.B) {
	for _, ct := range []time.Duration{50 * time.Millisecond, 5 * time.Millisecond, time.Millisecond} {
		for _, path := range []string{"wait", "read"} {
			b.Run(fmt.Sprintf("commit-timeout=%v/path=%s", ct, path), func(b *testing.B) {
				c := newTestCluster(b, 3, func(cfg *Config) {
					cfg.CommitTimeout = ct
					cfg.Logger = slog.New(slog.DiscardHandler)
				})
				leader := c.leader()
				f := c.followers(leader)[0]
				mustSetB(b, leader, "k", 0)
				idle := -1.0
				if path == "wait" {
					idle = idleCPU(2 * time.Second)
				}
				b.ResetTimer()
				for i := range b.N {
					b.StopTimer()
					mustSetB(b, leader, "k", i)
					b.StartTimer()
					if path == "wait" {
						at, err := f.store.readIndex(ctxTimeout(b, 5*time.Second), nil)
						if err == nil {
							err = f.store.fsm.WaitApplied(ctxTimeout(b, 5*time.Second), at.index)
						}
						if err != nil {
							b.Fatal(err)
						}
					} else if it, err := f.store.Get(ctxTimeout(b, 5*time.Second), "k", Linearizable); err != nil || string(it.Value) != fmt.Sprint(i) {
						b.Fatalf("read %s, %v after writing %d", it.Value, err, i)
					}
				}
				if idle >= 0 {
					b.ReportMetric(idle, "idle-cpu-%")
				}
			})
		}
	}
}

func mustSetB(b *testing.B, nd *testNode, key string, v int) {
	b.Helper()
	if _, err := nd.store.Set(ctxTimeout(b, 5*time.Second), key, []byte(fmt.Sprint(v)), 0); err != nil {
		b.Fatal(err)
	}
}

// idleCPU returns this process's CPU use over d as a percentage of one core.
func idleCPU(d time.Duration) float64 {
	used := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	c0, w0 := used(), time.Now()
	time.Sleep(d)
	return 100 * float64(used()-c0) / float64(time.Since(w0))
}
