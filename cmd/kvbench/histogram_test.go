package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueContiguously(t *testing.T) {
	// Every bucket's range starts right after the previous one ends, so the
	// buckets partition [0, MaxInt64] without gaps or overlaps.
	var next int64
	for i := range histBuckets {
		lo, hi := bucketRange(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d = [%d, %d], want it to start at %d", i, lo, hi, next)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d = [%d, %d] but bucketOf gives %d and %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		next = hi + 1
	}
	if last := next - 1; last != math.MaxInt64 { // next wrapped to MinInt64
		t.Fatalf("buckets end at %d, want the last one to end at MaxInt64", last)
	}
}

func TestBucketWidthIsWithinRelativePrecision(t *testing.T) {
	for i := histSubBuckets; i < histBuckets; i++ {
		lo, hi := bucketRange(i)
		if rel := float64(hi-lo) / float64(lo); rel > 1.0/histHalf {
			t.Fatalf("bucket %d = [%d, %d]: width %.4f of its value, want <= %.4f", i, lo, hi, rel, 1.0/histHalf)
		}
	}
}

func TestQuantilesMatchExactOrderStatistics(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	h := newHistogram()
	var vals []int64
	for range 100_000 {
		// log-uniform between 10 µs and 1 s, like real latencies
		v := int64(10_000 * math.Pow(100_000, r.Float64()))
		vals = append(vals, v)
		h.Record(time.Duration(v))
	}
	slices.Sort(vals)
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		rank := max(int(math.Ceil(q*float64(len(vals)))), 1)
		exact := vals[rank-1]
		got := int64(h.Quantile(q))
		if got < exact || float64(got-exact) > float64(exact)/histHalf {
			t.Errorf("q=%v: got %d, exact %d: want within +%.2f%%", q, got, exact, 100.0/histHalf)
		}
	}
	if h.Max() != time.Duration(vals[len(vals)-1]) || h.Min() != time.Duration(vals[0]) {
		t.Errorf("min/max = %v/%v, want %v/%v", h.Min(), h.Max(), vals[0], vals[len(vals)-1])
	}
	if h.Count() != uint64(len(vals)) {
		t.Errorf("count %d, want %d", h.Count(), len(vals))
	}
}

func TestSmallValuesAreExact(t *testing.T) {
	h := newHistogram()
	for v := range 100 {
		h.Record(time.Duration(v + 1))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.01, 1}, {0.5, 50}, {0.99, 99}, {1, 100}} {
		if got := h.Quantile(tc.q); got != tc.want {
			t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if h.Mean() != 50 { // 50.5 truncated
		t.Errorf("mean %v", h.Mean())
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	a, b, all := newHistogram(), newHistogram(), newHistogram()
	for i := range 1000 {
		d := time.Duration(i*i) * time.Microsecond
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	a.Merge(b)
	if a.counts != all.counts || a.Count() != all.Count() || a.Max() != all.Max() || a.Min() != all.Min() {
		t.Fatal("merged histogram differs from one that recorded everything")
	}
	for _, q := range []float64{0.5, 0.99, 0.999} {
		if a.Quantile(q) != all.Quantile(q) {
			t.Errorf("q=%v: merged %v, direct %v", q, a.Quantile(q), all.Quantile(q))
		}
	}
}

func TestEmptyHistogramAnswersZero(t *testing.T) {
	h := newHistogram()
	if h.Quantile(0.99) != 0 || h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 {
		t.Fatal("empty histogram reports non-zero values")
	}
	h.Merge(newHistogram())
	if h.Count() != 0 || h.Min() != 0 {
		t.Fatal("merging two empty histograms is not empty")
	}
	h.Record(-5)
	if h.Max() != 0 || h.Count() != 1 {
		t.Fatalf("negative duration: max %v count %d", h.Max(), h.Count())
	}
}
