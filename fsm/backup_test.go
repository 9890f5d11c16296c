package fsm

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"testing"
)

// backupBytes writes a backup of f stamped at createdAt.
func backupBytes(t testing.TB, f *FSM, createdAt int64) ([]byte, BackupInfo) {
	t.Helper()
	b := f.Backup()
	defer b.Release()
	var buf bytes.Buffer
	info, err := b.Stream(&buf, createdAt)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if info.Size != int64(buf.Len()) {
		t.Fatalf("info.Size = %d, wrote %d", info.Size, buf.Len())
	}
	return buf.Bytes(), info
}

func TestBackupRoundTrip(t *testing.T) {
	src := populated(t)
	apply(t, src, src.AppliedIndex()+1, Command{Op: OpClusterID, ClusterID: "c0ffee", Now: 1_000})
	apply(t, src, src.AppliedIndex()+1, Command{Op: OpSet, Key: "idem-k", Value: []byte("1"), Now: 1_000,
		IdemKey: "retry-1", Fingerprint: [32]byte{7}})
	file, info := backupBytes(t, src, 1_700_000_000_123)

	if sum := sha256.Sum256(file[:len(file)-BackupTrailerSize]); !bytes.Equal(sum[:], file[len(file)-BackupTrailerSize:]) {
		t.Fatal("trailer is not the SHA-256 of the bytes before it")
	}
	got, err := VerifyBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("VerifyBackup: %v", err)
	}
	want := BackupInfo{FormatVersion: BackupFormatVersion, CreatedAtMs: 1_700_000_000_123, Index: src.AppliedIndex(),
		Entries: uint64(src.Len()), IdemEntries: uint64(src.IdempotencyEntries()), ClusterID: "c0ffee",
		HeaderSize: backupFixedHeaderSize + 2 + len("c0ffee"), Size: int64(len(file)), SHA256: info.SHA256}
	if got != want || info != want {
		t.Fatalf("VerifyBackup = %+v\nStream      = %+v\nwant        = %+v", got, info, want)
	}

	// The body is a snapshot stream: restoring it reproduces the state exactly.
	var body bytes.Buffer
	if _, err := CopyBackupBody(bytes.NewReader(file), &body); err != nil {
		t.Fatalf("CopyBackupBody: %v", err)
	}
	if body.Len() != len(file)-info.HeaderSize-BackupTrailerSize {
		t.Fatalf("body is %d bytes of a %d-byte file", body.Len(), len(file))
	}
	dst := New()
	if err := restoreBytes(dst, body.Bytes()); err != nil {
		t.Fatalf("restore body: %v", err)
	}
	if stateOf(dst) != stateOf(src) || dst.ClusterID() != "c0ffee" {
		t.Fatalf("restored %+v (cluster %q), source %+v", stateOf(dst), dst.ClusterID(), stateOf(src))
	}
}

func TestBackupOfEmptyFSM(t *testing.T) {
	file, _ := backupBytes(t, New(), 0)
	info, err := VerifyBackup(bytes.NewReader(file))
	if err != nil || info.Entries != 0 || info.Index != 0 {
		t.Fatalf("VerifyBackup = %+v, %v", info, err)
	}
}

func TestVerifyBackupRejectsDamage(t *testing.T) {
	file, _ := backupBytes(t, populated(t), 5)
	check := func(name string, b []byte) {
		t.Helper()
		if _, err := VerifyBackup(bytes.NewReader(b)); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: VerifyBackup = %v, want ErrBadBackup", name, err)
		}
		if _, err := CopyBackupBody(bytes.NewReader(b), io.Discard); !errors.Is(err, ErrBadBackup) {
			t.Errorf("%s: CopyBackupBody = %v, want ErrBadBackup", name, err)
		}
	}
	check("empty", nil)
	check("garbage", bytes.Repeat([]byte("not a backup "), 100))
	check("a bare snapshot", persist(t, populated(t)))
	check("trailing byte", append(bytes.Clone(file), 0))
	// Every truncation and a flipped bit at many offsets (header, body, trailer).
	for n := 0; n < len(file); n += 1 + n/7 {
		check("truncated", file[:n])
	}
	check("last byte missing", file[:len(file)-1])
	for i := 0; i < len(file); i += 1 + i/5 {
		check("flipped", flip(file, i))
	}
}

