package proxy

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Every duration lands in the bucket a VictoriaMetrics Histogram puts it in, under the same label: the table
// is derived from the library's formula, and a library that changed its buckets fails here.
func TestLatencyBucketsAreTheLibrarys(t *testing.T) {
	tab := latencyTab()
	f := func(d time.Duration) {
		t.Helper()
		var h metrics.Histogram
		h.Update(d.Seconds())
		want := ""
		h.VisitNonZeroBuckets(func(vmrange string, _ uint64) { want = vmrange })
		got := tab.lower
		if i := latencyBucket(d); i >= 0 {
			got = tab.ranges[i]
		}
		if got != want {
			t.Fatalf("%d ns: bucket %q, the library's %q", int64(d), got, want)
		}
	}
	f(0)
	f(1)
	f(2)
	f(999)
	f(1000)
	f(1001)
	f(time.Second)
	f(math.MaxInt64)
	// Both sides of every bucket's first duration.
	for _, n := range tab.first {
		for _, d := range []int64{-1, 0, 1} {
			if n+d >= 0 {
				f(time.Duration(n + d))
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		f(time.Duration(math.Pow(10, r.Float64()*18.9)))
	}
}

// What /metrics shows of the request durations is what the library's Histogram would have written for the same
// observations: the same bucket lines and counts, the same sum (up to float rounding), nothing for a route with
// no request.
func TestLatencyExpositionIsTheLibrarys(t *testing.T) {
	m := newEdgeMetrics(metrics.NewSet())
	lib := metrics.NewSet()
	durations := []time.Duration{0, 1, 7, 850, 1200, 3 * time.Millisecond, 2 * time.Second, 2 * time.Second,
		90 * time.Second, 1234567, -5}
	for i, d := range durations {
		k := []kind{kindPlaylist, kindSegment, kindKey}[i%3]
		m.stripes[i%metricStripes].record(k, 200, d)
		lib.GetOrCreateHistogram(`hlsedge_request_duration_seconds{route="` + routeNames[k] + `"}`).Update(d.Seconds())
	}
	var got, want bytes.Buffer
	m.writeLatency(&got)
	lib.WritePrometheus(&want)
	lines := func(b *bytes.Buffer) (plain []string, sums map[string]float64) {
		sums = map[string]float64{}
		for l := range strings.Lines(b.String()) {
			l = strings.TrimSuffix(l, "\n")
			if name, v, ok := strings.Cut(l, " "); ok && strings.Contains(name, "_sum{") {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("sum line %q: %v", l, err)
				}
				sums[name] = f
				continue
			}
			plain = append(plain, l)
		}
		slices.Sort(plain)
		return plain, sums
	}
	gp, gs := lines(&got)
	wp, ws := lines(&want)
	if !slices.Equal(gp, wp) {
		t.Fatalf("bucket and count lines differ:\n%s\nthe library's:\n%s", strings.Join(gp, "\n"), strings.Join(wp, "\n"))
	}
	if len(gs) != len(ws) || len(gs) != 3 {
		t.Fatalf("sums %v, the library's %v", gs, ws)
	}
	for name, w := range ws {
		if g, ok := gs[name]; !ok || math.Abs(g-w) > 1e-12*max(1, math.Abs(w)) {
			t.Fatalf("%s = %v, the library's %v", name, g, w)
		}
	}
}

// Recording a request's duration allocates nothing.
func TestLatencyObserveAllocatesNothing(t *testing.T) {
	var c latencyCounts
	latencyTab()
	if n := testing.AllocsPerRun(100, func() { c.observe(1500 * time.Nanosecond) }); n != 0 {
		t.Fatalf("observe allocates %v times", n)
	}
}
