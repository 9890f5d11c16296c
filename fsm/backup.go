package fsm

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
)

// Backup file format, version 2 (fixed-width integers big-endian):
//
//	header   magic "qkvbkup\x00" (8 bytes), backup format version uint32,
//	         created at int64 (Unix ms, the taker's clock, informational),
//	         raft index uint64 (the applied index the state reflects),
//	         entry count uint64, idempotency entry count uint64,
//	         (version 2) cluster id length uint16 and the cluster id (length
//	         0: the cluster had not recorded one yet)
//	body     one FSM snapshot stream exactly as Persist writes it (see
//	         snapshot.go: its own header, records, dedup table, the cluster
//	         id again, CRC-32C)
//	trailer  SHA-256 (32 bytes) of every byte before it
//
// Version 1 files (no cluster id; their body is a version 3 snapshot) stay
// readable: they describe a cluster of unknown identity, which an online
// restore accepts only when forced (store.Restore).
//
// The body is the snapshot encoding, not a second encoding of the state: the
// same decoder (readSnapshot) validates both, and a backup is restored into a
// raft snapshot store by copying the body verbatim. The outer SHA-256 is the
// end-to-end check an operator can verify with sha256sum-like tools (the
// X-KV-Backup-Sha256 header and `kvnode restore` print it); the inner CRC
// stays what it is for local snapshots.
const (
	backupMagic         = "qkvbkup\x00"
	BackupFormatVersion = 2
	backupFormatV1      = 1
	// backupFixedHeaderSize is the header of a version 1 file and the part
	// every version shares.
	backupFixedHeaderSize = len(backupMagic) + 4 + 8 + 8 + 8 + 8
	// BackupTrailerSize and BackupInfo.HeaderSize frame the body: a backup
	// of n bytes carries a snapshot stream of n - HeaderSize - BackupTrailerSize.
	BackupTrailerSize = sha256.Size
)

// ErrBadBackup is wrapped by every error for input that is not an intact
// quorumkv backup: bad magic or version, truncation, checksum mismatch, or a
// body that is not a well-formed snapshot. I/O errors from the reader are
// returned wrapped as they are.
var ErrBadBackup = errors.New("fsm: bad backup")

// BackupInfo describes a backup file.
type BackupInfo struct {
	FormatVersion uint32
	CreatedAtMs   int64
	Index         uint64 // the raft index the data reflects
	Entries       uint64 // stored entries, including expired ones not yet removed
	IdemEntries   uint64 // idempotency (dedup) table entries
	// ClusterID is the id of the cluster the backup was taken from; "" for a
	// version 1 file or a cluster that had not recorded its id yet.
	ClusterID  string
	HeaderSize int   // bytes before the body
	Size       int64 // bytes, header and trailer included
	SHA256     [sha256.Size]byte
}

// Backup is a frozen, point-in-time view of the state, taken in O(1) by
// FSM.Backup. It is written out with Stream, on any goroutine, while Apply
// continues.
type Backup struct {
	s *snapshot
}

// Backup captures the current state for a backup, like Snapshot (an O(1)
// copy-on-write copy under the write lock). The caller should Release it when
// done. A backup carries data only: neither a restore in progress (the staging
// area is replicated state, but not data) nor the node address table (it
// describes the cluster the backup came from, not the one it is restored to).
// It does carry the cluster id, in its header and body (cluster.go).
func (f *FSM) Backup() *Backup {
	f.mu.Lock()
	s := &snapshot{data: f.data.Copy(), idem: f.idem.Copy(), applied: f.applied.Load(), cluster: f.clusterID, lastNow: f.lastNow.Load()}
	f.mu.Unlock()
	return &Backup{s: s}
}

// Index is the applied index the backup reflects.
func (b *Backup) Index() uint64 { return b.s.applied }

// ClusterID is the id of the cluster the backup is taken from ("" when none
// is recorded yet).
func (b *Backup) ClusterID() string { return b.s.cluster }

// Entries is the number of stored entries in the backup.
func (b *Backup) Entries() int { return b.s.data.Len() }

// Release drops the frozen trees.
func (b *Backup) Release() { b.s.Release() }

