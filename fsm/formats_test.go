package fsm

import (
	"strconv"
	"strings"
	"testing"
)

// TestSupportedFormatsMatchTheCodec checks that the versions are the
// package's own constants and that the op list names exactly the ops Op.String
// knows: the list is what a node tells its peers it can apply.
func TestSupportedFormatsMatchTheCodec(t *testing.T) {
	f := SupportedFormats()
	if f.Codec.Max != CodecVersion || f.Codec.Min != 1 || f.Snapshot.Max != snapshotFormatVersion || f.Backup.Max != BackupFormatVersion {
		t.Fatalf("formats %+v do not match the package constants", f)
	}
	if !strings.HasPrefix(f.Ops, "1-") {
		t.Fatalf("ops %q do not start with set (1)", f.Ops)
	}
	listed := map[int]bool{}
	for _, part := range strings.Split(f.Ops, ",") {
		lo, hi, ok := strings.Cut(part, "-")
		if !ok {
			hi = lo
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a > b {
			t.Fatalf("malformed range %q in %q", part, f.Ops)
		}
		for i := a; i <= b; i++ {
			listed[i] = true
		}
	}
	for i := 1; i < 256; i++ {
		if named := !strings.HasPrefix(Op(i).String(), "op("); named != listed[i] {
			t.Errorf("op %d: named %v, listed %v", i, named, listed[i])
		}
	}
}
