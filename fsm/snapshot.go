package fsm

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"unsafe"

	"github.com/hashicorp/raft"
	"github.com/tidwall/btree"
)

// Snapshot format, version 4 (all fixed-width integers big-endian):
//
//	header   magic "qkvsnap\x00" (8 bytes), format version uint32,
//	         applied index uint64, entry count uint64
//	records  entry count times, in strictly ascending key order:
//	         uvarint len(key), key, uvarint len(value), value,
//	         uvarint revision, varint expiresAt
//	dedup    (version 2 only) idempotency entry count uint64, then that many
//	         in strictly ascending key order: uvarint len(key), key,
//	         32-byte fingerprint, uvarint len(result), result, varint createdAt
//	nodes    (version 3 only) node count uint64, then that many in strictly
//	         ascending id order: uvarint len(id), id, uvarint len(addr), addr
//	staging  (versions 3 and 4) restore id uint64, 0 when no online restore
//	         is staged; otherwise next chunk uint64, (version 4 only) the last
//	         chunk's command time int64 (Unix ms), staged length uint64 and the
//	         staged bytes of the online restore in progress (restore.go)
//	cluster  (version 4 only) uvarint len(cluster id), cluster id; length 0
//	         when none is recorded yet (cluster.go)
//	clock    (version 4 only) command time of the last applied command
//	         (FSM.LastNow), int64
//	trailer  CRC-32C (Castagnoli) uint32 of every byte before it
//
// Nothing may follow the trailer. Restore reads versions 1 (no dedup section,
// written before idempotency existed), 2 (no node or staging section, written
// before membership changes and online restore), 3 (no cluster id, no chunk
// time: a staged restore read from it counts as abandoned; no clock section,
// written before command time was kept monotonic) and 4; Persist writes
// version 4.
// For versions before 4 the last command time is taken as the newest dedup
// entry's createdAt (a command time that was applied; 0 when the table is
// empty), so every replica restoring the same snapshot agrees on it.
const (
	snapshotMagic         = "qkvsnap\x00"
	snapshotFormatVersion = 4
	snapshotFormatV1      = 1
	snapshotHeaderSize    = len(snapshotMagic) + 4 + 8 + 8

	// maxSnapshotField rejects absurd key and value lengths outright. Below it,
	// allocation is still bounded by the bytes actually present: fields are read
	// in chunks of at most snapshotChunk, so a lying length prefix in a short
	// stream costs little.
	maxSnapshotField = 1 << 30
	// maxStagedRestore bounds a staged restore stream's declared length.
	maxStagedRestore = 1 << 36
	snapshotChunk    = 1 << 20

	snapshotBufSize = 64 << 10
)

// ErrBadSnapshot is wrapped by every error Restore returns for a snapshot that
// is not a well-formed quorumkv snapshot (bad magic or version, truncation,
// checksum mismatch, trailing bytes, absurd lengths, unsorted keys). I/O errors
// from the reader itself are returned wrapped as they are.
var ErrBadSnapshot = errors.New("fsm: bad snapshot")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot captures the current state in O(1): it takes a copy-on-write copy of
// the primary index under the write lock. Later applies copy the tree nodes they
// touch instead of mutating shared ones, so Persist can stream the copy without
// a lock while Apply continues. The expiry index is not captured; Restore
// rebuilds it from the entries.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	s := &snapshot{
		data:    f.data.Copy(),
		idem:    f.idem.Copy(),
		nodes:   maps.Clone(f.nodes),
		applied: f.applied.Load(),
		staging: f.staging,
		cluster: f.clusterID,
		lastNow: f.lastNow.Load(),
	}
	f.mu.Unlock()
	return s, nil
}

// snapshot is a frozen view of the state. Nothing writes to data after
// Snapshot returns.
type snapshot struct {
	data    *btree.BTreeG[item]
	idem    *btree.BTreeG[idemEntry]
	nodes   map[string]string
	applied uint64
	staging restoreStaging
	cluster string // the cluster id, "" when none is recorded
	lastNow int64
}

