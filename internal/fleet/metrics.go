package fleet

import "github.com/VictoriaMetrics/metrics"

// clientMetrics are the member's counters, created up front so that hot paths only increment.
type clientMetrics struct {
	degradedTotal, resyncs, commandErrors     *metrics.Counter
	reconnectsLost, reconnectsProbe           *metrics.Counter
	received, decodeErrors                    *metrics.Counter
	published, publishErrors, probesPublished *metrics.Counter
}

func newClientMetrics(ms *metrics.Set, c *Client) *clientMetrics {
	n := ms.GetOrCreateCounter
	ms.GetOrCreateGauge(`hlsedge_fleet_degraded`, func() float64 {
		if c.Degraded() {
			return 1
		}
		return 0
	})
	ms.GetOrCreateGauge(`hlsedge_fleet_subscribed_channels`, func() float64 { return float64(c.sub.channels()) })
	return &clientMetrics{
		degradedTotal:   n(`hlsedge_fleet_degraded_total`),
		resyncs:         n(`hlsedge_fleet_resyncs_total`),
		commandErrors:   n(`hlsedge_fleet_command_errors_total`),
		reconnectsLost:  n(`hlsedge_fleet_pubsub_reconnects_total{reason="connection_lost"}`),
		reconnectsProbe: n(`hlsedge_fleet_pubsub_reconnects_total{reason="probe"}`),
		received:        n(`hlsedge_fleet_messages_received_total`),
		decodeErrors:    n(`hlsedge_fleet_messages_dropped_total{reason="decode"}`),
		published:       n(`hlsedge_fleet_messages_published_total`),
		publishErrors:   n(`hlsedge_fleet_publish_errors_total`),
		probesPublished: n(`hlsedge_fleet_probes_total`),
	}
}

// Stats are the member's counters since New, for tests and the admin API.
type Stats struct {
	Degraded bool `json:"degraded"`
	// DegradedTotal counts transitions into the degraded state; Resyncs the resync callbacks run.
	DegradedTotal uint64 `json:"degraded_total"`
	Resyncs       uint64 `json:"resyncs"`
	// CommandErrors counts failed commands, Redis error replies included.
	CommandErrors uint64 `json:"command_errors"`
	// ReconnectsLost counts subscription connections re-established after an error; ReconnectsProbe those
	// re-established because a probe did not come back (a silent stall).
	ReconnectsLost  uint64 `json:"reconnects_lost"`
	ReconnectsProbe uint64 `json:"reconnects_probe"`
	// Received counts messages handed to handlers; DecodeErrors those a handler refused (or panicked on).
	Received     uint64 `json:"received"`
	DecodeErrors uint64 `json:"decode_errors"`
	// Published counts messages published (probes excluded), PublishErrors the publishes that failed.
	Published     uint64 `json:"published"`
	PublishErrors uint64 `json:"publish_errors"`
	Probes        uint64 `json:"probes"`
}

// Stats returns the counters.
func (c *Client) Stats() Stats {
	m := c.m
	return Stats{
		Degraded:        c.Degraded(),
		DegradedTotal:   m.degradedTotal.Get(),
		Resyncs:         m.resyncs.Get(),
		CommandErrors:   m.commandErrors.Get(),
		ReconnectsLost:  m.reconnectsLost.Get(),
		ReconnectsProbe: m.reconnectsProbe.Get(),
		Received:        m.received.Get(),
		DecodeErrors:    m.decodeErrors.Get(),
		Published:       m.published.Get(),
		PublishErrors:   m.publishErrors.Get(),
		Probes:          m.probesPublished.Get(),
	}
}
