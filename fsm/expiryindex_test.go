package fsm

import (
	"fmt"
	"math/rand/v2"
	"strings"
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
	x.Scan(func(k expiryKey) bool { k.key = strings.Clone(k.key); got = append(got, k); return true })
	if x.Len() != len(want) || len(got) != len(want) {
		t.Fatalf("Len %d, scanned %d, want %d", x.Len(), len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pair %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for i, c := range x.chunks {
		if c.len() == 0 || c.len() > expiryChunk || len(c.end) != c.len() || int(c.end[c.len()-1]) != len(c.keys) {
			t.Fatalf("chunk %d has %d pairs, %d ends, %d key bytes", i, c.len(), len(c.end), len(c.keys))
		}
	}
	if m, ok := x.Min(); ok != (len(want) > 0) || (ok && m != want[0]) {
		t.Fatalf("Min = %+v, %v", m, ok)
	}
	// CountUpTo and Ascend from a few pivots, against the sorted pairs.
	for _, j := range []int{0, len(want) / 3, len(want) / 2, len(want) - 1} {
		if j < 0 || j >= len(want) {
			continue
		}
		at := want[j].at
		n := 0
		for n < len(want) && want[n].at <= at {
			n++
		}
		if c := x.CountUpTo(at); c != n {
			t.Fatalf("CountUpTo(%d) = %d, want %d", at, c, n)
		}
		var from []expiryKey
		x.Ascend(want[j], func(k expiryKey) bool { k.key = strings.Clone(k.key); from = append(from, k); return true })
		if len(from) != len(want)-j || from[0] != want[j] {
			t.Fatalf("Ascend from pair %d: %d pairs, want %d", j, len(from), len(want)-j)
		}
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
