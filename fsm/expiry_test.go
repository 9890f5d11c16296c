package fsm

import (
	"reflect"
	"testing"
)

func TestExpiredItemsOrderAndMax(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("c", "v", 300, 0))
	apply(t, f, 2, setCmd("a", "v", 200, 0))
	apply(t, f, 3, setCmd("b", "v", 200, 0))
	apply(t, f, 4, setCmd("never", "v", 0, 0))
	apply(t, f, 5, setCmd("d", "v", 100, 0))
	apply(t, f, 6, setCmd("late", "v", 5000, 0))
	apply(t, f, 7, setCmd("d", "v2", 100, 0)) // same expiry, new revision

	tests := []struct {
		now  int64
		max  int
		want []ExpireItem
	}{
		{now: 99, max: 10, want: nil},
		{now: 100, max: 10, want: []ExpireItem{{"d", 7}}},
		{now: 250, max: 10, want: []ExpireItem{{"d", 7}, {"a", 2}, {"b", 3}}},
		{now: 250, max: 2, want: []ExpireItem{{"d", 7}, {"a", 2}}},
		{now: 1 << 62, max: 100, want: []ExpireItem{{"d", 7}, {"a", 2}, {"b", 3}, {"c", 1}, {"late", 6}}},
		{now: 1 << 62, max: 0, want: nil},
		{now: 1 << 62, max: -1, want: nil},
	}
	for _, tc := range tests {
		if got := f.ExpiredItems(tc.now, tc.max); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ExpiredItems(%d, %d) = %v, want %v", tc.now, tc.max, got, tc.want)
		}
	}
	if at, ok := f.NextExpiry(); !ok || at != 100 {
		t.Fatalf("NextExpiry = %d, %v; want 100, true", at, ok)
	}

	// Proposing exactly what ExpiredItems returned removes exactly those.
	items := f.ExpiredItems(250, 10)
	if got := apply(t, f, 8, expireCmd(250, items...)); got != (ExpireResult{Expired: 3}) {
		t.Fatalf("expire = %#v", got)
	}
	if at, ok := f.NextExpiry(); !ok || at != 300 {
		t.Fatalf("NextExpiry after expire = %d, %v; want 300, true", at, ok)
	}
	if f.Len() != 3 {
		t.Fatalf("Len = %d, want 3", f.Len())
	}
}

func TestNextExpiryEmpty(t *testing.T) {
	if at, ok := New().NextExpiry(); ok {
		t.Fatalf("NextExpiry on empty FSM = %d, true", at)
	}
}

// Paging with the cursor visits every due entry exactly once, in index order,
// and an entry that becomes due later than the cursor's position is still found.
func TestExpiredItemsAfterPages(t *testing.T) {
	f := New()
	apply(t, f, 1, setCmd("c", "v", 300, 0))
	apply(t, f, 2, setCmd("a", "v", 200, 0))
	apply(t, f, 3, setCmd("b", "v", 200, 0))
	apply(t, f, 4, setCmd("d", "v", 100, 0))
	apply(t, f, 5, setCmd("late", "v", 5000, 0))

	var got []ExpireItem
	var cur ExpiryCursor
	for range 10 {
		page, next := f.ExpiredItemsAfter(300, cur, 2)
		if len(page) == 0 {
			if next != cur {
				t.Fatalf("empty page moved the cursor from %+v to %+v", cur, next)
			}
			break
		}
		got = append(got, page...)
		cur = next
	}
	want := []ExpireItem{{"d", 4}, {"a", 2}, {"b", 3}, {"c", 1}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paged = %v, want %v", got, want)
	}
	// Time passes: "late" is after the cursor and is found from it.
	if page, _ := f.ExpiredItemsAfter(5000, cur, 10); !reflect.DeepEqual(page, []ExpireItem{{"late", 5}}) {
		t.Fatalf("after the cursor at 5000 = %v, want [late]", page)
	}
	// The cursor's own entry is excluded even when it is still in the index.
	if page, _ := f.ExpiredItemsAfter(300, cur, 10); len(page) != 0 {
		t.Fatalf("after the last due entry = %v, want none", page)
	}
	if page, _ := f.ExpiredItemsAfter(300, ExpiryCursor{}, 1); !reflect.DeepEqual(page, []ExpireItem{{"d", 4}}) {
		t.Fatalf("from the zero cursor = %v, want [d]", page)
	}
}
