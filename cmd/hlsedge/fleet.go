package main

import (
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/signaling"
)

// fleetHub returns the conference hub signaling shares with the other nodes through the fleet's Redis, and
// the func that closes it after the servers using it; (nil, nil) while this build has no Redis hub, and every
// node then keeps its conferences to itself.
//
// MERGE HOOK: the Redis hub (signaling.NewRedisHub, branch redishub) was not merged when the fleet was wired.
// Once it is, the body becomes:
//
//	h := signaling.NewRedisHub(fc, cfg, log, ms)
//	return h, h.Close
func fleetHub(fc *fleet.Client, cfg signaling.Config, log *slog.Logger, ms *metrics.Set) (signaling.Hub, func()) {
	return nil, nil
}
