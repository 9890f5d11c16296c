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
