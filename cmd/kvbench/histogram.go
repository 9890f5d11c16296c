package main

import (
	"math"
	"math/bits"
	"time"
)

// histogram records latencies in log-linear buckets, the layout of an
// HdrHistogram with two significant decimal digits: every power-of-two range
// is split into histSubBuckets/2 equal buckets, so any recorded value is
// reported within 1/(histSubBuckets/2) (0.8 %) of its true value, from 1 ns
// to the largest time.Duration, in a fixed 58 KiB of counters.
//
// A histogram is not safe for concurrent use: every worker owns one and the
// runner merges them after the workers have stopped.
type histogram struct {
	counts [histBuckets]uint64
	total  uint64
	min    int64
	max    int64
	sum    float64 // nanoseconds; float because a long run overflows int64
}

const (
	histSubBits    = 8
	histSubBuckets = 1 << histSubBits // values below this are exact
	histHalf       = histSubBuckets / 2
	// Values with bit length L > histSubBits are shifted right by
	// s = L-histSubBits (1..63-histSubBits), leaving a mantissa in
	// [histHalf, histSubBuckets): histHalf buckets per shift.
	histBuckets = histSubBuckets + (63-histSubBits)*histHalf
)

func newHistogram() *histogram {
	return &histogram{min: math.MaxInt64}
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < histSubBuckets {
		return int(v)
	}
	s := bits.Len64(uint64(v)) - histSubBits
	m := int(v >> s) // in [histHalf, histSubBuckets)
	return histSubBuckets + (s-1)*histHalf + (m - histHalf)
}

// bucketRange returns the smallest and largest value that land in bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < histSubBuckets {
		return int64(i), int64(i)
	}
	s := (i-histSubBuckets)/histHalf + 1
	m := int64((i-histSubBuckets)%histHalf + histHalf)
	lo = m << s
	return lo, lo + (int64(1) << s) - 1
}

// Record adds one observation; negative durations count as zero.
func (h *histogram) Record(d time.Duration) {
	v := max(int64(d), 0)
	h.counts[bucketOf(v)]++
	h.total++
	h.sum += float64(v)
	h.min = min(h.min, v)
	h.max = max(h.max, v)
}

// Merge adds every observation of o to h.
func (h *histogram) Merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// Count is the number of observations.
func (h *histogram) Count() uint64 { return h.total }

// Max is the largest observation, exactly; 0 when empty.
func (h *histogram) Max() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.max)
}

// Min is the smallest observation, exactly; 0 when empty.
func (h *histogram) Min() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.min)
}

// Mean is the average observation; 0 when empty.
func (h *histogram) Mean() time.Duration {
	if h.total == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.total))
}

// Quantile returns the value at or below which a fraction q (0..1) of the
// observations fall. Like HdrHistogram it answers with the highest value of
// the bucket that holds that rank (so a percentile is never understated),
// clamped to the exact maximum. 0 when empty.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	// rank is 1-based: the ceil(q*total)-th smallest observation, at least the first.
	rank := max(uint64(math.Ceil(q*float64(h.total))), 1)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(hi, h.max))
		}
	}
	return time.Duration(h.max)
}
