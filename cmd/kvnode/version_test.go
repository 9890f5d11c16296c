package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/quorumkv/quorumkv/fsm"
)

// TestVersionFlagShowsTheStampedBuild builds kvnode the way release builds
// do (scripts/docker-build.sh, the Dockerfile), stamping the version and
// revision with -ldflags -X, and checks that --version prints them and the
// formats the build supports.
func TestVersionFlagShowsTheStampedBuild(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "kvnode")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	const pkg = "github.com/quorumkv/quorumkv/internal/version"
	ldflags := "-X " + pkg + ".version=v9.8.7-test -X " + pkg + ".revision=0123abcd"
	if out, err := exec.Command(goTool, "build", "-ldflags", ldflags, "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("kvnode --version: %v", err)
	}
	f := fsm.SupportedFormats()
	want := "kvnode 9.8.7-test (" + runtime.Version() + ", revision 0123abcd)\n"
	if got := string(out); !strings.HasPrefix(got, want) || !strings.Contains(got, "ops "+f.Ops) ||
		!strings.Contains(got, fmt.Sprintf("snapshot format %d-%d", f.Snapshot.Min, f.Snapshot.Max)) {
		t.Fatalf("kvnode --version printed %q; want it to start with %q and name ops %s and snapshot formats %+v", got, want, f.Ops, f.Snapshot)
	}
}
