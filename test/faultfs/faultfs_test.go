package faultfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// mountT mounts a fresh faultfs for one test, or skips when FUSE cannot be
// used here (not root, no /dev/fuse).
func mountT(t *testing.T) *FS {
	t.Helper()
	if err := Available(); err != nil {
		t.Skip(err)
	}
	base := t.TempDir()
	dir, backing := filepath.Join(base, "mnt"), filepath.Join(base, "backing")
	for _, d := range []string{dir, backing} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Mount(dir, backing)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := f.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f
}

func (f *FS) path(name string) string { return filepath.Join(f.Dir, name) }

func syncPath(t *testing.T, p string) {
	t.Helper()
	h, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Sync(); err != nil {
		t.Fatalf("fsync %s: %v", p, err)
	}
}

// writeFile creates or truncates name with data; with sync it fsyncs the
// file (not its directory).
func writeFile(t *testing.T, p string, data []byte, sync bool) {
	t.Helper()
	h, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(data); err != nil {
		t.Fatal(err)
	}
	if sync {
		if err := h.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func powerLoss(t *testing.T, f *FS) Loss {
	t.Helper()
	loss, err := f.PowerLoss()
	if err != nil {
		t.Fatal(err)
	}
	if len(loss.Anomalies) > 0 {
		t.Errorf("revert anomalies: %v", loss.Anomalies)
	}
	t.Logf("power loss: %s", loss)
	return loss
}

func wantContent(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s holds %q, want %q", filepath.Base(p), trunc(got), trunc(want))
	}
}

func wantMissing(t *testing.T, p string) {
	t.Helper()
	if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("%s: want it gone after the power loss, got err %v", filepath.Base(p), err)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return append(b[:40:40], "..."...)
	}
	return b
}

func TestUnsyncedWriteIsLost(t *testing.T) {
	f := mountT(t)
	p := f.path("a")
	writeFile(t, p, []byte("durable"), true)
	syncPath(t, f.Dir)
	writeFile(t, p, []byte("volatile, never synced"), false)
	wantContent(t, p, []byte("volatile, never synced")) // visible before the loss
	powerLoss(t, f)
	wantContent(t, p, []byte("durable"))
}

func TestSyncedWriteIsKept(t *testing.T) {
	f := mountT(t)
	p := f.path("a")
	writeFile(t, p, []byte("first"), true)
	syncPath(t, f.Dir)
	h, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("FI"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte(" and more"), 5); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Fdatasync(int(h.Fd())); err != nil {
		t.Fatal(err)
	}
	// Written after the sync: lost, while the synced bytes stay.
	if _, err := h.WriteAt([]byte("XX"), 2); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte(", lost tail"), 14); err != nil {
		t.Fatal(err)
	}
	h.Close()
	powerLoss(t, f)
	wantContent(t, p, []byte("FIrst and more"))
}

func TestOverwritesRevertInOrder(t *testing.T) {
	f := mountT(t)
	p := f.path("a")
	writeFile(t, p, bytes.Repeat([]byte("0"), 64), true)
	syncPath(t, f.Dir)
	h, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Overlapping writes, a truncation below the synced size and a
	// re-extension: undone newest first, the file is what was synced.
	for i, w := range []struct {
		off  int64
		data string
	}{{10, "aaaaaaaaaa"}, {15, "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"}, {0, "c"}} {
		if _, err := h.WriteAt([]byte(w.data), w.off); err != nil {
			t.Fatalf("write %d: %v", i, err)
		}
	}
	if err := h.Truncate(20); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("dddd"), 30); err != nil {
		t.Fatal(err)
	}
	h.Close()
	powerLoss(t, f)
	wantContent(t, p, bytes.Repeat([]byte("0"), 64))
}

func TestCreateNotDurableWithoutDirSync(t *testing.T) {
	f := mountT(t)
	// The file's own fsync makes its data durable, but not its name.
	writeFile(t, f.path("new"), []byte("synced data"), true)
	if err := os.Mkdir(f.path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.path("sub/inner"), []byte("x"), true)
	syncPath(t, f.path("sub")) // inner's entry is durable, sub's is not
	powerLoss(t, f)
	wantMissing(t, f.path("new"))
	wantMissing(t, f.path("sub"))
}

func TestCreateDurableWithDirSync(t *testing.T) {
	f := mountT(t)
	if err := os.Mkdir(f.path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.path("sub/inner"), []byte("kept"), true)
	syncPath(t, f.path("sub"))
	syncPath(t, f.Dir)
	powerLoss(t, f)
	wantContent(t, f.path("sub/inner"), []byte("kept"))
}