// Persist streams the snapshot to sink in the format above, then closes sink,
// or cancels it on error. Raft runs it on its snapshot goroutine.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("fsm: persist snapshot: %w", err)
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: persist snapshot: close sink: %w", err)
	}
	return nil
}

// Release drops the reference to the frozen tree so it can be collected.
func (s *snapshot) Release() { s.data, s.idem, s.nodes = nil, nil, nil }

// write encodes the snapshot to w; it is Persist without the sink protocol.
func (s *snapshot) write(w io.Writer) error {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, snapshotBufSize)

	var hdr [snapshotHeaderSize]byte
	copy(hdr[:], snapshotMagic)
	b := hdr[len(snapshotMagic):len(snapshotMagic)]
	b = binary.BigEndian.AppendUint32(b, snapshotFormatVersion)
	b = binary.BigEndian.AppendUint64(b, s.applied)
	binary.BigEndian.AppendUint64(b, uint64(s.data.Len()))
	if _, err := bw.Write(hdr[:]); err != nil {
		return err
	}

	var err error
	var scratch [2 * binary.MaxVarintLen64]byte
	s.data.Scan(func(it item) bool {
		b := binary.AppendUvarint(scratch[:0], uint64(len(it.key())))
		if _, err = bw.Write(b); err != nil {
			return false
		}
		if _, err = bw.WriteString(it.key()); err != nil {
			return false
		}
		b = binary.AppendUvarint(scratch[:0], uint64(len(it.value())))
		if _, err = bw.Write(b); err != nil {
			return false
		}
		if _, err = bw.Write(it.value()); err != nil {
			return false
		}
		b = binary.AppendUvarint(scratch[:0], it.Revision)
		b = binary.AppendVarint(b, it.ExpiresAt)
		_, err = bw.Write(b)
		return err == nil
	})
	if err != nil {
		return err
	}
	if err := writeIdem(bw, s.idem); err != nil {
		return err
	}
	if err := writeNodes(bw, s.nodes); err != nil {
		return err
	}
	var st [32]byte
	binary.BigEndian.PutUint64(st[:], s.staging.id)
	if s.staging.id == 0 {
		if _, err := bw.Write(st[:8]); err != nil {
			return err
		}
	} else {
		binary.BigEndian.PutUint64(st[8:], s.staging.next)
		binary.BigEndian.PutUint64(st[16:], uint64(s.staging.updatedAt))
		binary.BigEndian.PutUint64(st[24:], uint64(len(s.staging.data)))
		if _, err := bw.Write(st[:]); err != nil {
			return err
		}
		if _, err := bw.Write(s.staging.data); err != nil {
			return err
		}
	}
	if err := writeClusterID(bw, s.cluster); err != nil {
		return err
	}
	if _, err := bw.Write(binary.BigEndian.AppendUint64(st[:0], uint64(s.lastNow))); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	var trailer [4]byte
	binary.BigEndian.PutUint32(trailer[:], cw.crc)
	_, err = w.Write(trailer[:])
	return err
}

func writeIdem(bw *bufio.Writer, idem *btree.BTreeG[idemEntry]) error {
	var scratch [binary.MaxVarintLen64]byte
	if _, err := bw.Write(binary.BigEndian.AppendUint64(scratch[:0], uint64(idem.Len()))); err != nil {
		return err
	}
	var err error
	idem.Scan(func(e idemEntry) bool {
		if _, err = bw.Write(binary.AppendUvarint(scratch[:0], uint64(len(e.key)))); err != nil {
			return false
		}
		if _, err = bw.WriteString(e.key); err != nil {
			return false
		}
		if _, err = bw.Write(e.fingerprint[:]); err != nil {
			return false
		}
		if _, err = bw.Write(binary.AppendUvarint(scratch[:0], uint64(len(e.result)))); err != nil {
			return false
		}
		if _, err = bw.Write(e.result); err != nil {
			return false
		}
		_, err = bw.Write(binary.AppendVarint(scratch[:0], e.createdAt))
		return err == nil
	})
	return err
}

