package bench

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	// Every value lands in a bucket whose upper bound is within 1/16 above it, and buckets are ordered.
	for _, v := range []uint64{0, 1, 15, 16, 17, 31, 32, 33, 100, 1000, 12345, 1 << 20, 1<<40 + 12345} {
		i := histIndex(v)
		up := histUpper(i)
		if up < v || float64(up-v) > float64(v)/16+1 {
			t.Fatalf("v=%d bucket %d upper %d", v, i, up)
		}
		if i > 0 && histUpper(i-1) >= v {
			t.Fatalf("v=%d also fits bucket %d (upper %d)", v, i-1, histUpper(i-1))
		}
	}
	var h histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	s := h.snapshot()
	f := func(q float64, want time.Duration) {
		t.Helper()
		got := s.quantile(q)
		if got < want || float64(got-want) > float64(want)/16 {
			t.Fatalf("q%.2f = %v, want about %v", q, got, want)
		}
	}
	f(0.5, 500*time.Millisecond)
	f(0.99, 990*time.Millisecond)
	f(1, time.Second)
	if s.max != 1_000_000 || s.n != 1000 {
		t.Fatalf("max %d n %d", s.max, s.n)
	}
	prev := s
	h.Record(5 * time.Second)
	s2 := h.snapshot()
	d := s2.sub(&prev)
	if d.n != 1 || d.quantile(0.5) < 5*time.Second || d.quantile(0.5) > 5*time.Second*17/16 {
		t.Fatalf("interval: n %d p50 %v", d.n, d.quantile(0.5))
	}
}