// A file whose SHA-256 matches but whose content is wrong (a bad writer, not
// damage in transit) is still rejected by decoding the body.
func TestVerifyBackupDecodesBody(t *testing.T) {
	file, _ := backupBytes(t, populated(t), 5)
	resum := func(b []byte) []byte {
		sum := sha256.Sum256(b[:len(b)-BackupTrailerSize])
		copy(b[len(b)-BackupTrailerSize:], sum[:])
		return b
	}
	hdrSize := backupFixedHeaderSize + 2 // no cluster id recorded
	bodyFlip := resum(flip(file, hdrSize+40))
	if _, err := VerifyBackup(bytes.NewReader(bodyFlip)); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("corrupt body with a valid SHA-256: %v", err)
	}
	wrongCount := resum(flip(file, backupFixedHeaderSize-9)) // entry count in the header
	if _, err := VerifyBackup(bytes.NewReader(wrongCount)); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("header disagreeing with body: %v", err)
	}
}

// TestBackupClusterIDMustMatchBody: the header's cluster id is checked
// against the body's, so a file cannot claim another cluster's id.
func TestBackupClusterIDMustMatchBody(t *testing.T) {
	f := populated(t)
	apply(t, f, f.AppliedIndex()+1, Command{Op: OpClusterID, ClusterID: "aaaa", Now: 1_000})
	file, info := backupBytes(t, f, 5)
	forged := bytes.Clone(file)
	copy(forged[backupFixedHeaderSize+2:], "bbbb")
	sum := sha256.Sum256(forged[:len(forged)-BackupTrailerSize])
	copy(forged[len(forged)-BackupTrailerSize:], sum[:])
	if _, err := VerifyBackup(bytes.NewReader(forged)); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("header claiming another cluster than the body: %v", err)
	}
	if info.ClusterID != "aaaa" {
		t.Fatalf("info.ClusterID = %q", info.ClusterID)
	}
}

// TestVersion1BackupStillReadable: a file written before backups carried a
// cluster id (header version 1, body a version 3 snapshot) verifies, with an
// empty cluster id, and its body restores.
func TestVersion1BackupStillReadable(t *testing.T) {
	body := craftSnapshot(snapshotMagic, 3, 2, 2,
		snapshotRecord("a", "1", 1, 0), snapshotRecord("b", "22", 2, -7), idemSection(), nodesSection())
	file := encodeBackupHeader(BackupInfo{FormatVersion: 1, CreatedAtMs: 5, Index: 2, Entries: 2})
	if len(file) != backupFixedHeaderSize {
		t.Fatalf("version 1 header is %d bytes", len(file))
	}
	file = append(file, body...)
	sum := sha256.Sum256(file)
	file = append(file, sum[:]...)
	info, err := VerifyBackup(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("VerifyBackup: %v", err)
	}
	if info.FormatVersion != 1 || info.ClusterID != "" || info.HeaderSize != backupFixedHeaderSize || info.Entries != 2 {
		t.Fatalf("info = %+v", info)
	}
	var out bytes.Buffer
	if _, err := CopyBackupBody(bytes.NewReader(file), &out); err != nil || !bytes.Equal(out.Bytes(), body) {
		t.Fatalf("CopyBackupBody: %v", err)
	}
	dst := New()
	if err := restoreBytes(dst, body); err != nil || dst.Len() != 2 || dst.ClusterID() != "" {
		t.Fatalf("restore: %v, %d entries, cluster %q", err, dst.Len(), dst.ClusterID())
	}
}
