package proxy

import (
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
)

// edgeMetrics holds the counters of the request path. The per-request ones are created up front for every route
// and common status, so the hot path does an array index instead of formatting a metric name.
type edgeMetrics struct {
	set *metrics.Set

	// requests and cacheHit are what /metrics shows of the per-request counters, which the hot path writes into
	// stripes instead; collect sums the stripes into them. The durations are summed as /metrics is written
	// (writeLatency).
	requests [kindKey + 2][len(trackedStatuses) + 1]*metrics.Counter
	cacheHit *metrics.Counter

	stripes    [metricStripes]metricStripe
	nextStripe atomic.Uint32
	// collectMu makes collect and the write of what it collected one step, so two scrapes at once do not
	// interleave one's reset with the other's sums.
	collectMu sync.Mutex

	cacheMiss, cacheBypass *metrics.Counter
	coalescedWaiters       *metrics.Counter
	streamed               *metrics.Counter
	rewriteErrors          *metrics.Counter
	foreignURIs            *metrics.Counter
	disguisedURIs          *metrics.Counter
	connsRefused           *metrics.Counter
}

var trackedStatuses = [...]int{200, 204, 206, 304, 400, 401, 403, 404, 405, 410, 416, 429, 502, 503, 504}

// routeNames are the route labels of the per-request metrics, by kind.
var routeNames = [kindKey + 2]string{"other", "playlist", "segment", "key", "none"}

// routeAdmin is the index for requests that matched no HLS route (health, embed pages, 404s).
const routeAdmin = kindKey + 1

// metricStripe is one share of the per-request metrics. Every request writes a counter and a histogram, and a
// shared one moves its cache lines from core to core on every request: on 2 cores that cost the parallel
// playlist benchmark a quarter of its time. Each pooled scratch writes its own stripe instead, and a scratch
// mostly stays on the core that pooled it (sync.Pool is per core).
type metricStripe struct {
	requests [kindKey + 2][len(trackedStatuses) + 1]atomic.Uint64
	cacheHit atomic.Uint64
	latency  [kindKey + 2]latencyCounts
	// Keeps the next stripe's counters off this one's last cache line.
	_ [64]byte
}

// metricStripes is the number of stripes: scratches are dealt them in turn, and a few per core keep two cores
// off one stripe.
const metricStripes = 16

// stripe deals a new scratch its stripe.
func (m *edgeMetrics) stripe() *metricStripe {
	return &m.stripes[m.nextStripe.Add(1)%metricStripes]
}

// record counts a served request into st.
func (st *metricStripe) record(k kind, status int, d time.Duration) {
	st.requests[k][statusIndex(status)].Add(1)
	st.latency[k].observe(d)
}

// collect sums the stripes into the registered metrics; the caller holds collectMu.
func (m *edgeMetrics) collect() {
	for k := range m.requests {
		for i := range m.requests[k] {
			var n uint64
			for st := range m.stripes {
				n += m.stripes[st].requests[k][i].Load()
			}
			m.requests[k][i].Set(n)
		}
	}
	m.cacheHit.Set(m.cacheHits())
}

func (m *edgeMetrics) cacheHits() uint64 {
	var n uint64
	for st := range m.stripes {
		n += m.stripes[st].cacheHit.Load()
	}
	return n
}

// newEdgeMetrics registers the edge's metrics in set, which signaling may share.
func newEdgeMetrics(set *metrics.Set) *edgeMetrics {
	m := &edgeMetrics{set: set}
	for r, name := range routeNames {
		for i, st := range trackedStatuses {
			m.requests[r][i] = m.set.NewCounter(`hlsedge_requests_total{route="` + name + `",status="` + strconv.Itoa(st) + `"}`)
		}
		m.requests[r][len(trackedStatuses)] = m.set.NewCounter(`hlsedge_requests_total{route="` + name + `",status="other"}`)
	}
	set.RegisterMetricsWriter(m.writeLatency)
	m.cacheHit = m.set.NewCounter(`hlsedge_cache_requests_total{result="hit"}`)
	m.cacheMiss = m.set.NewCounter(`hlsedge_cache_requests_total{result="miss"}`)
	m.cacheBypass = m.set.NewCounter(`hlsedge_cache_requests_total{result="bypass"}`)
	m.coalescedWaiters = m.set.NewCounter(`hlsedge_coalesced_waiters_total`)
	m.streamed = m.set.NewCounter(`hlsedge_streamed_responses_total`)
	m.rewriteErrors = m.set.NewCounter(`hlsedge_playlist_rewrite_errors_total`)
	m.foreignURIs = m.set.NewCounter(`hlsedge_playlist_foreign_uris_total`)
	m.disguisedURIs = m.set.NewCounter(`hlsedge_playlist_disguised_uris_total`)
	m.connsRefused = m.set.NewCounter(`hlsedge_connections_refused_total{reason="max_conns_per_ip"}`)
	return m
}

// statusIndex is status's place in trackedStatuses; the last place counts the others.
func statusIndex(status int) int {
	for i, st := range trackedStatuses {
		if st == status {
			return i
		}
	}
	return len(trackedStatuses)
}

// originFetch is on the slow path (a cache miss), so building the name there is fine.
func (m *edgeMetrics) originFetch(host, result string) *metrics.Counter {
	return m.set.GetOrCreateCounter(`hlsedge_origin_fetches_total{origin="` + host + `",result="` + result + `"}`)
}

func (m *edgeMetrics) originLatency(host string) *metrics.Histogram {
	return m.set.GetOrCreateHistogram(`hlsedge_origin_fetch_duration_seconds{origin="` + host + `"}`)
}

// WritePrometheus writes the edge's metrics (and whatever else was registered in its set, such as signaling's)
// and the process's (memory, goroutines, fds) in Prometheus text.
func (s *Server) WritePrometheus(w io.Writer) {
	s.m.collectMu.Lock()
	s.m.collect()
	s.m.set.WritePrometheus(w)
	s.m.collectMu.Unlock()
	metrics.WriteProcessMetrics(w)
}
