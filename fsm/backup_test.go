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
		Entries: uint64(src.Len()), IdemEntries: uint64(src.IdempotencyEntries()), Size: int64(len(file)), SHA256: info.SHA256}
	if got != want || info != want {
		t.Fatalf("VerifyBackup = %+v\nStream      = %+v\nwant        = %+v", got, info, want)
	}

	// The body is a snapshot stream: restoring it reproduces the state exactly.
	var body bytes.Buffer
	if _, err := CopyBackupBody(bytes.NewReader(file), &body); err != nil {
		t.Fatalf("CopyBackupBody: %v", err)
	}
	if body.Len() != len(file)-BackupHeaderSize-BackupTrailerSize {
		t.Fatalf("body is %d bytes of a %d-byte file", body.Len(), len(file))
	}
	dst := New()
	if err := restoreBytes(dst, body.Bytes()); err != nil {
		t.Fatalf("restore body: %v", err)
	}
	if stateOf(dst) != stateOf(src) {
		t.Fatalf("restored %+v, source %+v", stateOf(dst), stateOf(src))
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
	bodyFlip := resum(flip(file, BackupHeaderSize+40))
	if _, err := VerifyBackup(bytes.NewReader(bodyFlip)); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("corrupt body with a valid SHA-256: %v", err)
	}
	wrongCount := resum(flip(file, BackupHeaderSize-9)) // entry count in the header
	if _, err := VerifyBackup(bytes.NewReader(wrongCount)); !errors.Is(err, ErrBadBackup) {
		t.Fatalf("header disagreeing with body: %v", err)
	}
}
