package faultfs

import (
	"context"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// node is a loopback node whose changes are recorded on the disk model:
// file writes go through file, namespace changes are journalled here, and
// directory fsyncs arrive through dirHandle.
type node struct {
	fs.LoopbackNode
	fsys *FS
}

func (n *node) rel() string     { return n.Path(nil) }
func (n *node) backing() string { return filepath.Join(n.fsys.backing, n.rel()) }

// ino is the backing directory's inode number (the FUSE root's own number
// is 1, whatever the backing directory's is).
func (n *node) ino() uint64 {
	if n.IsRoot() {
		return n.fsys.rootIno
	}
	return n.StableAttr().Ino
}

func (n *node) wrap(fh fs.FileHandle) fs.FileHandle {
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return fh
	}
	fd, ok := lf.PassthroughFd()
	if !ok {
		return fh
	}
	return &file{LoopbackFile: lf, fd: fd, fsys: n.fsys}
}

var (
	_ fs.NodeCreater         = (*node)(nil)
	_ fs.NodeOpener          = (*node)(nil)
	_ fs.NodeMkdirer         = (*node)(nil)
	_ fs.NodeMknoder         = (*node)(nil)
	_ fs.NodeSymlinker       = (*node)(nil)
	_ fs.NodeLinker          = (*node)(nil)
	_ fs.NodeUnlinker        = (*node)(nil)
	_ fs.NodeRmdirer         = (*node)(nil)
	_ fs.NodeRenamer         = (*node)(nil)
	_ fs.NodeSetattrer       = (*node)(nil)
	_ fs.NodeOpendirHandler  = (*node)(nil)
	_ fs.NodeFsyncer         = (*node)(nil)
	_ fs.FileFsyncdirer      = (*dirHandle)(nil)
	_ fs.FileReaddirenter    = (*dirHandle)(nil)
	_ fs.FileWriter          = (*file)(nil)
	_ fs.FileFsyncer         = (*file)(nil)
	_ fs.FileSetattrer       = (*file)(nil)
	_ fs.FileAllocater       = (*file)(nil)
	_ fs.NodeCopyFileRanger  = (*node)(nil)
	_ fs.NodeGetattrer       = (*node)(nil)
	_ fs.InodeEmbedder       = (*node)(nil)
	_ fs.FileReleasedirer    = (*dirHandle)(nil)
	_ fs.FileSeekdirer       = (*dirHandle)(nil)
	_ fs.FileHandle          = (*file)(nil)
	_ fs.FilePassthroughFder = (*file)(nil)
)

func (n *node) created(name string) {
	d := n.fsys.disk
	d.mu.Lock()
	d.add(&nsOp{kind: "create", dir: n.ino(), name: name}, n.ino())
	d.mu.Unlock()
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if errno := n.fsys.halt(ctx); errno != 0 {
		return nil, nil, 0, errno
	}
	ch, fh, ff, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno == 0 {
		n.created(name)
		fh = n.wrap(fh)
	}
	return ch, fh, ff, errno
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	trunc := flags&syscall.O_TRUNC != 0
	fh, ff, errno := n.LoopbackNode.Open(ctx, flags&^syscall.O_TRUNC)
	if errno != 0 {
		return fh, ff, errno
	}
	fh = n.wrap(fh)
	if f, ok := fh.(*file); ok && trunc {
		if errno := f.truncate(0); errno != 0 {
			f.Release(ctx)
			return nil, 0, errno
		}
	}
	return fh, ff, 0
}

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if errno := n.fsys.halt(ctx); errno != 0 {
		return nil, errno
	}
	ch, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.created(name)
	}
	return ch, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.created(name)
	}
	return ch, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.created(name)
	}
	return ch, errno
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	ch, errno := n.LoopbackNode.Link(ctx, target, name, out)
	if errno == 0 {
		n.created(name)
	}
	return ch, errno
}

// remove moves an entry into the trash instead of deleting it, so a power
// loss before its directory is synced can put it back.
func (n *node) remove(name string, dir bool) syscall.Errno {
	d := n.fsys.disk
	p := filepath.Join(n.backing(), name)
	if dir {
		ents, err := os.ReadDir(p)
		if err != nil {
			return fs.ToErrno(err)
		}
		if len(ents) > 0 {
			return syscall.ENOTEMPTY
		}
	} else {
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return fs.ToErrno(err)
		}
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			return syscall.EISDIR
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	op := &nsOp{kind: "unlink", dir: n.ino(), name: name, trash: d.trashPath()}
	if err := syscall.Rename(p, op.trash); err != nil {
		return fs.ToErrno(err)
	}
	d.add(op, n.ino())
	return 0
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if errno := n.fsys.halt(ctx); errno != 0 {
		return errno
	}
	return n.remove(name, false)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if errno := n.fsys.halt(ctx); errno != 0 {
		return errno
	}
	return n.remove(name, true)
}