// The write-temp-then-rename pattern: the rename is durable only once the
// directory is synced.
func TestRenameNotDurableWithoutDirSync(t *testing.T) {
	f := mountT(t)
	writeFile(t, f.path("config"), []byte("old"), true)
	writeFile(t, f.path("config.tmp"), []byte("new"), true)
	syncPath(t, f.Dir)
	if err := os.Rename(f.path("config.tmp"), f.path("config")); err != nil {
		t.Fatal(err)
	}
	wantContent(t, f.path("config"), []byte("new"))
	powerLoss(t, f)
	wantContent(t, f.path("config"), []byte("old"))
	wantContent(t, f.path("config.tmp"), []byte("new"))

	if err := os.Rename(f.path("config.tmp"), f.path("config")); err != nil {
		t.Fatal(err)
	}
	syncPath(t, f.Dir)
	powerLoss(t, f)
	wantContent(t, f.path("config"), []byte("new"))
	wantMissing(t, f.path("config.tmp"))
}

func TestRenameAcrossDirsNeedsBothSynced(t *testing.T) {
	f := mountT(t)
	for _, d := range []string{"a", "b"} {
		if err := os.Mkdir(f.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, f.path("a/x"), []byte("x"), true)
	syncPath(t, f.path("a"))
	syncPath(t, f.Dir)
	if err := os.Rename(f.path("a/x"), f.path("b/y")); err != nil {
		t.Fatal(err)
	}
	syncPath(t, f.path("b")) // a is not synced: the move is not durable
	powerLoss(t, f)
	wantContent(t, f.path("a/x"), []byte("x"))
	wantMissing(t, f.path("b/y"))
}

func TestUnlinkNotDurableWithoutDirSync(t *testing.T) {
	f := mountT(t)
	writeFile(t, f.path("f"), []byte("synced"), true)
	if err := os.Mkdir(f.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncPath(t, f.Dir)
	if err := os.Remove(f.path("f")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(f.path("d")); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, f.path("f"))
	powerLoss(t, f)
	wantContent(t, f.path("f"), []byte("synced"))
	if st, err := os.Stat(f.path("d")); err != nil || !st.IsDir() {
		t.Fatalf("removed directory not restored: %v", err)
	}

	if err := os.Remove(f.path("f")); err != nil {
		t.Fatal(err)
	}
	syncPath(t, f.Dir)
	powerLoss(t, f)
	wantMissing(t, f.path("f"))
}

func TestRmdirOfNonEmptyDirFails(t *testing.T) {
	f := mountT(t)
	if err := os.Mkdir(f.path("d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, f.path("d/x"), nil, false)
	if err := syscall.Rmdir(f.path("d")); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir of a non-empty dir: %v, want ENOTEMPTY", err)
	}
	if err := syscall.Unlink(f.path("d")); err != syscall.EISDIR && err != syscall.EPERM {
		t.Fatalf("unlink of a dir: %v, want EISDIR", err)
	}
}

func TestTruncateByPathReverts(t *testing.T) {
	f := mountT(t)
	writeFile(t, f.path("f"), []byte("0123456789"), true)
	syncPath(t, f.Dir)
	if err := os.Truncate(f.path("f"), 3); err != nil {
		t.Fatal(err)
	}
	powerLoss(t, f)
	wantContent(t, f.path("f"), []byte("0123456789"))
	// O_TRUNC on open is a truncation too.
	writeFile(t, f.path("f"), []byte("ab"), false)
	powerLoss(t, f)
	wantContent(t, f.path("f"), []byte("0123456789"))
}

func TestSyncDelay(t *testing.T) {
	f := mountT(t)
	writeFile(t, f.path("f"), []byte("x"), false)
	const d = 300 * time.Millisecond
	f.SetSyncDelay(d)
	start := time.Now()
	syncPath(t, f.path("f"))
	if took := time.Since(start); took < d {
		t.Fatalf("fsync returned after %s with a %s delay", took, d)
	}
	f.SetSyncDelay(0)
	if st := f.Stats(); st.Stalled != 1 {
		t.Fatalf("stats %+v, want one stalled sync", st)
	}
}

func TestWriteAndSyncErrors(t *testing.T) {
	f := mountT(t)
	writeFile(t, f.path("f"), []byte("synced"), true)
	syncPath(t, f.Dir)
	h, err := os.OpenFile(f.path("f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()

	f.SetWriteError(true)
	if _, err := h.WriteAt([]byte("X"), 0); !errors.Is(err, syscall.EIO) {
		t.Fatalf("write with write errors on: %v, want EIO", err)
	}
	f.SetWriteError(false)
	wantContent(t, f.path("f"), []byte("synced"))

	if _, err := h.WriteAt([]byte("S"), 0); err != nil {
		t.Fatal(err)
	}
	f.SetSyncError(true)
	if err := h.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with sync errors on: %v, want EIO", err)
	}
	d, err := os.Open(f.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Sync(); !errors.Is(err, syscall.EIO) {
		t.Fatalf("directory fsync with sync errors on: %v, want EIO", err)
	}
	d.Close()
	f.SetSyncError(false)
	if st := f.Stats(); st.EIOs != 3 {
		t.Fatalf("stats %+v, want 3 EIOs", st)
	}
	h.Close()
	// A failed fsync made nothing durable.
	powerLoss(t, f)
	wantContent(t, f.path("f"), []byte("synced"))
}

// boltChildEnv makes the test binary a bbolt client (see TestMain).
const boltChildEnv = "FAULTFS_BOLT_CHILD"

func TestMain(m *testing.M) {
	if op := os.Getenv(boltChildEnv); op != "" {
		os.Exit(boltChild(op, os.Args[len(os.Args)-1]))
	}
	os.Exit(m.Run())
}

// boltChild runs one bbolt operation on the database at p: "put-sync" and
// "put-nosync" commit key k1 or k2, "get" prints the bucket.
func boltChild(op, p string) int {
	db, err := bbolt.Open(p, 0o600, &bbolt.Options{Timeout: time.Second, ReadOnly: op == "get"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	switch op {
	case "get":
		db.View(func(tx *bbolt.Tx) error {
			if b := tx.Bucket([]byte("b")); b != nil {
				b.ForEach(func(k, v []byte) error { fmt.Printf("%s=%s\n", k, v); return nil })
			}
			return nil
		})
		return 0
	case "put-sync", "put-nosync":
		db.NoSync = op == "put-nosync"
		key, val := "k1", "durable"
		if db.NoSync {
			key, val = "k2", "never-synced"
		}
		err = db.Update(func(tx *bbolt.Tx) error {
			b, err := tx.CreateBucketIfNotExists([]byte("b"))
			if err != nil {
				return err
			}
			return b.Put([]byte(key), []byte(val))
		})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// bbolt (the raft log's store) through the mount: a committed transaction
// survives the power loss; one committed with NoSync does not, and the
// database still opens. The file's creation needs its directory synced.
//
// bbolt reads through mmap, so it runs in a child process: a page fault on
// a FUSE mount served by the faulting process can deadlock it (the fault
// holds a thread the Go scheduler cannot preempt; a stop-the-world then
// waits for it while the serving goroutines are stopped).
func TestBoltSurvivesPowerLoss(t *testing.T) {
	f := mountT(t)
	p := f.path("bolt.db")
	run := func(op string) string {
		t.Helper()
		cmd := exec.Command(os.Args[0], "-test.run=^$", p)
		cmd.Env = append(os.Environ(), boltChildEnv+"="+op)
		out, err := cmd.Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("bolt %s: %v: %s", op, err, ee.Stderr)
			}
			t.Fatalf("bolt %s: %v", op, err)
		}
		return strings.TrimSpace(string(out))
	}
	run("put-sync")
	syncPath(t, f.Dir)
	run("put-nosync")
	if got := run("get"); got != "k1=durable\nk2=never-synced" {
		t.Fatalf("before the loss: %q", got)
	}
	loss := powerLoss(t, f)
	if loss.Files == 0 {
		t.Fatal("the NoSync commit left nothing to revert")
	}
	if got := run("get"); got != "k1=durable" {
		t.Fatalf("after the loss: %q, want only k1", got)
	}
}

// BenchmarkSyncedWrite is a 4 KiB pwrite and fdatasync, as a raft log
// append does, through the mount and directly on the backing directory.
// Run it with and without -race to see what serving FUSE from a race
// build costs (DESIGN.md).
func BenchmarkSyncedWrite(b *testing.B) {
	if err := Available(); err != nil {
		b.Skip(err)
	}
	base := b.TempDir()
	dir, backing := filepath.Join(base, "mnt"), filepath.Join(base, "backing")
	os.Mkdir(dir, 0o755)
	os.Mkdir(backing, 0o755)
	f, err := Mount(dir, backing)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Unmount()
	for _, c := range []struct{ name, dir string }{{"fuse", dir}, {"direct", backing}} {
		b.Run(c.name, func(b *testing.B) {
			h, err := os.Create(filepath.Join(c.dir, "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer h.Close()
			buf := bytes.Repeat([]byte("x"), 4096)
			b.SetBytes(int64(len(buf)))
			for i := 0; b.Loop(); i++ {
				if _, err := h.WriteAt(buf, int64(i%1024)*4096); err != nil {
					b.Fatal(err)
				}
				if err := syscall.Fdatasync(int(h.Fd())); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// The snapshot pattern of raft's FileSnapshotStore: files written and
// synced in a temporary directory, the directory renamed and its parent
// synced. The files' entries were never made durable in their own
// directory, so the renamed directory comes back empty.
func TestEntriesInRenamedDirNeedThatDirSynced(t *testing.T) {
	f := mountT(t)
	if err := os.Mkdir(f.path("snaps"), 0o755); err != nil {
		t.Fatal(err)
	}
	syncPath(t, f.Dir)
	for _, synced := range []bool{false, true} {
		tmp, final := f.path("snaps/1.tmp"), f.path("snaps/1")
		os.RemoveAll(final)
		if err := os.Mkdir(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(tmp, "state.bin"), []byte("state"), true)
		if err := os.Rename(tmp, final); err != nil {
			t.Fatal(err)
		}
		syncPath(t, f.path("snaps"))
		if synced {
			syncPath(t, final)
		}
		powerLoss(t, f)
		if synced {
			wantContent(t, filepath.Join(final, "state.bin"), []byte("state"))
		} else {
			wantMissing(t, filepath.Join(final, "state.bin"))
		}
	}
}

// After Cut nothing becomes durable: a sync issued then blocks until the
// power loss, fails, and its data is gone.
func TestCutStopsSyncs(t *testing.T) {
	f := mountT(t)
	writeFile(t, f.path("f"), []byte("before"), true)
	syncPath(t, f.Dir)
	h, err := os.OpenFile(f.path("f"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt([]byte("AFTER!"), 0); err != nil {
		t.Fatal(err)
	}
	f.Cut()
	done := make(chan error, 1)
	go func() {
		err := h.Sync()
		h.Close() // as the killed process's descriptors close
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("fsync after the cut returned (%v) before the power loss", err)
	case <-time.After(200 * time.Millisecond):
	}
	loss, err := f.PowerLoss()
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err == nil {
		t.Fatal("fsync after the cut succeeded")
	}
	t.Logf("power loss: %s", loss)
	wantContent(t, f.path("f"), []byte("before"))
}

// A mount namespace made while the file system is mounted (here by
// unshare, as ip netns exec and container runtimes do, by another test of
// the same run) holds a copy of the mount. The power loss's remount and the
// final unmount must reach that copy instead of waiting for the namespace
// to end: on a host whose / is private, a private copy would keep the FUSE
// connection open and both would fail after their 15 s wait.
func TestUnmountReachesOtherMountNamespaces(t *testing.T) {
	f := mountT(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("needs unshare(1) from util-linux")
	}
	writeFile(t, f.path("a"), []byte("synced"), true)
	syncPath(t, f.Dir)

	// The propagation ip netns exec gives its namespaces: every mount a
	// slave of the one it copies.
	ns := exec.Command("unshare", "--mount", "--propagation", "slave", "sleep", "600")
	if err := ns.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ns.Process.Kill()
		ns.Wait()
	})
	// fuseMounts lists the devices (major:minor, one per connection) of
	// the FUSE mounts at f.Dir in the mount namespace of pid. (The bind
	// under it stays in the other namespace after Unmount: its parent
	// mount is not shared, so its unmount does not propagate. It holds no
	// connection.)
	fuseMounts := func(pid string) []string {
		b, err := os.ReadFile("/proc/" + pid + "/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		var devs []string
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 5 || fields[4] != f.Dir {
				continue
			}
			if _, after, ok := strings.Cut(line, " - "); ok && strings.HasPrefix(after, "fuse") {
				devs = append(devs, fields[2])
			}
		}
		return devs
	}
	other := fmt.Sprint(ns.Process.Pid)
	// sameMounts reports whether the other namespace has exactly our FUSE
	// mount at f.Dir, and not a stale copy of an earlier one.
	sameMounts := func() bool {
		return fmt.Sprint(fuseMounts(other)) == fmt.Sprint(fuseMounts("self"))
	}
	// Wait until unshare has made the namespace, set its propagation and
	// run sleep in it (before that its mounts are ours).
	waitFor(t, func() bool {
		comm, _ := os.ReadFile("/proc/" + other + "/comm")
		theirs, _ := os.Readlink("/proc/" + other + "/ns/mnt")
		ours, _ := os.Readlink("/proc/self/ns/mnt")
		return string(comm) == "sleep\n" && theirs != ours
	}, "unshare to run sleep in a new mount namespace")
	if !sameMounts() {
		t.Fatalf("the new namespace has FUSE mounts %v at %s, want a copy of ours %v", fuseMounts(other), f.Dir, fuseMounts("self"))
	}

	powerLoss(t, f)
	wantContent(t, f.path("a"), []byte("synced"))
	if !sameMounts() {
		t.Fatalf("after the power loss the other namespace has FUSE mounts %v at %s, want ours %v",
			fuseMounts(other), f.Dir, fuseMounts("self"))
	}
	if err := f.Unmount(); err != nil {
		t.Fatal(err)
	}
	if devs := fuseMounts(other); len(devs) != 0 {
		t.Fatalf("after Unmount the other namespace still has FUSE mounts %v at %s", devs, f.Dir)
	}
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
