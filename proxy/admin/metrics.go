package admin

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// metrics is GET /metrics: the edge's metrics (signaling's included), the process's and the authorizer's.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	w.Header().Set("Cache-Control", "no-store")
	s.edge.WritePrometheus(w)
	s.writeAuthMetrics(w)
}

// writeAuthMetrics appends the authorizer's counters in Prometheus text. authz exposes plain counters (Stats)
// rather than depending on a metrics library; this is where they get names.
func (s *Server) writeAuthMetrics(w io.Writer) {
	if s.authorizer().Disabled() {
		return
	}
	st := s.authorizer().Stats()
	for _, b := range st.Backends {
		l := `group="` + promLabel(b.Group) + `",backend="` + promLabel(b.Name) + `",protocol="` + b.Protocol + `"`
		fmt.Fprintf(w, "hlsedge_auth_backend_calls_total{%s} %d\n", l, b.Calls)
		for _, r := range []struct {
			name string
			n    uint64
		}{{"allow", b.Allows}, {"deny", b.Denies}, {"error", b.Errors}, {"cancelled", b.Cancelled}} {
			fmt.Fprintf(w, "hlsedge_auth_backend_results_total{%s,result=\"%s\"} %d\n", l, r.name, r.n)
		}
		fmt.Fprintf(w, "hlsedge_auth_backend_errors_total{%s} %d\n", l, b.Errors)
		fmt.Fprintf(w, "hlsedge_auth_backend_timeouts_total{%s} %d\n", l, b.Timeouts)
		for _, bk := range b.Buckets {
			le := "+Inf"
			if bk.LE > 0 {
				le = strconv.FormatFloat(bk.LE, 'g', -1, 64)
			}
			fmt.Fprintf(w, "hlsedge_auth_backend_duration_seconds_bucket{%s,le=\"%s\"} %d\n", l, le, bk.Count)
		}
		fmt.Fprintf(w, "hlsedge_auth_backend_duration_seconds_sum{%s} %g\n", l, b.LatencySeconds)
		fmt.Fprintf(w, "hlsedge_auth_backend_duration_seconds_count{%s} %d\n", l, b.Calls)
	}
	ss := st.Sessions
	fmt.Fprintf(w, "hlsedge_auth_sessions_open %d\n", ss.Open)
	fmt.Fprintf(w, "hlsedge_auth_sessions_opened_total %d\n", ss.Opened)
	fmt.Fprintf(w, "hlsedge_auth_sessions_closed_total %d\n", ss.Closed)
	fmt.Fprintf(w, "hlsedge_auth_sessions_refused_total %d\n", ss.Refused)
	fmt.Fprintf(w, "hlsedge_auth_sessions_untracked_total %d\n", ss.Untracked)
	fmt.Fprintf(w, "hlsedge_auth_session_webhook_events_total{result=\"sent\"} %d\n", ss.WebhookSent)
	fmt.Fprintf(w, "hlsedge_auth_session_webhook_events_total{result=\"dropped\"} %d\n", ss.WebhookDropped)
	fmt.Fprintf(w, "hlsedge_auth_session_webhook_events_total{result=\"failed\"} %d\n", ss.WebhookFailed)
	fmt.Fprintf(w, "hlsedge_auth_bans %d\n", st.Bans)
	fmt.Fprintf(w, "hlsedge_auth_kicks %d\n", st.Kicks)
}

// promLabel escapes a label value for the Prometheus text format.
func promLabel(v string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(v)
}
