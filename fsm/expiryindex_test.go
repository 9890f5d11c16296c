package fsm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/tidwall/btree"
)

// TestExpiryIndexMatchesBTree drives the chunked index and a B-tree with the
// same random sets and deletes (appends, inserts in the middle that split
// full chunks, deletes that empty and merge chunks) and compares them.
func TestExpiryIndexMatchesBTree(t *testing.T) {
	for _, mode := range []string{"append", "random"} {
		t.Run(mode, func(t *testing.T) {
			r := rand.New(rand.NewPCG(7, uint64(len(mode))))
			x := newExpiryIndex()
			ref := btree.NewBTreeGOptions(expiryLess, treeOptions)
			var live []expiryKey
			at := int64(0)
			for step := range 20000 {
				switch op := r.IntN(10); {
				case op < 6 || len(live) == 0:
					var k expiryKey
					if mode == "append" {
						at += int64(r.IntN(2))
						k = expiryKey{at: at, key: fmt.Sprintf("k%06d", step)}
					} else {
						k = expiryKey{at: int64(r.IntN(500)), key: fmt.Sprintf("k%03d", r.IntN(300))}
					}
					if _, dup := ref.Set(k); !dup {
						live = append(live, k)
					}
					x.Set(k)
				default:
					i := r.IntN(len(live))
					k := live[i]
					live[i] = live[len(live)-1]
					live = live[:len(live)-1]
					ref.Delete(k)
					x.Delete(k)
					x.Delete(k) // absent now: a no-op
				}
				if step%997 == 0 || step == 19999 {
					checkExpiryIndex(t, x, ref)
				}
			}
		})
	}
}

func checkExpiryIndex(t *testing.T, x *expiryIndex, ref *btree.BTreeG[expiryKey]) {
	t.Helper()
	want := ref.Items()
	var got []expiryKey
	x.Scan(func(k expiryKey) bool { got = append(got, k); return true })
	if x.Len() != len(want) || len(got) != len(want) {
		t.Fatalf("Len %d, scanned %d, want %d", x.Len(), len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pair %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for i, c := range x.chunks {
		if len(c) == 0 || len(c) > expiryChunk {
			t.Fatalf("chunk %d has %d pairs", i, len(c))
		}
	}
	if m, ok := x.Min(); ok != (len(want) > 0) || (ok && m != want[0]) {
		t.Fatalf("Min = %+v, %v", m, ok)
	}
	if b := buildExpiryIndex(append([]expiryKey(nil), want...)); b.Len() != len(want) {
		t.Fatalf("buildExpiryIndex Len %d, want %d", b.Len(), len(want))
	}
}

// TestExpiryIndexStaysFullUnderNearAppends: expiry times stamped by the
// proposer reach the log slightly out of order; the chunks must still end up
// nearly full (a half split would leave them at about half).
func TestExpiryIndexStaysFullUnderNearAppends(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	x := newExpiryIndex()
	const n = 100_000
	for i := range n {
		x.Set(expiryKey{at: int64(i - r.IntN(8)), key: fmt.Sprintf("k%06d", i)})
	}
	if fill := float64(x.Len()) / float64(len(x.chunks)*expiryChunk); x.Len() != n || fill < 0.9 {
		t.Fatalf("%d pairs in %d chunks: fill %.2f, want >= 0.9", x.Len(), len(x.chunks), fill)
	}
}