// crcWriter checksums everything written through it. It sits below the
// bufio.Writer so the checksum is updated in large blocks.
type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// Restore replaces the state with the snapshot read from rc, and closes rc.
//
// It decodes into new trees and verifies the whole stream (header, ordering,
// lengths, checksum, end of stream) before taking the write lock to swap them
// in, so on any error the FSM is unchanged and readers never see a partial
// state. On success AppliedIndex() becomes the snapshot's applied index and
// waiters are woken.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	st, err := readSnapshot(rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	valueBytes, keyBytes := bytesOf(st.data)
	f.mu.Lock()
	f.data, f.expiry, f.idem, f.idemAge, f.nodes = st.data, st.expiry, st.idem, st.idemAge, st.nodes
	f.idemBytes = st.idemBytes
	f.lastNow.Store(st.lastNow)
	f.staging = st.staging
	f.clusterID = st.cluster
	f.stats.valueBytes, f.stats.keyBytes = valueBytes, keyBytes
	// The replaced state's history is not in the log this replica applied:
	// whoever mirrors it must start over.
	f.emit(Change{Type: ChangeReset, Version: st.applied, Index: st.applied})
	f.mu.Unlock()
	f.publish(st.applied)
	return nil
}

// restored is the state decoded from a snapshot, ready to be swapped in.
type restored struct {
	data    *btree.BTreeG[item]
	expiry  *expiryIndex
	idem    *btree.BTreeG[idemEntry]
	idemAge *btree.BTreeG[idemAgeKey]
	// idemBytes is idem's accounted size; lastNow the last command time.
	idemBytes int64
	lastNow   int64
	nodes     map[string]string
	applied   uint64
	staging   restoreStaging
	cluster   string
}