// WriteTo streams the backup to w in the format above, stamped with
// createdAtMs (the caller's clock: the FSM has none). It returns the backup's
// description, checksum included.
func (b *Backup) Stream(w io.Writer, createdAtMs int64) (BackupInfo, error) {
	info := BackupInfo{
		FormatVersion: BackupFormatVersion,
		CreatedAtMs:   createdAtMs,
		Index:         b.s.applied,
		Entries:       uint64(b.s.data.Len()),
		IdemEntries:   uint64(b.s.idem.Len()),
		ClusterID:     b.s.cluster,
	}
	hdr := encodeBackupHeader(info)
	info.HeaderSize = len(hdr)
	h := sha256.New()
	cw := &countWriter{w: io.MultiWriter(w, h)}
	if _, err := cw.Write(hdr); err != nil {
		return info, err
	}
	if err := b.s.write(cw); err != nil {
		return info, err
	}
	copy(info.SHA256[:], h.Sum(nil))
	if _, err := w.Write(info.SHA256[:]); err != nil {
		return info, err
	}
	info.Size = cw.n + BackupTrailerSize
	return info, nil
}

// encodeBackupHeader writes the header of info.FormatVersion (1 only for
// tests that make old files).
func encodeBackupHeader(info BackupInfo) []byte {
	b := make([]byte, 0, backupFixedHeaderSize+2+len(info.ClusterID))
	b = append(b, backupMagic...)
	b = binary.BigEndian.AppendUint32(b, info.FormatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(info.CreatedAtMs))
	b = binary.BigEndian.AppendUint64(b, info.Index)
	b = binary.BigEndian.AppendUint64(b, info.Entries)
	b = binary.BigEndian.AppendUint64(b, info.IdemEntries)
	if info.FormatVersion >= 2 {
		b = binary.BigEndian.AppendUint16(b, uint16(len(info.ClusterID)))
		b = append(b, info.ClusterID...)
	}
	return b
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// VerifyBackup reads a whole backup from r and checks it: header, SHA-256
// trailer, and the body decoded completely as a snapshot (order, lengths,
// CRC-32C, end of stream) agreeing with the header. It changes nothing. A
// checksum mismatch is reported in preference to any decoding error, so a
// truncated or corrupted file says so. Errors for bad input wrap ErrBadBackup.
func VerifyBackup(r io.Reader) (BackupInfo, error) {
	br, err := newBackupReader(r)
	if err != nil {
		return BackupInfo{}, err
	}
	st, derr := readSnapshot(br)
	if derr != nil {
		// Read to the end so the checksum, the likelier explanation, can be
		// judged; a reader error while doing so is reported as it is.
		if _, err := io.Copy(io.Discard, br); err != nil {
			return br.info, err
		}
		return br.info, fmt.Errorf("%w: checksum is valid but the body is not a valid snapshot: %v", ErrBadBackup, derr)
	}
	switch {
	case st.applied != br.info.Index:
		return br.info, fmt.Errorf("%w: header says index %d, body says %d", ErrBadBackup, br.info.Index, st.applied)
	case uint64(st.data.Len()) != br.info.Entries:
		return br.info, fmt.Errorf("%w: header says %d entries, body holds %d", ErrBadBackup, br.info.Entries, st.data.Len())
	case uint64(st.idem.Len()) != br.info.IdemEntries:
		return br.info, fmt.Errorf("%w: header says %d idempotency entries, body holds %d", ErrBadBackup, br.info.IdemEntries, st.idem.Len())
	case st.cluster != br.info.ClusterID:
		return br.info, fmt.Errorf("%w: header says cluster %q, body says %q", ErrBadBackup, br.info.ClusterID, st.cluster)
	}
	return br.info, nil
}

// CopyBackupBody copies the snapshot stream inside the backup read from r to
// w, checking the SHA-256 trailer as it goes. On a mismatch it returns an error
// wrapping ErrBadBackup after having written the body: the caller must discard
// what it wrote (a raft snapshot sink: Cancel). Call VerifyBackup first; this
// re-check guards against the file changing in between.
func CopyBackupBody(r io.Reader, w io.Writer) (BackupInfo, error) {
	br, err := newBackupReader(r)
	if err != nil {
		return BackupInfo{}, err
	}
	if _, err := io.Copy(w, br); err != nil {
		return br.info, err
	}
	return br.info, nil
}

// backupReader yields the body of a backup: it parses the header, then passes
// every byte but the last BackupTrailerSize through, hashing them; at the end
// of r it compares the held-back trailer and answers io.EOF only on a match.
type backupReader struct {
	r    *bufio.Reader
	h    hash.Hash
	info BackupInfo
	// tail holds the last bytes seen, which may be the trailer.
	tail []byte
	buf  []byte
	done bool
	err  error
}

func newBackupReader(r io.Reader) (*backupReader, error) {
	br := &backupReader{r: bufio.NewReaderSize(r, snapshotBufSize), h: sha256.New(), buf: make([]byte, snapshotBufSize)}
	hdr := make([]byte, backupFixedHeaderSize, backupFixedHeaderSize+2+MaxClusterIDLen)
	readHdr := func(p []byte) error {
		if n, err := io.ReadFull(br.r, p); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%w: truncated: the file ends %d bytes into a header field", ErrBadBackup, n)
			}
			return fmt.Errorf("reading backup header: %w", err)
		}
		return nil
	}
	if err := readHdr(hdr); err != nil {
		return nil, err
	}
	if !bytes.Equal(hdr[:len(backupMagic)], []byte(backupMagic)) {
		return nil, fmt.Errorf("%w: not a quorumkv backup (bad magic %q)", ErrBadBackup, hdr[:len(backupMagic)])
	}
	rest := hdr[len(backupMagic):]
	br.info = BackupInfo{
		FormatVersion: binary.BigEndian.Uint32(rest),
		CreatedAtMs:   int64(binary.BigEndian.Uint64(rest[4:])),
		Index:         binary.BigEndian.Uint64(rest[12:]),
		Entries:       binary.BigEndian.Uint64(rest[20:]),
		IdemEntries:   binary.BigEndian.Uint64(rest[28:]),
	}
	switch br.info.FormatVersion {
	case backupFormatV1:
	case BackupFormatVersion:
		n := hdr[len(hdr) : len(hdr)+2]
		if err := readHdr(n); err != nil {
			return nil, err
		}
		idLen := int(binary.BigEndian.Uint16(n))
		if idLen > MaxClusterIDLen {
			return nil, fmt.Errorf("%w: cluster id length %d exceeds %d", ErrBadBackup, idLen, MaxClusterIDLen)
		}
		id := hdr[len(hdr)+2 : len(hdr)+2+idLen]
		if err := readHdr(id); err != nil {
			return nil, err
		}
		hdr = hdr[:len(hdr)+2+idLen]
		br.info.ClusterID = string(id)
		if idLen > 0 {
			if err := validClusterID(br.info.ClusterID); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrBadBackup, err)
			}
		}
	default:
		return nil, fmt.Errorf("%w: unsupported backup format version %d, want %d or %d", ErrBadBackup, br.info.FormatVersion, backupFormatV1, BackupFormatVersion)
	}
	br.info.HeaderSize = len(hdr)
	br.info.Size = int64(len(hdr))
	br.h.Write(hdr)
	return br, nil
}

