package redisstate

import "github.com/VictoriaMetrics/metrics"

// stateMetrics are the state's counters, created up front so that hot paths only increment.
type stateMetrics struct {
	admitted, refused, local               *metrics.Counter
	refreshed, refreshRefused, refreshFail *metrics.Counter
	refreshDropped                         *metrics.Counter
	events, eventErrors, controlDropped    *metrics.Counter
	resyncs                                *metrics.Counter
}

func newStateMetrics(ms *metrics.Set, s *State) *stateMetrics {
	n := ms.GetOrCreateCounter
	ms.GetOrCreateGauge(`hlsedge_auth_fleet_limits_local`, func() float64 {
		// Session limits are counted on this node alone while the fleet is unreachable.
		if s.fc.Degraded() {
			return 1
		}
		return 0
	})
	ms.GetOrCreateGauge(`hlsedge_auth_fleet_pending_changes`, func() float64 { return float64(s.pendingLen()) })
	ms.GetOrCreateGauge(`hlsedge_auth_fleet_tracked_sessions`, func() float64 { return float64(s.tab.count.Load()) })
	return &stateMetrics{
		admitted:       n(`hlsedge_auth_fleet_admissions_total{result="admitted"}`),
		refused:        n(`hlsedge_auth_fleet_admissions_total{result="refused"}`),
		local:          n(`hlsedge_auth_fleet_admissions_total{result="local"}`),
		refreshed:      n(`hlsedge_auth_fleet_refreshes_total{result="ok"}`),
		refreshRefused: n(`hlsedge_auth_fleet_refreshes_total{result="refused"}`),
		refreshFail:    n(`hlsedge_auth_fleet_refreshes_total{result="error"}`),
		refreshDropped: n(`hlsedge_auth_fleet_refreshes_total{result="dropped"}`),
		events:         n(`hlsedge_auth_fleet_events_total{result="applied"}`),
		eventErrors:    n(`hlsedge_auth_fleet_events_total{result="decode_error"}`),
		controlDropped: n(`hlsedge_auth_fleet_events_total{result="dropped"}`),
		resyncs:        n(`hlsedge_auth_fleet_resyncs_total`),
	}
}

// Stats are the state's fleet counters, for tests and the admin API.
type Stats struct {
	// Admitted, Refused and Local count session admissions: decided by the fleet, refused by it, and admitted
	// by counting on this node while the fleet was unreachable.
	Admitted uint64 `json:"admitted"`
	Refused  uint64 `json:"refused"`
	Local    uint64 `json:"local"`
	// Refreshes counts sessions refreshed in Redis; RefreshRefused those the fleet refused on a refresh (over
	// the limit after a re-sync); RefreshDropped those skipped because the refresh queue was full.
	Refreshes      uint64 `json:"refreshes"`
	RefreshRefused uint64 `json:"refresh_refused"`
	RefreshDropped uint64 `json:"refresh_dropped"`
	// Events counts bans and kicks received from the fleet; EventErrors those that did not decode.
	Events      uint64 `json:"events"`
	EventErrors uint64 `json:"event_errors"`
	// Resyncs counts completed re-syncs (every session re-admitted): at start and after every period without
	// Redis.
	Resyncs uint64 `json:"resyncs"`
	// Pending counts bans, unbans and kicks made while Redis was unreachable, not yet shared.
	Pending int `json:"pending"`
	// Tracked counts the sessions with a limit this node refreshes in Redis.
	Tracked int64 `json:"tracked"`
}

// FleetStats returns the counters.
func (s *State) FleetStats() Stats {
	m := s.m
	return Stats{
		Admitted: m.admitted.Get(), Refused: m.refused.Get(), Local: m.local.Get(),
		Refreshes: m.refreshed.Get(), RefreshRefused: m.refreshRefused.Get(), RefreshDropped: m.refreshDropped.Get(),
		Events: m.events.Get(), EventErrors: m.eventErrors.Get(), Resyncs: m.resyncs.Get(),
		Pending: s.pendingLen(), Tracked: s.tab.count.Load(),
	}
}
