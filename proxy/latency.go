package proxy

import (
	"fmt"
	"io"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// The request-duration histograms are written by every request. A VictoriaMetrics Histogram takes a mutex and a
// base-10 logarithm per observation, which under wrk cost the authorized playlist about 1% of its rate on its
// own. latencyCounts keeps the same buckets as plain atomic counters, found from the duration's integer
// nanoseconds with a table, and /metrics writes them in VictoriaMetrics' own format (vmrange buckets, _sum,
// _count), so dashboards built on hlsedge_request_duration_seconds read the same series as before.

// VictoriaMetrics' histogram layout (histogram.go in github.com/VictoriaMetrics/metrics): 18 buckets per decade
// from 1e-9 s, an upper bound included in its bucket, a lower bucket for what is below 1e-9 s. A
// time.Duration stays under 1e10 s, so the decades above never fill and are not kept.
const (
	vmE10Min            = -9
	vmBucketsPerDecimal = 18
	latencyDecades      = 10 - vmE10Min // up to 1e10 s, past the longest time.Duration
	latencyBuckets      = latencyDecades * vmBucketsPerDecimal
)

// latencyCounts is one route's request durations in one stripe.
type latencyCounts struct {
	lower atomic.Uint64 // durations under 1 ns: a clock that did not move
	// nanos is the sum of the durations. Unsigned, and one per stripe, so it wraps only after 584 years of request
	// time in one stripe (ten thousand viewers waiting on a slow origin add about an hour per second, spread
	// over the stripes); a wrapped sum reads as a restart to Prometheus. /metrics adds the stripes up in float
	// seconds, as the library keeps its sum.
	nanos atomic.Uint64
	// A request writes nanos and one bucket: two cache lines, where a Histogram writes three.
	buckets [latencyBuckets]atomic.Uint64
}

// observe counts one request of duration d; a negative one (a test clock moved back) is not counted, as
// VictoriaMetrics does not count a negative value.
func (c *latencyCounts) observe(d time.Duration) {
	if d < 0 {
		return
	}
	c.nanos.Add(uint64(d))
	if i := latencyBucket(d); i >= 0 {
		c.buckets[i].Add(1)
		return
	}
	c.lower.Add(1)
}

// latencyTable is what the hot path needs to find a bucket without a logarithm: the smallest duration of every
// bucket, and for every bit length of a duration the first bucket it can fall in. Built once, then read only.
type latencyTable struct {
	first  [latencyBuckets]int64
	byBits [65]int16
	// ranges are VictoriaMetrics' vmrange labels of the buckets, and of the lower bucket.
	ranges [latencyBuckets]string
	lower  string
}

var latencyTab = sync.OnceValue(buildLatencyTable)

// vmBucket is VictoriaMetrics' bucket of a duration of d seconds, as its Histogram.Update computes it: -1 for
// the lower bucket. The hot path never calls it; it builds the table, and the tests compare it with the library.
func vmBucket(v float64) int {
	idx := (math.Log10(v) - vmE10Min) * vmBucketsPerDecimal
	if idx < 0 {
		return -1
	}
	i := int(uint(idx))
	if idx == float64(i) && i > 0 {
		i-- // the upper bound belongs to the bucket below
	}
	return i
}

func buildLatencyTable() *latencyTable {
	t := &latencyTable{}
	bucketOf := func(n int64) int { return vmBucket(time.Duration(n).Seconds()) }
	// first[i] is the smallest n whose bucket is i or above: the bucket is monotonic in n, so a binary search
	// with the library's own formula finds where each bucket starts, float rounding included.
	for i := range t.first {
		lo, hi := int64(0), int64(math.MaxInt64)
		for lo < hi {
			mid := lo + (hi-lo)/2
			if bucketOf(mid) >= i {
				hi = mid
			} else {
				lo = mid + 1
			}
		}
		t.first[i] = lo
	}
	for b := range t.byBits {
		// The smallest duration with b significant bits is 1<<(b-1); the bucket search starts at its bucket.
		n := int64(0)
		if b > 0 {
			n = int64(uint64(1) << (b - 1))
		}
		if b == 64 {
			n = math.MaxInt64
		}
		t.byBits[b] = int16(max(bucketOf(n), 0))
	}
	// The labels are the library's: one observation in the middle of every bucket, read back in order. (The
	// buckets under 8 ns are narrower than a nanosecond, so some hold no duration; they keep their label.)
	var h metrics.Histogram
	h.Update(0)
	for i := range t.ranges {
		h.Update(math.Pow(10, vmE10Min+(float64(i)+0.5)/vmBucketsPerDecimal))
	}
	i := -1
	h.VisitNonZeroBuckets(func(vmrange string, count uint64) {
		if i < 0 {
			t.lower = vmrange
		} else if i < len(t.ranges) {
			t.ranges[i] = vmrange
		}
		i++
	})
	if i != len(t.ranges) {
		panic(fmt.Sprintf("proxy: the latency buckets do not match the metrics library's: %d of %d", i, len(t.ranges)))
	}
	return t
}

// latencyBucket is d's bucket, -1 for the lower one.
func latencyBucket(d time.Duration) int {
	t := latencyTab()
	n := int64(d)
	if n < t.first[0] {
		return -1
	}
	// Fast path: a power of two spans under six buckets, so the search from the bit length's first is short.
	i := int(t.byBits[bits.Len64(uint64(n))])
	for i+1 < latencyBuckets && n >= t.first[i+1] {
		i++
	}
	return i
}

// writeLatency writes the histograms of one family, summed over the stripes, as VictoriaMetrics writes a
// Histogram: non-zero buckets in order, then _sum and _count, nothing for a route with no request yet.
func (m *edgeMetrics) writeLatency(w io.Writer) {
	const family = "hlsedge_request_duration_seconds"
	t := latencyTab()
	metrics.WriteMetadataIfNeeded(w, family, "histogram")
	for k, route := range routeNames {
		var total uint64
		var sum float64
		bucket := func(vmrange string, count uint64) {
			if count > 0 {
				fmt.Fprintf(w, "%s_bucket{route=%q,vmrange=%q} %d\n", family, route, vmrange, count)
				total += count
			}
		}
		var lower uint64
		for st := range m.stripes {
			lower += m.stripes[st].latency[k].lower.Load()
			sum += float64(m.stripes[st].latency[k].nanos.Load()) / 1e9
		}
		bucket(t.lower, lower)
		for i := range t.ranges {
			var n uint64
			for st := range m.stripes {
				n += m.stripes[st].latency[k].buckets[i].Load()
			}
			bucket(t.ranges[i], n)
		}
		if total == 0 {
			continue
		}
		if float64(int64(sum)) == sum {
			fmt.Fprintf(w, "%s_sum{route=%q} %d\n", family, route, int64(sum))
		} else {
			fmt.Fprintf(w, "%s_sum{route=%q} %g\n", family, route, sum)
		}
		fmt.Fprintf(w, "%s_count{route=%q} %d\n", family, route, total)
	}
}
