package faultfs

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
)

// disk is what the "disk" would still hold after a power loss: for every
// file written since its last sync, an undo record (the bytes its writes
// replaced and its size at that sync), and every namespace change since the
// directories it touched were last synced. One mutex serialises the
// recording with the writes it records, so the undo order is the write
// order.
type disk struct {
	root  string // the backing directory
	trash string // unlinked and replaced entries wait here until durable

	mu      sync.Mutex
	files   map[uint64]*undoFile // by backing inode number
	journal []*nsOp              // namespace changes not yet durable, oldest first
	seq     int
}

// undoFile is one file's way back to its last synced state.
type undoFile struct {
	fd         int   // our own read-write descriptor of the backing file, for saving and reverting
	syncedSize int64 // the size at the last sync
	spans      []span
}

// span is what a write (or a truncation) replaced: the bytes at off before
// it, clipped to the synced size (bytes past it go with the final truncate).
type span struct {
	off  int64
	data []byte
}

// nsOp is one namespace change. It becomes durable once every directory in
// pending has been fsynced after it; until then a power loss undoes it.
// Entries are named by their directory's inode and their name, so an op
// inside a directory that was renamed later (a snapshot written in a
// temporary directory, then renamed) is still found.
type nsOp struct {
	kind    string // create, unlink, rename
	pending map[uint64]bool
	dir     uint64 // create: the new entry; unlink: the removed one; rename: the source
	name    string
	dir2    uint64 // rename: the destination
	name2   string
	trash   string // unlink, rename over an entry: where the old entry is kept
	oldDir  bool   // rename over an empty directory: recreate it on undo
	oldMode os.FileMode
}

func newDisk(root, trash string) *disk {
	return &disk{root: root, trash: trash, files: map[uint64]*undoFile{}}
}

// dirPaths maps every directory under the backing root to its path now.
func (d *disk) dirPaths() map[uint64]string {
	out := map[uint64]string{}
	filepath.WalkDir(d.root, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return nil
		}
		var st syscall.Stat_t
		if syscall.Lstat(p, &st) == nil {
			out[st.Ino] = p
		}
		return nil
	})
	return out
}

// record returns the undo record of the file open on fd, creating it (with
// the file's current size as its synced size) on the first change since
// the last sync. Called with d.mu held.
func (d *disk) record(fd int) (*undoFile, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if u := d.files[st.Ino]; u != nil {
		return u, nil
	}
	// A descriptor of our own that can read (the caller's may be
	// write-only) and outlives the caller's.
	own, err := syscall.Open("/proc/self/fd/"+strconv.Itoa(fd), syscall.O_RDWR|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	u := &undoFile{fd: own, syncedSize: st.Size}
	d.files[st.Ino] = u
	return u, nil
}

// save keeps the bytes of [off, off+n) that lie below the synced size.
func (u *undoFile) save(off, n int64) error {
	end := min(off+n, u.syncedSize)
	if off >= end {
		return nil
	}
	buf := make([]byte, end-off)
	got, err := syscall.Pread(u.fd, buf, off)
	if err != nil {
		return err
	}
	u.spans = append(u.spans, span{off: off, data: buf[:got]})
	return nil
}

// write records what pwrite(fd, p, off) replaces, then writes it.
func (d *disk) write(fd int, p []byte, off int64) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, err := d.record(fd)
	if err != nil {
		return 0, err
	}
	if err := u.save(off, int64(len(p))); err != nil {
		return 0, err
	}
	return syscall.Pwrite(fd, p, off)
}

// truncate records what ftruncate(fd, size) drops, then truncates.
func (d *disk) truncate(fd int, size int64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, err := d.record(fd)
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return err
	}
	if size < st.Size {
		if err := u.save(size, st.Size-size); err != nil {
			return err
		}
	}
	return syscall.Ftruncate(fd, size)
}

// allocate records the file (its size may grow), then runs fallocate.
func (d *disk) allocate(fd int, off, n int64, mode uint32) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, err := d.record(fd)
	if err != nil {
		return err
	}
	if mode&^1 != 0 { // anything but plain allocation (KEEP_SIZE) may change bytes
		if err := u.save(off, n); err != nil {
			return err
		}
	}
	return syscall.Fallocate(fd, mode, off, n)
}

// synced marks the file open on fd durable as it is now. The caller has
// just fsynced it; the kernel holds the inode's lock across a FUSE fsync,
// so no write to the same file ran in between.
// It reports false, changing nothing, if the power went (off) meanwhile:
// the check runs under the lock Cut takes.
func (d *disk) synced(fd int, off func() bool) (bool, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return false, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if off() {
		return false, nil
	}
	if u := d.files[st.Ino]; u != nil {
		syscall.Close(u.fd)
		delete(d.files, st.Ino)
	}
	return true, nil
}