// Rename journals the change in both directories; an entry it replaces is
// kept (as a hard link in the trash, or by its mode if an empty directory)
// until the change is durable.
func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if errno := n.fsys.halt(ctx); errno != 0 {
		return errno
	}
	np, ok := newParent.(*node)
	if !ok {
		return syscall.EXDEV
	}
	const renameNoReplace = 1
	if flags&^renameNoReplace != 0 {
		return syscall.EINVAL // RENAME_EXCHANGE and whiteouts are not modelled
	}
	d := n.fsys.disk
	d.mu.Lock()
	defer d.mu.Unlock()
	op := &nsOp{kind: "rename", dir: n.ino(), name: name, dir2: np.ino(), name2: newName}
	dst := filepath.Join(np.backing(), newName)
	var st syscall.Stat_t
	if err := syscall.Lstat(dst, &st); err == nil && flags == 0 {
		if st.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			op.oldDir, op.oldMode = true, os.FileMode(st.Mode&0o7777)|os.ModeDir
		} else {
			op.trash = d.trashPath()
			if err := os.Link(dst, op.trash); err != nil {
				return fs.ToErrno(err)
			}
		}
	}
	if errno := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); errno != 0 {
		if op.trash != "" {
			os.Remove(op.trash)
		}
		return errno
	}
	d.add(op, n.ino(), np.ino())
	return 0
}

// Setattr records a truncation made by path (truncate(2)); one made
// through an open file arrives at file.Setattr.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok && f == nil {
		fd, err := syscall.Open(n.backing(), syscall.O_RDWR, 0)
		if err != nil {
			return fs.ToErrno(err)
		}
		errno := fs.ToErrno(n.fsys.disk.truncate(fd, int64(sz)))
		syscall.Close(fd)
		if errno != 0 {
			return errno
		}
	}
	return n.LoopbackNode.Setattr(ctx, f, in, out)
}

// Fsync without an open file handle (the kernel sends one with a handle
// for files; directories arrive at dirHandle.Fsyncdir).
func (n *node) Fsync(ctx context.Context, f fs.FileHandle, flags uint32) syscall.Errno {
	if ff, ok := f.(*file); ok {
		return ff.Fsync(ctx, flags)
	}
	if errno := n.fsys.beforeSync(ctx); errno != 0 {
		return errno
	}
	return 0
}

func (n *node) OpendirHandle(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fh, ff, errno := n.LoopbackNode.OpendirHandle(ctx, flags)
	if errno != 0 {
		return fh, ff, errno
	}
	return &dirHandle{inner: fh, n: n}, ff, 0
}

// dirHandle is an open directory: the loopback's stream, with fsyncdir
// making the directory's entries durable on the disk model.
type dirHandle struct {
	inner fs.FileHandle
	n     *node
}

func (h *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	return h.inner.(fs.FileReaddirenter).Readdirent(ctx)
}

func (h *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	return h.inner.(fs.FileSeekdirer).Seekdir(ctx, off)
}

func (h *dirHandle) Releasedir(ctx context.Context, flags uint32) {
	h.inner.(fs.FileReleasedirer).Releasedir(ctx, flags)
}

func (h *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	if errno := h.n.fsys.beforeSync(ctx); errno != 0 {
		return errno
	}
	if errno := h.inner.(fs.FileFsyncdirer).Fsyncdir(ctx, flags); errno != 0 {
		return errno
	}
	if !h.n.fsys.disk.dirSynced(h.n.ino(), h.n.fsys.isOff) { // the power went while it ran
		return h.n.fsys.halt(ctx)
	}
	h.n.fsys.syncs.Add(1)
	return 0
}

// file is an open file: loopback I/O, with every change recorded for undo
// and the injected faults applied.
type file struct {
	*fs.LoopbackFile
	fd   int // the loopback's descriptor; valid until Release
	fsys *FS
}

// PassthroughFd refuses FUSE passthrough: with it the kernel would send
// reads and writes straight to the backing file, past the undo records.
func (f *file) PassthroughFd() (int, bool) { return 0, false }

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if errno := f.fsys.halt(ctx); errno != 0 {
		return 0, errno
	}
	if f.fsys.writeEIO.Load() {
		f.fsys.eios.Add(1)
		return 0, syscall.EIO
	}
	n, err := f.fsys.disk.write(f.fd, data, off)
	return uint32(max(n, 0)), fs.ToErrno(err)
}

func (f *file) truncate(size int64) syscall.Errno {
	if f.fsys.writeEIO.Load() {
		f.fsys.eios.Add(1)
		return syscall.EIO
	}
	return fs.ToErrno(f.fsys.disk.truncate(f.fd, size))
}

func (f *file) Setattr(ctx context.Context, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if sz, ok := in.GetSize(); ok {
		if errno := f.truncate(int64(sz)); errno != 0 {
			return errno
		}
	}
	return f.LoopbackFile.Setattr(ctx, in, out)
}

func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	if f.fsys.writeEIO.Load() {
		f.fsys.eios.Add(1)
		return syscall.EIO
	}
	return fs.ToErrno(f.fsys.disk.allocate(f.fd, int64(off), int64(size), mode))
}

// Fsync covers fsync and fdatasync alike: both make the file's data and
// size durable, and neither its directory entry.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if errno := f.fsys.beforeSync(ctx); errno != 0 {
		return errno
	}
	if err := syscall.Fdatasync(f.fd); err != nil {
		return fs.ToErrno(err)
	}
	ok, err := f.fsys.disk.synced(f.fd, f.fsys.isOff)
	if err != nil {
		return fs.ToErrno(err)
	}
	if !ok { // the power went while it ran
		return f.fsys.halt(ctx)
	}
	f.fsys.syncs.Add(1)
	return 0
}
