package store

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running once
// they have all finished: every store a test opens is closed, and Close ends
// every goroutine the store started (tasks.go). Nothing needs ignoring: raft,
// its transport and bolt stop their goroutines when the store closes them.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
