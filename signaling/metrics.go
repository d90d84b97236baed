package signaling

import (
	"net/http"

	"github.com/VictoriaMetrics/metrics"
	"github.com/fasthttp/websocket"
)

// sigMetrics are the signaling counters, created up front so that the message path only increments.
type sigMetrics struct {
	upgrades                                *metrics.Counter
	refusedBadRequest, refusedAuth          *metrics.Counter
	refusedForbidden, refusedUnavailable    *metrics.Counter
	received, sent                          *metrics.Counter
	badInput, rateLimited, abuse            *metrics.Counter
	slow, idle, writeErrors                 *metrics.Counter
	closedShutdown, closedPolicy, closedBig *metrics.Counter
	closedExpired, closedEnded, closedOther *metrics.Counter
	pollSessions, pollRefused               *metrics.Counter
	transportUpgrades                       *metrics.Counter
}

func newSigMetrics(ms *metrics.Set, s *Server) *sigMetrics {
	c := ms.GetOrCreateCounter
	refused := func(r string) *metrics.Counter {
		return c(`hlsedge_signaling_upgrades_refused_total{reason="` + r + `"}`)
	}
	closed := func(r string) *metrics.Counter {
		return c(`hlsedge_signaling_server_closes_total{reason="` + r + `"}`)
	}
	ms.GetOrCreateGauge(`hlsedge_signaling_connections`, func() float64 { return float64(s.Conns()) })
	ms.GetOrCreateGauge(`hlsedge_signaling_polling_sessions`, func() float64 { return float64(s.polls.len()) })
	return &sigMetrics{
		upgrades:           c(`hlsedge_signaling_upgrades_total`),
		refusedBadRequest:  refused("bad_request"),
		refusedAuth:        refused("unauthorized"),
		refusedForbidden:   refused("forbidden"),
		refusedUnavailable: refused("unavailable"),
		received:           c(`hlsedge_signaling_messages_received_total`),
		sent:               c(`hlsedge_signaling_messages_sent_total`),
		badInput:           c(`hlsedge_signaling_bad_input_total`),
		rateLimited:        c(`hlsedge_signaling_rate_limited_total`),
		abuse:              c(`hlsedge_signaling_abuse_closes_total`),
		slow:               c(`hlsedge_signaling_slow_clients_total`),
		idle:               c(`hlsedge_signaling_idle_timeouts_total`),
		writeErrors:        c(`hlsedge_signaling_write_errors_total`),
		closedShutdown:     closed("shutdown"),
		closedPolicy:       closed("policy"),
		closedBig:          closed("frame_too_big"),
		closedExpired:      closed("token_expired"),
		closedEnded:        closed("conference_ended"),
		closedOther:        closed("other"),
		pollSessions:       c(`hlsedge_signaling_polling_sessions_total`),
		pollRefused:        c(`hlsedge_signaling_polling_requests_refused_total`),
		transportUpgrades:  c(`hlsedge_signaling_transport_upgrades_total`),
	}
}

func (m *sigMetrics) refused(status int) *metrics.Counter {
	switch status {
	case http.StatusBadRequest:
		return m.refusedBadRequest
	case http.StatusUnauthorized:
		return m.refusedAuth
	case http.StatusForbidden:
		return m.refusedForbidden
	}
	return m.refusedUnavailable
}

func (m *sigMetrics) closed(code int) *metrics.Counter {
	switch code {
	case websocket.CloseGoingAway:
		return m.closedShutdown
	case websocket.ClosePolicyViolation:
		return m.closedPolicy
	case websocket.CloseMessageTooBig:
		return m.closedBig
	case CloseTokenExpired:
		return m.closedExpired
	case CloseConferenceEnded:
		return m.closedEnded
	}
	return m.closedOther
}
