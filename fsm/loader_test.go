package fsm

import (
	"fmt"
	"testing"
)

func TestSortedLoaderKeepsEveryItemInOrder(t *testing.T) {
	for _, n := range []int{0, 1, 2, 63, 64, 127, 1000, 10007} {
		l := newSortedLoader()
		for i := range n {
			l.add(newItem(fmt.Sprintf("k%06d", i), nil, uint64(i+1), 0))
		}
		tr := l.finish()
		if tr.Len() != n {
			t.Fatalf("n=%d: Len %d", n, tr.Len())
		}
		i := 0
		tr.Scan(func(it item) bool {
			if it.key() != fmt.Sprintf("k%06d", i) || it.Revision != uint64(i+1) {
				t.Fatalf("n=%d: item %d = %q rev %d", n, i, it.key(), it.Revision)
			}
			i++
			return true
		})
		if _, ok := tr.Get(probe(fmt.Sprintf("k%06d", n/2))); n > 0 && !ok {
			t.Fatalf("n=%d: middle key not found", n)
		}
	}
}