// trashPath reserves a new name in the trash.
func (d *disk) trashPath() string {
	d.seq++
	return filepath.Join(d.trash, strconv.Itoa(d.seq))
}

func (d *disk) add(op *nsOp, dirs ...uint64) {
	op.pending = map[uint64]bool{}
	for _, ino := range dirs {
		op.pending[ino] = true
	}
	d.journal = append(d.journal, op)
}

// dirSynced makes every namespace change in directory ino durable that
// touched no other unsynced directory, unless the power went (off).
func (d *disk) dirSynced(ino uint64, off func() bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if off() {
		return false
	}
	keep := d.journal[:0]
	for _, op := range d.journal {
		delete(op.pending, ino)
		if len(op.pending) > 0 {
			keep = append(keep, op)
			continue
		}
		if op.trash != "" {
			os.RemoveAll(op.trash)
		}
	}
	clear(d.journal[len(keep):])
	d.journal = keep
	return true
}

// Loss is what a power loss dropped.
type Loss struct {
	Files     int   // files whose content went back to its last sync
	Bytes     int64 // bytes rewritten or cut off
	Entries   int   // directory entry changes undone
	Anomalies []string
}

func (l Loss) String() string {
	s := fmt.Sprintf("%d files reverted (%d bytes), %d directory changes undone", l.Files, l.Bytes, l.Entries)
	if len(l.Anomalies) > 0 {
		s += fmt.Sprintf("; %d could not be undone exactly", len(l.Anomalies))
	}
	return s
}

// revert drops everything not covered by a sync: namespace changes newest
// first, then every file's content. It runs with nothing mounted on the
// backing directory, so no request races it.
func (d *disk) revert() Loss {
	d.mu.Lock()
	defer d.mu.Unlock()
	var loss Loss
	note := func(err error) {
		if err != nil {
			loss.Anomalies = append(loss.Anomalies, err.Error())
		}
	}
	for i := len(d.journal) - 1; i >= 0; i-- {
		op := d.journal[i]
		loss.Entries++
		// Directories move as renames are undone: look them up afresh.
		dirs := d.dirPaths()
		at := func(dir uint64, name string) (string, bool) {
			p, ok := dirs[dir]
			if !ok {
				// Its own creation was undone (or it was removed): the
				// entry went with it.
				return "", false
			}
			return filepath.Join(p, name), true
		}
		switch op.kind {
		case "create":
			if p, ok := at(op.dir, op.name); ok {
				note(os.RemoveAll(p))
			}
		case "unlink":
			if p, ok := at(op.dir, op.name); ok {
				note(os.Rename(op.trash, p))
			}
		case "rename":
			from, ok1 := at(op.dir, op.name)
			to, ok2 := at(op.dir2, op.name2)
			if !ok1 || !ok2 {
				continue
			}
			if err := os.Rename(to, from); err != nil {
				note(err)
				continue
			}
			switch {
			case op.trash != "":
				note(os.Rename(op.trash, to))
			case op.oldDir:
				note(os.Mkdir(to, op.oldMode))
			}
		}
	}
	d.journal = nil
	inos := make([]uint64, 0, len(d.files))
	for ino := range d.files {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	for _, ino := range inos {
		u := d.files[ino]
		loss.Files++
		for i := len(u.spans) - 1; i >= 0; i-- {
			s := u.spans[i]
			if _, err := syscall.Pwrite(u.fd, s.data, s.off); err != nil {
				note(fmt.Errorf("restore %d bytes at %d of inode %d: %w", len(s.data), s.off, ino, err))
			}
			loss.Bytes += int64(len(s.data))
		}
		var st syscall.Stat_t
		if err := syscall.Fstat(u.fd, &st); err == nil && st.Size > u.syncedSize {
			loss.Bytes += st.Size - u.syncedSize
		}
		note(syscall.Ftruncate(u.fd, u.syncedSize))
		// The backing file system's own durability is not under test.
		syscall.Fsync(u.fd)
		syscall.Close(u.fd)
	}
	d.files = map[uint64]*undoFile{}
	note(emptyDir(d.trash))
	return loss
}

// forget drops all undo state (on a clean unmount: everything is kept).
func (d *disk) forget() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, u := range d.files {
		syscall.Close(u.fd)
	}
	d.files = map[uint64]*undoFile{}
	d.journal = nil
	emptyDir(d.trash)
}

func emptyDir(dir string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