func readSnapshot(r io.Reader) (*restored, error) {
	var applied uint64
	sr := &snapReader{r: r, buf: make([]byte, snapshotBufSize)}
	var hdr [snapshotHeaderSize]byte
	if err := sr.readFull(hdr[:]); err != nil {
		return nil, sr.wrap(err, "header")
	}
	if string(hdr[:len(snapshotMagic)]) != snapshotMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrBadSnapshot, hdr[:len(snapshotMagic)])
	}
	rest := hdr[len(snapshotMagic):]
	version := binary.BigEndian.Uint32(rest)
	if version < snapshotFormatV1 || version > snapshotFormatVersion {
		return nil, fmt.Errorf("%w: unsupported format version %d, want %d to %d", ErrBadSnapshot, version, snapshotFormatV1, snapshotFormatVersion)
	}
	applied = binary.BigEndian.Uint64(rest[4:])
	count := binary.BigEndian.Uint64(rest[12:])

	load := newSortedLoader()
	// The expiry pairs are collected and sorted, then cut into full chunks:
	// in key order they would arrive in no particular expiry order.
	var pairs []expiryKey
	var prevKey string
	// count is not trusted for allocation: records are read one by one and a
	// short stream fails on truncation, however large count claims to be.
	for i := uint64(0); i < count; i++ {
		it, err := sr.readRecord(i)
		if err != nil {
			return nil, err
		}
		if i > 0 && it.key() <= prevKey {
			return nil, fmt.Errorf("%w: record %d: key %q not after previous key %q", ErrBadSnapshot, i, it.key(), prevKey)
		}
		if it.Revision > applied {
			return nil, fmt.Errorf("%w: record %d: revision %d beyond applied index %d", ErrBadSnapshot, i, it.Revision, applied)
		}
		prevKey = it.key()
		load.add(it) // keys arrive in order (checked above)
		if it.ExpiresAt != 0 {
			pairs = append(pairs, expiryKey{at: it.ExpiresAt, key: it.key()})
		}
	}

	idem, idemAge := newIdemTree(), newIdemAgeTree()
	var idemBytes int64
	if version >= 2 {
		var err error
		if idemBytes, err = sr.readIdem(idem, idemAge); err != nil {
			return nil, err
		}
	}
	nodes := map[string]string{}
	var staging restoreStaging
	var cluster string
	if version >= 3 {
		var err error
		if nodes, err = sr.readNodes(); err != nil {
			return nil, err
		}
		if staging, err = sr.readStaging(version); err != nil {
			return nil, err
		}
	}
	if version >= 4 {
		var err error
		if cluster, err = sr.readClusterID(); err != nil {
			return nil, err
		}
	}
	var lastNow int64
	if version >= 4 {
		var b [8]byte
		if err := sr.readFull(b[:]); err != nil {
			return nil, sr.wrap(err, "last command time")
		}
		lastNow = int64(binary.BigEndian.Uint64(b[:]))
	} else if k, ok := idemAge.Max(); ok {
		lastNow = k.at
	}

	want := sr.sum()
	var trailer [4]byte
	if err := sr.readFull(trailer[:]); err != nil {
		return nil, sr.wrap(err, "checksum trailer")
	}
	if got := binary.BigEndian.Uint32(trailer[:]); got != want {
		return nil, fmt.Errorf("%w: checksum mismatch: trailer %08x, computed %08x", ErrBadSnapshot, got, want)
	}
	switch err := sr.fill(); {
	case err == nil:
		return nil, fmt.Errorf("%w: trailing bytes after checksum at offset %d", ErrBadSnapshot, sr.off)
	case !errors.Is(err, io.EOF):
		return nil, sr.wrap(err, "end of stream")
	}
	return &restored{data: load.finish(), expiry: buildExpiryIndex(pairs), idem: idem, idemAge: idemAge,
		idemBytes: idemBytes, lastNow: lastNow, nodes: nodes, applied: applied, staging: staging, cluster: cluster}, nil
}

// readStaging reads the staging section of a version 3 or 4 snapshot: a
// restore id of 0 means no online restore was staged.
func (s *snapReader) readStaging(version uint32) (restoreStaging, error) {
	var hdr [32]byte
	if err := s.readFull(hdr[:8]); err != nil {
		return restoreStaging{}, s.wrap(err, "restore staging id")
	}
	if binary.BigEndian.Uint64(hdr[:8]) == 0 {
		return restoreStaging{}, nil
	}
	size := 24
	if version >= 4 {
		size = 32
	}
	if err := s.readFull(hdr[8:size]); err != nil {
		return restoreStaging{}, s.wrap(err, "restore staging header")
	}
	st := restoreStaging{id: binary.BigEndian.Uint64(hdr[:]), next: binary.BigEndian.Uint64(hdr[8:])}
	n := binary.BigEndian.Uint64(hdr[16:])
	if version >= 4 {
		st.updatedAt = int64(binary.BigEndian.Uint64(hdr[16:]))
		n = binary.BigEndian.Uint64(hdr[24:])
	}
	switch {
	case st.next == 0:
		return restoreStaging{}, fmt.Errorf("%w: staging section with no chunk staged", ErrBadSnapshot)
	case n > maxStagedRestore:
		return restoreStaging{}, fmt.Errorf("%w: staged restore length %d exceeds limit %d", ErrBadSnapshot, n, uint64(maxStagedRestore))
	}
	var err error
	if st.data, err = s.readBytes(n); err != nil {
		return restoreStaging{}, s.wrap(err, "restore staging data")
	}
	return st, nil
}