func (b *backupReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	for {
		// Everything in tail beyond the last BackupTrailerSize bytes is body.
		if extra := len(b.tail) - BackupTrailerSize; extra > 0 {
			n := copy(p, b.tail[:extra])
			b.h.Write(b.tail[:n])
			b.tail = b.tail[n:]
			b.info.Size += int64(n)
			return n, nil
		}
		if b.done {
			b.err = b.finish()
			return 0, b.err
		}
		n, err := b.r.Read(b.buf)
		b.tail = append(b.tail, b.buf[:n]...)
		if errors.Is(err, io.EOF) {
			b.done = true
		} else if err != nil {
			b.err = err
			return 0, err
		}
	}
}

// finish checks the trailer once r is exhausted.
func (b *backupReader) finish() error {
	if len(b.tail) < BackupTrailerSize {
		return fmt.Errorf("%w: truncated: ends %d bytes into the %d-byte checksum trailer", ErrBadBackup, len(b.tail), BackupTrailerSize)
	}
	b.info.Size += BackupTrailerSize
	copy(b.info.SHA256[:], b.h.Sum(nil))
	if !bytes.Equal(b.tail, b.info.SHA256[:]) {
		return fmt.Errorf("%w: SHA-256 mismatch (the file is truncated or corrupt): trailer %x, computed %x", ErrBadBackup, b.tail, b.info.SHA256)
	}
	return io.EOF
}
