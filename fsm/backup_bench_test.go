package fsm

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// fsmWithKeys returns an FSM holding n session-like entries (~100-byte JSON
// values, a third with an expiry).
func fsmWithKeys(b *testing.B, n int) *FSM {
	f := New()
	for i := 0; i < n; i++ {
		exp := int64(0)
		if i%3 == 0 {
			exp = 2_000_000_000_000
		}
		v := fmt.Sprintf(`{"userId":"usr_%08d","cart":[{"sku":"item_%d","qty":%d}],"seen":1764138600123}`, i, i%97, i%5)
		f.Apply(cmdLog(uint64(i+1), setCmd(fmt.Sprintf("session-%08d", i), v, exp, 1)))
	}
	return f
}

// BenchmarkBackup100k measures taking and streaming a backup of 100k keys,
// and VerifyBackup of the result: go test ./fsm -run x -bench Backup100k.
func BenchmarkBackup100k(b *testing.B) {
	f := fsmWithKeys(b, 100_000)
	var buf bytes.Buffer
	b.Run("stream", func(b *testing.B) {
		for range b.N {
			buf.Reset()
			bk := f.Backup()
			if _, err := bk.Stream(&buf, 0); err != nil {
				b.Fatal(err)
			}
			bk.Release()
		}
		b.ReportMetric(float64(buf.Len()), "file-bytes")
	})
	file := bytes.Clone(buf.Bytes())
	b.Run("verify", func(b *testing.B) {
		for range b.N {
			if _, err := VerifyBackup(bytes.NewReader(file)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("online-restore-apply", func(b *testing.B) {
		var body bytes.Buffer
		if _, err := CopyBackupBody(bytes.NewReader(file), &body); err != nil {
			b.Fatal(err)
		}
		for range b.N {
			g := New()
			idx, seq := uint64(1), uint64(0)
			r := bytes.NewReader(body.Bytes())
			chunk := make([]byte, 1<<20)
			for {
				n, _ := io.ReadFull(r, chunk)
				if n == 0 {
					break
				}
				g.Apply(cmdLog(idx, chunkCmd(1, seq, chunk[:n])))
				idx, seq = idx+1, seq+1
			}
			if res := g.Apply(cmdLog(idx, commitCmd(1, seq))).(RestoreResult); !res.OK || res.Entries != 100_000 {
				b.Fatalf("commit: %+v", res)
			}
		}
	})
}
