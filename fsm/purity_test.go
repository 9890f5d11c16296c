package fsm

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The FSM must never read the clock: replicas apply the same log at different
// wall times and must reach the same state. Forbid the import outright.
func TestNoClockImports(t *testing.T) {
	forbidden := map[string]string{
		"time":      "Apply must not read the clock; time enters through Command.Now",
		"math/rand": "Apply must be deterministic",
		"net":       "the FSM does no network I/O",
		"net/http":  "the FSM knows nothing of HTTP",
		"os":        "the FSM does no I/O except through the snapshot sink and reader",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		checked++
		for _, imp := range file.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbidden[path]; bad || strings.HasPrefix(path, "math/rand/") {
				t.Errorf("%s imports %q: %s", name, path, why)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package files found")
	}
}

// Liveness depends only on the command's Now, never on the wall clock: an
// entry that expired decades ago is live to a command whose Now precedes its
// expiry, and an entry expiring in the far future is expired to a command whose
// Now is later still.
func TestOutcomesDependOnlyOnCommandNow(t *testing.T) {
	const (
		past   = int64(1_000)                  // 1970
		future = int64(32_503_680_000_000)     // year 3000
		later  = int64(32_503_680_000_000 + 1) // after that
	)
	f := New()
	runSteps(t, f, 1, []step{
		{setCmd("old", "1", past, 0), SetResult{Created: true, Revision: 1, ExpiresAt: past}},
		{setCmd("old", "2", past, past-1), SetResult{Created: false, Revision: 2, ExpiresAt: past}},
		{deleteCmd("old", past-1), DeleteResult{Deleted: true, Revision: 3}},
		{setCmd("new", "1", future, past-1), SetResult{Created: true, Revision: 4, ExpiresAt: future}},
		{expireCmd(future-1, ExpireItem{"new", 4}), ExpireResult{Expired: 0}},
		{setCmd("new", "2", future, later), SetResult{Created: true, Revision: 6, ExpiresAt: future}},
		{expireCmd(later, ExpireItem{"new", 6}), ExpireResult{Expired: 1}},
	})
	if f.Len() != 0 {
		t.Fatalf("Len = %d, want 0", f.Len())
	}
}