// readIdem reads the dedup section into idem and idemAge, checking key order
// and that every recorded result decodes, and returns the table's accounted
// size.
func (s *snapReader) readIdem(idem *btree.BTreeG[idemEntry], idemAge *btree.BTreeG[idemAgeKey]) (int64, error) {
	var cnt [8]byte
	if err := s.readFull(cnt[:]); err != nil {
		return 0, s.wrap(err, "idempotency entry count")
	}
	var total int64
	count := binary.BigEndian.Uint64(cnt[:])
	var prevKey string
	for i := uint64(0); i < count; i++ {
		what := func(field string) string { return fmt.Sprintf("idempotency entry %d %s", i, field) }
		var e idemEntry
		n, err := binary.ReadUvarint(s)
		if err != nil {
			return 0, s.wrap(err, what("key length"))
		}
		if n == 0 || n > maxSnapshotField {
			return 0, fmt.Errorf("%w: %s: bad key length %d", ErrBadSnapshot, what("key"), n)
		}
		if e.key, err = s.readString(n); err != nil {
			return 0, s.wrap(err, what("key"))
		}
		if i > 0 && e.key <= prevKey {
			return 0, fmt.Errorf("%w: %s: key %q not after previous key %q", ErrBadSnapshot, what("key"), e.key, prevKey)
		}
		prevKey = e.key
		if err := s.readFull(e.fingerprint[:]); err != nil {
			return 0, s.wrap(err, what("fingerprint"))
		}
		if n, err = binary.ReadUvarint(s); err != nil {
			return 0, s.wrap(err, what("result length"))
		}
		if n > maxSnapshotField {
			return 0, fmt.Errorf("%w: %s: result length %d exceeds limit %d", ErrBadSnapshot, what("result"), n, maxSnapshotField)
		}
		if e.result, err = s.readBytes(n); err != nil {
			return 0, s.wrap(err, what("result"))
		}
		if _, err := decodeResult(e.result); err != nil {
			return 0, fmt.Errorf("%w: %s: %v", ErrBadSnapshot, what("result"), err)
		}
		if e.createdAt, err = binary.ReadVarint(s); err != nil {
			return 0, s.wrap(err, what("createdAt"))
		}
		idem.Load(e)
		idemAge.Set(idemAgeKey{at: e.createdAt, key: e.key})
		total += e.bytes()
	}
	return total, nil
}

// snapReader is a buffered reader that keeps a CRC-32C of the bytes consumed so
// far (not of bytes merely buffered), so the trailer can be checked against
// exactly the bytes before it.
type snapReader struct {
	r        io.Reader
	buf      []byte
	pos, end int    // buf[pos:end] is buffered and unread
	crc      uint32 // checksum of consumed bytes before buf[0]
	off      int64  // bytes consumed, for error messages
	err      error  // sticky error from r
	scratch  []byte // readRecord's key buffer
}

// fill makes at least one unread byte available, or returns r's error
// (io.EOF at a clean end of stream).
func (s *snapReader) fill() error {
	if s.pos < s.end {
		return nil
	}
	s.crc = crc32.Update(s.crc, castagnoli, s.buf[:s.pos])
	s.pos, s.end = 0, 0
	for empty := 0; s.err == nil; empty++ {
		n, err := s.r.Read(s.buf)
		s.end = n
		s.err = err
		if n > 0 {
			return nil
		}
		if empty >= 100 {
			s.err = io.ErrNoProgress
		}
	}
	return s.err
}

func (s *snapReader) sum() uint32 {
	return crc32.Update(s.crc, castagnoli, s.buf[:s.pos])
}

func (s *snapReader) ReadByte() (byte, error) {
	if err := s.fill(); err != nil {
		return 0, err
	}
	c := s.buf[s.pos]
	s.pos++
	s.off++
	return c, nil
}

func (s *snapReader) readFull(p []byte) error {
	for len(p) > 0 {
		if err := s.fill(); err != nil {
			return err
		}
		n := copy(p, s.buf[s.pos:s.end])
		p = p[n:]
		s.pos += n
		s.off += int64(n)
	}
	return nil
}

