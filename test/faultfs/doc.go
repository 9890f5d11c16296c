// Package faultfs is a fault-injecting file system for tests: a FUSE
// passthrough (github.com/hanwen/go-fuse/v2) over a backing directory that
// can lose power, stall its syncs and fail its I/O.
//
// Power loss models the least POSIX promises, not ext4's leniency: after
// PowerLoss a file holds only what a completed fsync or fdatasync of it
// covered, and a directory holds only the entry changes (create, mkdir,
// rename, unlink, rmdir, link, symlink) that an fsync of that directory
// covered; a rename must have both its directories synced. Writes pass
// through to the backing files as they are made; per file the FS keeps an
// undo record (the bytes each write or truncation replaced, below the size
// at the last sync, and that size), cleared by a sync; per namespace change
// a journal entry, durable once its directories are synced, with removed or
// replaced entries kept in a trash beside the backing directory until then.
// PowerLoss unmounts, undoes every un-synced change newest first, and
// mounts again, so the kernel's page cache holds nothing the "disk" lost.
// Cut picks the instant the power goes: syncs completing after it make
// nothing durable, and every request blocks until its process is killed.
//
// SetSyncDelay stalls fsync, fdatasync and directory fsync; SetWriteError
// and SetSyncError make writes or syncs fail with EIO.
//
// The server runs inside the test process; DESIGN.md says why and what
// that costs. Mounting needs root and /dev/fuse: Available says whether
// this process can, and tests skip when it cannot.
package faultfs
