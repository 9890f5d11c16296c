package faultfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// FS is a fault-injecting passthrough mounted at Dir over a backing
// directory. All methods are safe for concurrent use.
type FS struct {
	Dir     string // the mount point
	backing string
	rootIno uint64 // the backing directory's inode number
	disk    *disk

	mu     sync.Mutex // guards server across remounts
	server *fuse.Server
	shared bool // Dir is bind-mounted on itself as a shared mount (see share)

	// off is non-nil from Cut to the end of PowerLoss, and closed when the
	// requests it holds may return.
	offMu sync.Mutex
	off   chan struct{}

	syncDelay atomic.Int64 // nanoseconds every fsync/fdatasync/fsyncdir blocks
	writeEIO  atomic.Bool
	syncEIO   atomic.Bool
	syncs     atomic.Int64 // completed syncs, for tests that a workload really syncs
	eios      atomic.Int64 // EIOs returned
	stalled   atomic.Int64 // syncs delayed
}

// Available reports why this process cannot mount a FUSE file system, or
// nil if it can: it needs root and /dev/fuse.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("faultfs needs root to mount FUSE file systems")
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("faultfs needs /dev/fuse: %w", err)
	}
	f.Close()
	return nil
}

// Mount serves backing at dir (both must exist; dir should be empty). The
// trash for entries removed since their directory's last sync is created
// beside backing, on the same file system, as backing+".faultfs-trash".
// Everything already in backing counts as durable.
func Mount(dir, backing string) (*FS, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	backing, err = filepath.Abs(backing)
	if err != nil {
		return nil, err
	}
	trash := backing + ".faultfs-trash"
	if err := os.MkdirAll(trash, 0o700); err != nil {
		return nil, err
	}
	f := &FS{Dir: dir, backing: backing, disk: newDisk(backing, trash)}
	if err := f.share(); err != nil {
		return nil, err
	}
	if err := f.mount(); err != nil {
		f.unshare()
		return nil, err
	}
	return f, nil
}

// share bind-mounts Dir on itself and makes that mount shared, so the FUSE
// mount made on it is shared too. Any process may create a mount namespace
// while the file system is mounted (ip netns exec makes one per command, a
// container runtime one per container, another test in the same run among
// them); the namespace gets a copy of every mount, and the kernel keeps a
// FUSE connection open while any copy exists. On a host whose / is a
// private mount a copy of a private mount never sees our unmount, so the
// connection, and unmount, would wait for that namespace to end. Copies of
// a shared mount are its peers (or, after ip netns exec turns everything
// into slaves, its slaves), and an unmount here reaches them all.
func (f *FS) share() error {
	if err := syscall.Mount(f.Dir, f.Dir, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("faultfs: bind %s on itself: %w", f.Dir, err)
	}
	if err := syscall.Mount("", f.Dir, "", syscall.MS_SHARED, ""); err != nil {
		syscall.Unmount(f.Dir, syscall.MNT_DETACH)
		return fmt.Errorf("faultfs: make %s shared: %w", f.Dir, err)
	}
	f.shared = true
	return nil
}

// unshare removes share's bind mount once the FUSE mount on it is gone.
func (f *FS) unshare() error {
	if !f.shared {
		return nil
	}
	f.shared = false
	if err := syscall.Unmount(f.Dir, syscall.MNT_DETACH); err != nil {
		return fmt.Errorf("faultfs: unmount the bind of %s: %w", f.Dir, err)
	}
	return nil
}

func (f *FS) mount() error {
	var st syscall.Stat_t
	if err := syscall.Stat(f.backing, &st); err != nil {
		return fmt.Errorf("faultfs: backing dir: %w", err)
	}
	f.rootIno = st.Ino
	lr := &fs.LoopbackRoot{Path: f.backing, Dev: uint64(st.Dev)}
	lr.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, fsys: f}
	}
	root := lr.NewNode(lr, nil, "", &st)
	lr.RootNode = root
	// No attribute or entry caching beyond a second, no writeback cache:
	// every write reaches the server as it is made, as to a disk.
	srv, err := fs.Mount(f.Dir, root, &fs.Options{MountOptions: fuse.MountOptions{
		FsName:      "faultfs:" + f.backing,
		Name:        "faultfs",
		DirectMount: true,
		Debug:       os.Getenv("FAULTFS_DEBUG") != "",
	}})
	if err != nil {
		return fmt.Errorf("faultfs: mount %s: %w", f.Dir, err)
	}
	f.mu.Lock()
	f.server = srv
	f.mu.Unlock()
	return nil
}