// readBytes reads n bytes into a new slice that grows in chunks as data
// arrives, so a false length costs at most about twice the bytes present.
func (s *snapReader) readBytes(n uint64) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	out := make([]byte, 0, min(n, snapshotChunk))
	for uint64(len(out)) < n {
		if err := s.fill(); err != nil {
			return nil, err
		}
		take := min(n-uint64(len(out)), uint64(s.end-s.pos))
		out = append(out, s.buf[s.pos:s.pos+int(take)]...)
		s.pos += int(take)
		s.off += int64(take)
	}
	return out, nil
}

// readString is readBytes for keys, avoiding the intermediate slice when the key
// is already buffered.
func (s *snapReader) readString(n uint64) (string, error) {
	if n <= uint64(s.end-s.pos) {
		k := string(s.buf[s.pos : s.pos+int(n)])
		s.pos += int(n)
		s.off += int64(n)
		return k, nil
	}
	b, err := s.readBytes(n)
	return string(b), err
}

func (s *snapReader) readRecord(i uint64) (item, error) {
	var it item
	what := func(field string) string { return fmt.Sprintf("record %d %s", i, field) }
	n, err := binary.ReadUvarint(s)
	if err != nil {
		return it, s.wrap(err, what("key length"))
	}
	if n > maxSnapshotField {
		return it, fmt.Errorf("%w: %s: key length %d exceeds limit %d", ErrBadSnapshot, what("key"), n, maxSnapshotField)
	}
	// The item's one allocation (newItem's layout: key, then value) can only
	// be sized once the value's length is read, so the key waits in scratch.
	// Lengths come from the stream: anything over snapshotChunk is read in
	// growing pieces (readBytes), so a bogus length fails on truncation
	// before it allocates.
	var key []byte
	if n <= snapshotChunk {
		if uint64(cap(s.scratch)) < n {
			s.scratch = make([]byte, n)
		}
		key = s.scratch[:n]
		err = s.readFull(key)
	} else {
		key, err = s.readBytes(n)
	}
	if err != nil {
		return it, s.wrap(err, what("key"))
	}
	vn, err := binary.ReadUvarint(s)
	if err != nil {
		return it, s.wrap(err, what("value length"))
	}
	if vn > maxSnapshotField {
		return it, fmt.Errorf("%w: %s: value length %d exceeds limit %d", ErrBadSnapshot, what("value"), vn, maxSnapshotField)
	}
	if n+vn <= snapshotChunk {
		kv := make([]byte, n+vn)
		copy(kv, key)
		if err = s.readFull(kv[n:]); err != nil {
			return it, s.wrap(err, what("value"))
		}
		it = item{kv: unsafe.String(unsafe.SliceData(kv), len(kv)), klen: uint32(n)}
	} else {
		v, err := s.readBytes(vn)
		if err != nil {
			return it, s.wrap(err, what("value"))
		}
		it = newItem(string(key), v, 0, 0)
	}
	if it.Revision, err = binary.ReadUvarint(s); err != nil {
		return it, s.wrap(err, what("revision"))
	}
	if it.ExpiresAt, err = binary.ReadVarint(s); err != nil {
		return it, s.wrap(err, what("expiresAt"))
	}
	return it, nil
}

// wrap describes a failure to read field: end of stream means truncation (a bad
// snapshot); a varint overflow is a bad snapshot; anything else is an I/O error
// from the reader and is passed through.
func (s *snapReader) wrap(err error, field string) error {
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: truncated at offset %d reading %s", ErrBadSnapshot, s.off, field)
	case errors.Is(err, io.ErrNoProgress):
		return fmt.Errorf("reading %s at offset %d: %w", field, s.off, err)
	case s.err == nil || !errors.Is(err, s.err):
		// Not from r: a decoding error such as a varint overflow.
		return fmt.Errorf("%w: reading %s at offset %d: %v", ErrBadSnapshot, field, s.off, err)
	}
	return fmt.Errorf("reading %s at offset %d: %w", field, s.off, err)
}
