//go:build unix

package e2e

import (
	"bufio"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestClusterScript runs scripts/cluster-smoke.sh and fails when it exits
// non-zero. Its output is streamed to t.Log line by line as it runs, so a slow
// or hanging step shows up in `go test -v` without waiting for the end.
func TestClusterScript(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real three-node cluster (scripts/cluster-smoke.sh); skipped with -short")
	}
	if _, err := exec.LookPath("curl"); err != nil {
		t.Fatalf("curl is not on PATH (%v): scripts/cluster-smoke.sh drives the cluster with curl; "+
			"install it, or run the suite with scripts/test.sh, which installs it", err)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Fatalf("bash is not on PATH: %v", err)
	}
	root := repoRoot(t)

	// Stop the script before the test binary's own deadline, so its trap still
	// gets to stop the cluster and the failure is reported here, not as a panic.
	ctx := context.Background()
	if deadline, ok := t.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, deadline.Add(-time.Minute))
		defer cancel()
	}
	cmd := exec.CommandContext(ctx, bash, filepath.Join(root, "scripts", "cluster-smoke.sh"))
	cmd.Dir = root
	// The script and its children get their own process group. On cancel the
	// whole group gets SIGTERM, which interrupts whatever curl or sleep runs
	// now and lets the script's EXIT trap run `cluster.sh stop`. The kvnode
	// processes are in sessions of their own and are stopped by that trap.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	// Bounds both the trap's work after a cancel and the wait for the output
	// pipe, should some process the script started still hold it open.
	cmd.WaitDelay = 45 * time.Second

	out, in := io.Pipe()
	cmd.Stdout = in
	cmd.Stderr = in
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		lines := bufio.NewScanner(out)
		lines.Buffer(make([]byte, 0, 64*1024), 1024*1024)
		for lines.Scan() {
			t.Log(lines.Text())
		}
		if err := lines.Err(); err != nil {
			t.Logf("(output no longer shown: %v)", err)
		}
		_, _ = io.Copy(io.Discard, out) // keep the writer from blocking
	}()

	runErr := cmd.Run()
	_ = in.Close()
	<-logged

	if runErr == nil {
		return
	}
	if ctx.Err() != nil {
		t.Fatalf("scripts/cluster-smoke.sh did not finish before the test deadline (%v); its output is above", runErr)
	}
	var exitErr *exec.ExitError
	if errors.As(runErr, &exitErr) {
		t.Fatalf("scripts/cluster-smoke.sh failed with exit status %d; its output is above", exitErr.ExitCode())
	}
	t.Fatalf("running scripts/cluster-smoke.sh: %v", runErr)
}

// repoRoot walks up from the working directory (the package directory under
// go test) to the directory that holds go.mod and scripts/cluster-smoke.sh.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("working directory: %v", err)
	}
	for {
		_, modErr := os.Stat(filepath.Join(dir, "go.mod"))
		_, scriptErr := os.Stat(filepath.Join(dir, "scripts", "cluster-smoke.sh"))
		if modErr == nil && scriptErr == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("no directory above the working directory holds go.mod and scripts/cluster-smoke.sh")
		}
		dir = parent
	}
}
