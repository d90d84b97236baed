package bench

import (
	"math/bits"
	"sync/atomic"
	"time"
)

// Log-linear buckets in the spirit of HdrHistogram: 16 linear sub-buckets per power of two, so any recorded
// value is reported within 1/16 (6.25%) of itself, from 1 µs to beyond a day, in a fixed array of counters that
// many goroutines update with atomics and no locks.
const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histBuckets = 64 * histSub
)

// histogram records durations in microseconds. The zero value is ready to use.
type histogram struct {
	counts [histBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64
	max    atomic.Uint64
}

func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	e := bits.Len64(v) - histSubBits - 1 // v has e+5 bits: a leading 1, 4 sub-bucket bits, e dropped bits
	return (e+1)*histSub + int(v>>uint(e)&(histSub-1))
}

// histUpper is the largest value that lands in bucket i.
func histUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	e := i/histSub - 1
	sub := uint64(i % histSub)
	return (histSub+sub+1)<<uint(e) - 1
}

func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0) / time.Microsecond)
	h.counts[histIndex(v)].Add(1)
	h.n.Add(1)
	h.sum.Add(v)
	for {
		m := h.max.Load()
		if v <= m || h.max.CompareAndSwap(m, v) {
			return
		}
	}
}

// histSnap is a point-in-time copy; two snapshots subtract to the values recorded between them.
type histSnap struct {
	counts   [histBuckets]uint64
	n, sum   uint64
	max      uint64 // exact for a snapshot; a bucket bound for a difference
	hasExact bool
}

func (h *histogram) snapshot() histSnap {
	var s histSnap
	for i := range s.counts {
		s.counts[i] = h.counts[i].Load()
	}
	s.n, s.sum, s.max, s.hasExact = h.n.Load(), h.sum.Load(), h.max.Load(), true
	return s
}

// sub returns the values recorded after prev.
func (s *histSnap) sub(prev *histSnap) histSnap {
	var d histSnap
	top := -1
	for i := range d.counts {
		d.counts[i] = s.counts[i] - prev.counts[i]
		if d.counts[i] > 0 {
			top = i
		}
	}
	d.n, d.sum = s.n-prev.n, s.sum-prev.sum
	if top >= 0 {
		d.max = min(histUpper(top), s.max)
	}
	return d
}

// quantile returns the value at q (0..1) as the upper bound of its bucket, never above the maximum.
func (s *histSnap) quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	rank := uint64(q*float64(s.n) + 0.5)
	rank = min(max(rank, 1), s.n)
	var seen uint64
	for i, c := range s.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(histUpper(i), s.max)) * time.Microsecond
		}
	}
	return time.Duration(s.max) * time.Microsecond
}

func (s *histSnap) mean() time.Duration {
	if s.n == 0 {
		return 0
	}
	return time.Duration(s.sum/s.n) * time.Microsecond
}

// LatencySummary is a distribution in milliseconds.
type LatencySummary struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"meanMs"`
	P50Ms  float64 `json:"p50Ms"`
	P90Ms  float64 `json:"p90Ms"`
	P99Ms  float64 `json:"p99Ms"`
	MaxMs  float64 `json:"maxMs"`
}

func (s *histSnap) summary() LatencySummary {
	return LatencySummary{
		Count: s.n, MeanMs: ms(s.mean()),
		P50Ms: ms(s.quantile(0.50)), P90Ms: ms(s.quantile(0.90)), P99Ms: ms(s.quantile(0.99)),
		MaxMs: ms(time.Duration(s.max) * time.Microsecond),
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
