package main

import (
	"log/slog"

	"github.com/VictoriaMetrics/metrics"

	"github.com/hlsedge/hlsedge/internal/fleet"
	"github.com/hlsedge/hlsedge/signaling"
)

// fleetHub returns the conference hub signaling shares with the other nodes through the fleet's Redis, and the
// func that closes it after the servers using it.
func fleetHub(fc *fleet.Client, cfg signaling.Config, log *slog.Logger, ms *metrics.Set) (signaling.Hub, func()) {
	h := signaling.NewRedisHub(fc, cfg, log, ms)
	return h, h.Close
}
