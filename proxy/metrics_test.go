package proxy

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// Requests counted on many stripes at once show on /metrics as one sum per metric, every time it is read.
func TestStripedMetricsSumOnEveryScrape(t *testing.T) {
	m := newEdgeMetrics(metrics.NewSet())
	scrape := func() string {
		m.collectMu.Lock()
		defer m.collectMu.Unlock()
		m.collect()
		var b bytes.Buffer
		m.set.WritePrometheus(&b)
		return b.String()
	}
	f := func(want ...string) {
		t.Helper()
		got := scrape()
		for _, w := range want {
			if !strings.Contains(got, w+"\n") {
				t.Fatalf("/metrics lacks %q:\n%s", w, got)
			}
		}
	}
	const writers, each = 40, 250
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := m.stripe()
			for range each {
				st.record(kindPlaylist, 200, time.Millisecond)
				st.cacheHit.Add(1)
			}
			st.record(kindSegment, 418, 2*time.Second)
		}()
	}
	wg.Wait()
	f(`hlsedge_requests_total{route="playlist",status="200"} 10000`,
		`hlsedge_requests_total{route="segment",status="other"} 40`,
		`hlsedge_request_duration_seconds_count{route="playlist"} 10000`,
		`hlsedge_request_duration_seconds_count{route="segment"} 40`,
		`hlsedge_request_duration_seconds_sum{route="segment"} 80`,
		`hlsedge_cache_requests_total{result="hit"} 10000`)
	// A second scrape sums afresh rather than adding the stripes again.
	m.stripe().record(kindPlaylist, 200, time.Millisecond)
	f(`hlsedge_requests_total{route="playlist",status="200"} 10001`,
		`hlsedge_request_duration_seconds_count{route="playlist"} 10001`,
		`hlsedge_cache_requests_total{result="hit"} 10000`)
	if m.cacheHits() != 10000 {
		t.Fatalf("cache hits %d, want 10000", m.cacheHits())
	}
}
