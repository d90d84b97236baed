package proxy

import (
	"io"
	"strconv"

	"github.com/VictoriaMetrics/metrics"
)

// edgeMetrics holds the counters of the request path. The per-request ones are created up front for every route
// and common status, so the hot path does an array index instead of formatting a metric name.
type edgeMetrics struct {
	set *metrics.Set

	requests [kindKey + 2][len(trackedStatuses) + 1]*metrics.Counter
	latency  [kindKey + 2]*metrics.Histogram

	cacheHit, cacheMiss, cacheBypass *metrics.Counter
	coalescedWaiters                 *metrics.Counter
	streamed                         *metrics.Counter
	rewriteErrors                    *metrics.Counter
	foreignURIs                      *metrics.Counter
	disguisedURIs                    *metrics.Counter
}

var trackedStatuses = [...]int{200, 204, 206, 304, 400, 401, 403, 404, 405, 410, 416, 429, 502, 503, 504}

// routeAdmin is the index for requests that matched no HLS route (health, embed pages, 404s).
const routeAdmin = kindKey + 1

// newEdgeMetrics registers the edge's metrics in set, which signaling may share.
func newEdgeMetrics(set *metrics.Set) *edgeMetrics {
	m := &edgeMetrics{set: set}
	routes := [...]string{"other", "playlist", "segment", "key", "none"}
	for r, name := range routes {
		for i, st := range trackedStatuses {
			m.requests[r][i] = m.set.NewCounter(`hlsedge_requests_total{route="` + name + `",status="` + strconv.Itoa(st) + `"}`)
		}
		m.requests[r][len(trackedStatuses)] = m.set.NewCounter(`hlsedge_requests_total{route="` + name + `",status="other"}`)
		m.latency[r] = m.set.NewHistogram(`hlsedge_request_duration_seconds{route="` + name + `"}`)
	}
	m.cacheHit = m.set.NewCounter(`hlsedge_cache_requests_total{result="hit"}`)
	m.cacheMiss = m.set.NewCounter(`hlsedge_cache_requests_total{result="miss"}`)
	m.cacheBypass = m.set.NewCounter(`hlsedge_cache_requests_total{result="bypass"}`)
	m.coalescedWaiters = m.set.NewCounter(`hlsedge_coalesced_waiters_total`)
	m.streamed = m.set.NewCounter(`hlsedge_streamed_responses_total`)
	m.rewriteErrors = m.set.NewCounter(`hlsedge_playlist_rewrite_errors_total`)
	m.foreignURIs = m.set.NewCounter(`hlsedge_playlist_foreign_uris_total`)
	m.disguisedURIs = m.set.NewCounter(`hlsedge_playlist_disguised_uris_total`)
	return m
}

func (m *edgeMetrics) request(k kind, status int) *metrics.Counter {
	for i, st := range trackedStatuses {
		if st == status {
			return m.requests[k][i]
		}
	}
	return m.requests[k][len(trackedStatuses)]
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
	s.m.set.WritePrometheus(w)
	metrics.WriteProcessMetrics(w)
}