// unmount detaches the mount; it retries while the kernel reports it busy
// (a process that used it is still exiting) and finally detaches lazily.
func (f *FS) unmount() error {
	f.mu.Lock()
	srv := f.server
	f.server = nil
	f.mu.Unlock()
	if srv == nil {
		return nil
	}
	// umount(2) directly (go-fuse's Unmount runs fusermount, which a
	// machine may lack); the serve loop ends once the kernel ends the
	// connection, which it does only when no mount namespace holds a copy
	// of the mount any more (see share).
	var err error
	for i := 0; i < 50; i++ {
		if err = syscall.Unmount(f.Dir, 0); err != syscall.EBUSY {
			break
		}
		time.Sleep(100 * time.Millisecond) // a killed process is still closing its files
	}
	if err == syscall.EBUSY {
		err = syscall.Unmount(f.Dir, syscall.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("faultfs: unmount %s: %w", f.Dir, err)
	}
	done := make(chan struct{})
	go func() {
		srv.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		return fmt.Errorf("faultfs: %s unmounted, but its FUSE connection is still held 15 s later: another mount namespace "+
			"keeps a private copy of the mount, or a file on it is still open", f.Dir)
	}
}

// Unmount detaches the file system cleanly, as an orderly shutdown would:
// everything written is kept. Call it once every process using the mount
// has exited.
func (f *FS) Unmount() error {
	err := f.unmount()
	if uerr := f.unshare(); err == nil {
		err = uerr
	}
	f.disk.forget()
	return err
}

// PowerLoss simulates the machine losing power: it unmounts, drops every
// write not covered by a completed fsync/fdatasync of its file and every
// directory entry change (create, rename, unlink) not covered by an fsync
// of its directory, and mounts again, so nothing the "disk" lost survives in
// the kernel's page cache. Every process using the mount must have been
// killed first. Injected faults stay as they are.
//
// Without a Cut before the kill, the power goes at PowerLoss: syncs the
// killed process had in flight may still complete. Call Cut first to pick
// the instant exactly.
func (f *FS) PowerLoss() (Loss, error) {
	f.Cut()
	f.offMu.Lock()
	close(f.off) // release the requests Cut held: their process is gone
	f.offMu.Unlock()
	if err := f.unmount(); err != nil {
		return Loss{}, err
	}
	loss := f.disk.revert()
	f.offMu.Lock()
	f.off = nil
	f.offMu.Unlock()
	if err := f.mount(); err != nil {
		return loss, err
	}
	return loss, nil
}

// Cut is the instant the power goes: from now on no sync completes (one in
// flight that finishes later makes nothing durable) and every request
// blocks, as on a machine that stopped, until its process is killed or
// PowerLoss runs. Kill the processes using the mount, then call PowerLoss.
func (f *FS) Cut() {
	f.disk.mu.Lock() // orders the cut with the syncs' records (disk.synced)
	defer f.disk.mu.Unlock()
	f.offMu.Lock()
	defer f.offMu.Unlock()
	if f.off == nil {
		f.off = make(chan struct{})
	}
}

// powerOff returns the channel that is non-nil while the power is off.
func (f *FS) powerOff() chan struct{} {
	f.offMu.Lock()
	defer f.offMu.Unlock()
	return f.off
}

func (f *FS) isOff() bool { return f.powerOff() != nil }

// halt blocks a request while the power is off, until its process is
// killed (the kernel interrupts it) or PowerLoss releases it; it reports
// whether the request must fail.
func (f *FS) halt(ctx context.Context) syscall.Errno {
	off := f.powerOff()
	if off == nil {
		return 0
	}
	select {
	case <-off:
	case <-ctx.Done():
	}
	return syscall.EIO
}

// SetSyncDelay makes every fsync, fdatasync and directory fsync block for d
// before it runs (0: no delay).
func (f *FS) SetSyncDelay(d time.Duration) { f.syncDelay.Store(int64(d)) }

// SetWriteError makes writes, truncations and allocations fail with EIO
// (nothing is written) while on is true.
func (f *FS) SetWriteError(on bool) { f.writeEIO.Store(on) }

// SetSyncError makes fsync, fdatasync and directory fsync fail with EIO
// (nothing becomes durable) while on is true.
func (f *FS) SetSyncError(on bool) { f.syncEIO.Store(on) }

// Stats are counters since Mount.
type Stats struct {
	Syncs   int64 // completed syncs (files and directories)
	Stalled int64 // syncs held by SetSyncDelay
	EIOs    int64 // operations failed by SetWriteError/SetSyncError
}

func (f *FS) Stats() Stats {
	return Stats{Syncs: f.syncs.Load(), Stalled: f.stalled.Load(), EIOs: f.eios.Load()}
}

// beforeSync applies the sync faults: the delay, then the error.
func (f *FS) beforeSync(ctx context.Context) syscall.Errno {
	if errno := f.halt(ctx); errno != 0 {
		return errno
	}
	if d := time.Duration(f.syncDelay.Load()); d > 0 {
		f.stalled.Add(1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			// The kernel interrupted the request (the process was killed):
			// the sync never completed.
			t.Stop()
			return syscall.EINTR
		}
	}
	if f.syncEIO.Load() {
		f.eios.Add(1)
		return syscall.EIO
	}
	return 0
}
